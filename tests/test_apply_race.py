"""A customer edits the shared apex TXT set between plan and write (issue 10, class 3): apply
re-reads what it is about to change and refuses the zone, instead of writing the set it read
at plan time over the customer's new value. The edit lands through a proxy in front of
PowerDNS's API, at the moment the plan has read the zone and before apply writes it."""

from __future__ import annotations

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
    PdnsServer,
    pdns,
    pdns_server,
    route53,
    route53_server,
)

MOSA = """
    institution: mosa
    name: Mosa Museum
    domains:
      mosamuseum.com:
        spf: {include: [_spf.google.com]}
    """


def _declare(root: Path, target: str, options: dict[str, Any]) -> None:
    """mosa's SPF merged into the customer's apex TXT set: the set a customer edits too."""
    write_project(root, {target: options}, default=target)
    declare(root, "mosa", MOSA)


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
    _declare(tmp_path, "powerdns", options)
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


def test_a_value_overwritten_right_after_the_write_is_reported_not_verified_silently(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    """Every value apply writes is read back from the target as the plan showed it: here
    another writer replaces our DMARC record the moment our write returns."""
    def after_write(method: str, path: str) -> None:
        if method == "PATCH" and "mosamuseum.com" in path:
            pdns.request("PATCH", "zones/mosamuseum.com.", {"rrsets": [{
                "name": "_dmarc.mosamuseum.com.", "type": "TXT", "ttl": 3600,
                "changetype": "REPLACE",
                "records": [{"content": '"v=DMARC1; p=none; ruf=mailto:x@elsewhere.example"',
                             "disabled": False}]}]})

    proxy = Proxy(pdns.api_port, after=after_write)
    try:
        _declare(tmp_path, "powerdns", {**pdns.target_options(), "port": proxy.port})
        pdns.create_zone("mosamuseum.com", CUSTOMER)
        pdns.create_zone("dmarc.secutix.com")
        applied = run(tmp_path, capsys, "apply", "--no-verify")
    finally:
        proxy.stop()
    assert applied.code == 1, applied.err + applied.out
    assert "error[apply.read-back]" in applied.err
    assert "mosamuseum.com. on powerdns: written, but reads back unlike the plan" in applied.err
    assert "TXT _dmarc reads" in applied.err and "ruf=mailto:x@elsewhere.example" in applied.err
    # The zone that read back as written is not reported.
    assert "dmarc.secutix.com. on powerdns: written" not in applied.err


def test_a_customer_edit_between_plan_and_write_is_never_lost_on_route53(
    tmp_path: Path, route53: MotoRoute53, capsys: pytest.CaptureFixture[str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same race on Route53, whose provider keeps each zone's record sets from its first
    read: the re-read must ask Route53 again, not that memory."""
    zone_id = route53.create_zone("mosamuseum.com", CUSTOMER).rsplit("/", 1)[-1]
    route53.create_zone("dmarc.secutix.com")
    done = threading.Event()

    def after_first_read(method: str, path: str) -> None:
        if method == "GET" and f"{zone_id}/rrset" in path and not done.is_set():
            done.set()
            route53.client().change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
                "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
                    "Name": "mosamuseum.com.", "Type": "TXT", "TTL": 300, "ResourceRecords": [
                        {"Value": v} for v in ('"google-site-verification=Zx81-abc_123"',
                                               '"v=spf1 include:_spf.google.com ~all"',
                                               '"apple-domain-verification=NEW"')]}}]})

    proxy = Proxy(route53.port, after=after_first_read)
    monkeypatch.setenv("AWS_ENDPOINT_URL_ROUTE_53", proxy.endpoint)
    try:
        _declare(tmp_path, "route53", {"class": "octodns_route53.Route53Provider",
                                        **MOTO_RATE})
        applied = run(tmp_path, capsys, "apply", "--no-verify")
    finally:
        proxy.stop()
    assert done.is_set()
    assert applied.code == 1, applied.err + applied.out
    assert "error[apply.zone-changed]" in applied.err and "TXT @" in applied.err
    assert '"apple-domain-verification=NEW"' in route53.rrsets("mosamuseum.com")[("", "TXT")][1]
