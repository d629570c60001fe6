"""Route53 throttles (5 requests a second per account): with 30 % of requests answered
"Throttling" by a proxy in front of moto, plan and apply still succeed, through botocore's
adaptive retries that every Route53 target gets by default (issue 10, class 6)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.octodns_project import CUSTOMER, declare, run, write_project
from tests.proxy import Proxy
from tests.servers import (  # noqa: F401 - fixtures
    MOTO_RATE,
    MotoRoute53,
    route53,
    route53_server,
)

THROTTLED = (b'<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/'
             b'doc/2013-04-01/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>'
             b'Rate exceeded</Message></Error><RequestId>t</RequestId></ErrorResponse>')


class Throttler(Proxy):
    """Answers ``share`` of the requests with Route53's throttling error, passes the rest."""

    def __init__(self, upstream_port: int, share: float = 0.3) -> None:
        rng = random.Random(7)
        self.counts = {"throttled": 0, "passed": 0}
        lock = threading.Lock()

        def before(method: str, path: str) -> tuple[int, str, bytes] | None:
            with lock:
                throttle = rng.random() < share
                self.counts["throttled" if throttle else "passed"] += 1
            return (400, "text/xml", THROTTLED) if throttle else None

        super().__init__(upstream_port, before=before)


@pytest.fixture
def throttled(route53: MotoRoute53, monkeypatch: pytest.MonkeyPatch  # noqa: F811
              ) -> Iterator[Throttler]:
    proxy = Throttler(route53.port)
    monkeypatch.setenv("AWS_ENDPOINT_URL_ROUTE_53", proxy.endpoint)
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    try:
        yield proxy
    finally:
        proxy.stop()


MOSA = """
    institution: mosa
    name: Mosa Museum
    domains:
      mosamuseum.com:
        dns: managed
        dmarc: {policy: none}
    """


def _project(tmp_path: Path, route53: MotoRoute53, options: dict[str, Any]) -> Path:  # noqa: F811
    write_project(tmp_path, {"route53": {"class": "octodns_route53.Route53Provider", **MOTO_RATE,
                                         **options}}, default="route53")
    declare(tmp_path, "mosa", MOSA)
    route53.create_zone("mosamuseum.com", CUSTOMER)
    route53.create_zone("dmarc.secutix.com")
    return tmp_path


def test_plan_and_apply_ride_out_throttling(
    tmp_path: Path, route53: MotoRoute53, throttled: Throttler,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _project(tmp_path, route53, {})
    assert run(root, capsys, "plan").code == 0
    applied = run(root, capsys, "apply")
    assert applied.code == 0, applied.err
    again = run(root, capsys, "plan", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert throttled.counts["throttled"] >= 5, throttled.counts  # the proxy did throttle


def test_without_retries_throttling_fails_the_plan(
    tmp_path: Path, route53: MotoRoute53, throttled: Throttler,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same proxy with a target that asks for one attempt: the retries above are what
    made the difference (and the failure is located, not a traceback)."""
    root = _project(tmp_path, route53, {"client_max_attempts": 1})
    results = []
    for _ in range(8):  # 30 % of some 5 requests a plan: one fails within a few plans
        results.append(run(root, capsys, "plan"))
        if results[-1].code == 1:
            break
    assert any(r.code == 1 and "Throttling" in r.err for r in results), [r.err for r in results]
    assert all("Traceback" not in r.err for r in results)
