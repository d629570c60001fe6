"""A customer edits the shared apex TXT set between plan and write (issue 10, class 3): apply
re-reads what it is about to change and refuses the zone, instead of writing the set it read
at plan time over the customer's new value. The edit lands through a proxy in front of
PowerDNS's API, at the moment the plan has read the zone and before apply writes it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.octodns_project import CUSTOMER, declare, run, write_project
from tests.proxy import Proxy
from tests.servers import PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures


@pytest.fixture
def proxied(pdns: PdnsServer) -> Iterator[tuple[PdnsServer, Proxy]]:  # noqa: F811
    def edit() -> None:
        pdns.request("PATCH", "zones/mosamuseum.com.", {"rrsets": [{
            "name": "mosamuseum.com.", "type": "TXT", "ttl": 300, "changetype": "REPLACE",
            "records": [{"content": c, "disabled": False} for c in (
                '"google-site-verification=Zx81-abc_123"',
                '"v=spf1 include:_spf.google.com ~all"',
                '"apple-domain-verification=NEW-VALUE-ADDED-NOW"')]}]})

    done = threading.Event()

    def after_first_read(method: str, path: str) -> None:
        if method == "GET" and "mosamuseum.com" in path and not done.is_set():
            done.set()
            edit()  # the customer, between our read and our write

    proxy = Proxy(pdns.api_port, after=after_first_read)
    try:
        yield pdns, proxy
    finally:
        proxy.stop()


def test_a_customer_edit_between_plan_and_write_is_never_lost(
    tmp_path: Path, proxied: tuple[PdnsServer, Proxy],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, proxy = proxied
    options = {**server.target_options(), "port": proxy.port}
    write_project(tmp_path, {"powerdns": options}, default="powerdns")
    declare(tmp_path, "mosa", """
        institution: mosa
        name: Mosa Museum
        domains:
          mosamuseum.com:
            spf: {include: [_spf.google.com]}
        """)
    server.create_zone("mosamuseum.com", CUSTOMER)
    server.create_zone("dmarc.secutix.com")
    applied = run(tmp_path, capsys, "apply", "--no-verify")
    assert applied.code == 1
    assert "error[apply.zone-changed]" in applied.err and "TXT @" in applied.err
    live = server.rrsets("mosamuseum.com")[("", "TXT")][1]
    assert '"apple-domain-verification=NEW-VALUE-ADDED-NOW"' in live  # the edit survived
    # The next apply sees the edit, merges ours beside it, and keeps it.
    again = run(tmp_path, capsys, "apply", "--no-verify")
    assert again.code == 0, again.err
    live = server.rrsets("mosamuseum.com")[("", "TXT")][1]
    assert '"apple-domain-verification=NEW-VALUE-ADDED-NOW"' in live
    assert '"v=spf1 include:_spf.google.com include:spf.secutix.com ~all"' in live
