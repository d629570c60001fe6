"""What apply verifies after it wrote, and where: pure, no server (afterapply)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from provisioner.config import load_project
from provisioner.dnsclient import Server
from provisioner.errors import InvalidInput, Origin
from provisioner.model import Target
from provisioner.octodns.afterapply import live_dns, verification_plan
from provisioner.octodns.targets import provider_kwargs
from tests.conftest import Project


def _target(cls: str, **options: Any) -> Target:
    return Target("t", cls, MappingProxyType(options), Origin("provisioner.yaml", 3, 3))


PDNS = "octodns_powerdns.PowerDnsProvider"
R53 = "octodns_route53.Route53Provider"
YAML = "octodns.provider.yaml.YamlProvider"


def test_where_each_target_answers() -> None:
    assert live_dns(_target(PDNS, nameserver="127.0.0.1:5300")).servers == (
        Server("127.0.0.1", 5300),)
    assert live_dns(_target(PDNS, nameserver=["192.0.2.1", "[2001:db8::1]:53"])).servers == (
        Server("192.0.2.1"), Server("2001:db8::1"))
    assert live_dns(_target(PDNS)) == live_dns(_target(R53), environ={})  # NS lookup
    assert live_dns(_target(PDNS)).servers == () and not live_dns(_target(PDNS)).skip
    assert "files" in live_dns(_target(YAML)).skip
    moto = live_dns(_target(R53), environ={"AWS_ENDPOINT_URL_ROUTE_53": "http://127.0.0.1:9"})
    assert "http://127.0.0.1:9, not AWS" in moto.skip
    assert "verify: false" in live_dns(_target(PDNS, verify=False, nameserver="192.0.2.1")).skip


@pytest.mark.parametrize("options", [{"nameserver": "ns:x"}, {"nameserver": []},
                                     {"nameserver": 53}, {"verify": "no"}])
def test_bad_product_options_are_located(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as caught:
        live_dns(_target(PDNS, **options))
    (problem,) = caught.value.problems
    assert problem.code == "target.nameserver" and str(problem.origin) == "provisioner.yaml:3:3"


def test_product_options_never_reach_the_provider(tmp_path: Path) -> None:
    kwargs = provider_kwargs(_target(PDNS, host="h", nameserver="h:53", verify=True), tmp_path)
    assert "nameserver" not in kwargs and "verify" not in kwargs and kwargs["host"] == "h"


def test_only_the_changed_zones_domains_are_verified(project: Project) -> None:
    loaded = load_project(project.config)
    records = loaded.records()
    zones = {r.zone: r.target for r in records if r.managed}
    changed = [("mosamuseum.com.", zones["mosamuseum.com."])]
    groups, skipped = verification_plan(records, loaded.platform, changed)
    # The samples write to files: nothing to ask, one reason per target.
    assert groups == () and [s.zones for s in skipped] == [("mosamuseum.com.",)]

    live = {name: _target(PDNS, nameserver="127.0.0.1:5300") for name in
            loaded.platform.targets}
    platform = replace(loaded.platform, targets=MappingProxyType(live))
    groups, skipped = verification_plan(records, platform, changed)
    assert skipped == () and [g.domains for g in groups] == [("mosamuseum.com",)]
    # A platform zone's change (a report authorisation) verifies the domains it serves.
    dmarc_zone = next(r.zone for r in records if r.role.value == "dmarc_report_auth")
    groups, _ = verification_plan(records, platform, [(dmarc_zone, zones[dmarc_zone])])
    served = {r.domain for r in records if r.zone == dmarc_zone and r.domain and r.managed}
    assert set(groups[0].domains) <= served and groups[0].domains
