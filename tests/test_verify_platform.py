"""`provisioner verify` of the records the platform publishes in its own zones, on a real
PowerDNS: DKIM key records, DMARC report authorisations, the platform's SPF record.

Each test publishes the platform's zones as an operator might have left them for the sample
institution ``mosa``, runs verify, and reads what a user reads: the JSON document that
``verify --format json`` prints (through the CLI where the record comes from the files; through
:func:`verify_records` and the same document where it needs DKIM keys, which key management
fills in and no file declares). Fixtures and zone helpers come from ``test_verify_live``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from provisioner.config import load_project
from provisioner.dnsclient import Server
from provisioner.expand import expand
from provisioner.model import Platform, Record, Role, Target
from provisioner.octodns.afterapply import verification_plan
from provisioner.verify import plan, verify_records
from tests import test_verify_live as live
from tests.conftest import Project, cli
from tests.pdns_local import PowerDNS, clear
from tests.test_verify_live import (
    DKIM_ZONE,
    KEY_2048,
    change,
    healthy,
    mosa_project,
    publish,
    rsa_key,
    status,
    verify,
)

# test_verify_live's fixtures: one PowerDNS for this module, wiped between tests; a second one.
server, dns, second = live.server, live.dns, live.second

AUTH = "dmarc mosamuseum.com._report._dmarc.dmarc.secutix.com"
KEY1 = f"dkim sel1-mosa._domainkey.{DKIM_ZONE}"
KEY2 = f"dkim sel2-mosa._domainkey.{DKIM_ZONE}"
PLATFORM_SPF = "spf spf.secutix.com"


def with_spf_zone(project: Project) -> Project:
    """The platform also declares secutix.com, so its SPF record is a record of the expansion."""
    text = project.config.read_text()
    project.config.write_text(text + "  secutix.com: {target: local}\n")
    return project


def keyed(project: Project, keys: Mapping[str, str]) -> tuple[tuple[Record, ...], Platform]:
    """``mosa``'s expansion once key management has set the platform's DKIM public keys."""
    loaded = load_project(mosa_project(project).config)
    platform = replace(loaded.platform, dkim_public_keys=MappingProxyType(dict(keys)))
    return expand(platform, loaded.institutions), platform


def verify_api(records: tuple[Record, ...], platform: Platform,
               dns: PowerDNS) -> dict[str, dict[str, Any]]:
    """verify_records, read as ``verify --format json`` prints it: checks by (check, name),
    each with the report entry it is listed under."""
    report = verify_records(records, platform, nameservers=[Server.parse(dns.address)],
                            timeout=0.3)
    document = json.loads(json.dumps(report.to_json()))
    return {f"{c['check']} {c['name']}": {**c, "entry": (d["institution"], d["domain"])}
            for d in document["domains"] for c in d["checks"]}


def keys_of(key: str) -> dict[str, str]:
    return {"sel1-mosa": key, "sel2-mosa": key}


def test_healthy_platform_records_succeed_each_listed_under_its_zone(
        dns: PowerDNS, project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    publish(dns, healthy())
    with_spf_zone(mosa_project(project))
    out = cli(project, capsys, "verify", "--nameserver", dns.address, "--format", "json")
    assert out.code == 0, out.out
    entries = {(d["institution"], d["domain"]): [(c["check"], c["name"], c["status"], c["reason"])
                                                 for c in d["checks"]]
               for d in json.loads(out.out)["domains"]}
    # The report authorisation belongs to mosa, the SPF record to the platform (no institution).
    assert entries[("mosa", "dmarc.secutix.com")] == [
        ("dmarc", "mosamuseum.com._report._dmarc.dmarc.secutix.com", "success", "ok")]
    assert entries[(None, "secutix.com")] == [("spf", "spf.secutix.com", "success", "ok")]
    assert next(iter(entries)) == ("mosa", "mosamuseum.com")  # the sender domain first

    text = cli(project, capsys, "verify", "--nameserver", dns.address)
    line = next(x for x in text.out.splitlines() if "_report._dmarc" in x)
    assert line.split()[:5] == ["ok", "mosa", "dmarc",
                                "mosamuseum.com._report._dmarc.dmarc.secutix.com", "ok"]
    junit = cli(project, capsys, "verify", "--nameserver", dns.address, "--format", "junit")
    suites = {s.get("name"): [c.get("name") for c in s.iter("testcase")]
              for s in ET.fromstring(junit.out).iter("testsuite")}
    assert suites["mosa dmarc.secutix.com"] == [AUTH]
    assert suites["- secutix.com"] == [PLATFORM_SPF]


def test_healthy_key_records_succeed(dns: PowerDNS, project: Project) -> None:
    publish(dns, healthy())
    checks = verify_api(*keyed(project, keys_of(KEY_2048)), dns)
    assert (status(checks, KEY1), status(checks, KEY2)) == (("success", "ok"), ("success", "ok"))
    assert checks[KEY1]["entry"] == ("mosa", DKIM_ZONE)
    assert checks[KEY1]["found"] == [f"v=DKIM1; k=rsa; p={KEY_2048}"]
    assert "rsa key of 2048 bits" in checks[KEY1]["message"]


def test_missing_key_record_is_pending(dns: PowerDNS, project: Project) -> None:
    zones = change(healthy(), DKIM_ZONE, "sel1-mosa._domainkey", "TXT")
    publish(dns, zones)
    checks = verify_api(*keyed(project, keys_of(KEY_2048)), dns)
    assert status(checks, KEY1) == ("pending", "NXDOMAIN")
    assert status(checks, KEY2) == ("success", "ok")
    assert checks[KEY1]["expected"] == [f"v=DKIM1; k=rsa; p={KEY_2048}"]


def test_key_that_is_not_the_configured_one_is_key_mismatch(dns: PowerDNS,
                                                            project: Project) -> None:
    publish(dns, healthy())  # KEY_2048 at both selectors
    checks = verify_api(*keyed(project, {"sel1-mosa": rsa_key(2048), "sel2-mosa": KEY_2048}),
                        dns)
    assert status(checks, KEY1) == ("failed", "key-mismatch")
    assert status(checks, KEY2) == ("success", "ok")
    assert checks[KEY1]["found"] == [f"v=DKIM1; k=rsa; p={KEY_2048}"]


def test_weak_key_fails_and_a_1024_bit_key_warns(dns: PowerDNS, project: Project) -> None:
    weak, short = rsa_key(512), rsa_key(1024)
    zones = change(healthy(), DKIM_ZONE, "sel1-mosa._domainkey", "TXT",
                   f"v=DKIM1; k=rsa; p={weak}")
    change(zones, DKIM_ZONE, "sel2-mosa._domainkey", "TXT", f"v=DKIM1; k=rsa; p={short}")
    publish(dns, zones)
    checks = verify_api(*keyed(project, {"sel1-mosa": weak, "sel2-mosa": short}), dns)
    assert status(checks, KEY1) == ("failed", "weak-key")
    assert status(checks, KEY2) == ("success", "ok")
    assert "RFC 8301" in checks[KEY2]["warnings"][0]


def test_two_key_records_fail(dns: PowerDNS, project: Project) -> None:
    publish(dns, change(healthy(), DKIM_ZONE, "sel1-mosa._domainkey", "TXT",
                        f"v=DKIM1; k=rsa; p={KEY_2048}", f"v=DKIM1; k=rsa; p={rsa_key(2048)}"))
    checks = verify_api(*keyed(project, keys_of(KEY_2048)), dns)
    assert status(checks, KEY1) == ("failed", "multiple-records")


def test_key_rotation_alone_is_verified(dns: PowerDNS, project: Project) -> None:
    """Apply after a rotation changes only the DKIM zone: verify those records, and only them."""
    new = rsa_key(2048)
    records, platform = keyed(project, keys_of(new))
    rotation = tuple(r for r in records if r.role is Role.DKIM_KEY)
    publish(dns, healthy())  # the servers still hold the old key
    before = verify_api(rotation, platform, dns)
    assert sorted(before) == [KEY1, KEY2]
    assert {k: status(before, k) for k in before} == {KEY1: ("failed", "key-mismatch"),
                                                      KEY2: ("failed", "key-mismatch")}
    clear(dns)  # the rotated key is published (the caches are off: it answers at once)
    publish(dns, healthy(key=new))
    after = verify_api(rotation, platform, dns)
    assert {k: status(after, k) for k in after} == {KEY1: ("success", "ok"),
                                                    KEY2: ("success", "ok")}
    assert after[KEY1]["entry"] == ("mosa", DKIM_ZONE)


def test_missing_report_authorisation_is_pending(dns: PowerDNS, project: Project,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    zones = healthy()
    zones["dmarc.secutix.com"] = []
    publish(dns, zones)
    checks = verify(mosa_project(project), capsys, dns.address)
    assert status(checks, AUTH) == ("pending", "NXDOMAIN")
    assert checks["exit"]["code"] == 2


@pytest.mark.parametrize(
    ("values", "expected", "customer"),
    [
        (("v=spf1 -all",), ("failed", "mismatch"), ("failed", "mismatch")),
        (('"\\"v=DMARC1\\""',), ("failed", "quoted"), ("failed", "mismatch")),
        (("v=spf1 -all", "v=DMARC1; some-extension=1"), ("success", "ok"), ("success", "ok")),
    ],
    ids=["not-dmarc", "quoted", "any-v=DMARC1-authorises"],
)
def test_report_authorisation_classes(dns: PowerDNS, project: Project,
                                      capsys: pytest.CaptureFixture[str],
                                      values: tuple[str, ...], expected: tuple[str, str],
                                      customer: tuple[str, str]) -> None:
    """The authorisation's own check, and the customer's DMARC check that relies on it: a
    broken platform record fails both (it is not merely pending)."""
    publish(dns, change(healthy(), "dmarc.secutix.com", "mosamuseum.com._report._dmarc", "TXT",
                        *values))
    checks = verify(mosa_project(project), capsys, dns.address)
    assert status(checks, AUTH) == expected
    assert status(checks, live.DMARC) == customer


def test_report_authorisation_on_one_server_only_is_reported(
        dns: PowerDNS, second: PowerDNS, project: Project,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Every server of the platform zone is asked, as for a customer's zone."""
    publish(dns, healthy())
    zones = healthy()
    zones["dmarc.secutix.com"] = []
    publish(second, zones)
    checks = verify(mosa_project(project), capsys, dns.address, second.address)
    assert status(checks, AUTH) == ("pending", "servers-disagree")
    views = {v["server"]: (v["status"], v["reason"]) for v in checks[AUTH]["servers"]}
    assert views == {dns.address: ("success", "ok"), second.address: ("pending", "NXDOMAIN")}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((), ("pending", "NXDOMAIN")),
        (("v=spf1 ip4:198.51.100.7 -all",), ("failed", "mismatch")),
        (("v=spf1 ip4:192.28.148.112 -all", "v=spf1 -all"), ("failed", "multiple-records")),
        (("v=spf1 -all ip4:192.28.148.112",), ("failed", "not-pass")),
        (("v=spf1 ip4:192.28.148.112 -all bad!",), ("failed", "syntax")),
        (("v=spf1 +IP4:192.28.148.112 -all",), ("success", "ok")),
    ],
    ids=["missing", "other-ip", "two-records", "all-first", "syntax", "same-terms-spelt-so"],
)
def test_platform_spf_classes(dns: PowerDNS, project: Project,
                              capsys: pytest.CaptureFixture[str], values: tuple[str, ...],
                              expected: tuple[str, str]) -> None:
    publish(dns, change(healthy(), "secutix.com", "spf", "TXT", *values))
    checks = verify(with_spf_zone(mosa_project(project)), capsys, dns.address)
    assert status(checks, PLATFORM_SPF) == expected
    if expected[1] == "mismatch":
        assert checks[PLATFORM_SPF]["message"] == (
            "missing ip4:192.28.148.112; unexpected ip4:198.51.100.7")


def served_with_keys(project: Project) -> tuple[Platform, tuple[Record, ...]]:
    """The sample with every target served by a DNS server and DKIM keys configured, and its
    records."""
    loaded = load_project(project.config)
    live = {name: Target(name, "octodns_powerdns.PowerDnsProvider",
                         MappingProxyType({"nameserver": "127.0.0.1:5300"}))
            for name in loaded.platform.targets}
    platform = replace(loaded.platform, targets=MappingProxyType(live),
                       dkim_public_keys=MappingProxyType(keys_of(KEY_2048)))
    return platform, expand(platform, loaded.institutions)


def test_apply_verifies_a_changed_domain_with_its_own_platform_records(project: Project) -> None:
    """After apply, the changed domain's report authorisation and its institution's keys are
    verified with it; other institutions' platform records are not (pure: no server)."""
    platform, records = served_with_keys(project)
    assert len({r.institution for r in records if r.role is Role.DMARC_REPORT_AUTH}) > 1
    (group,), _ = verification_plan(records, platform, [("mosamuseum.com.", "local")])
    entries = [(p.institution, p.domain, len(p.checks)) for p in plan(group.records, platform)]
    assert entries == [("mosa", "mosamuseum.com", 5), ("mosa", "dmarc.secutix.com", 1),
                       ("mosa", DKIM_ZONE, 2)]


def test_apply_of_a_key_rotation_verifies_the_keys(project: Project) -> None:
    """An apply that changed only the DKIM zone verifies every key record in it, on that zone's
    target's servers, and no customer domain (pure: no server)."""
    platform, records = served_with_keys(project)
    keys = {r for r in records if r.role is Role.DKIM_KEY}
    target = next(iter(keys)).target
    (group,), skipped = verification_plan(records, platform, [(f"{DKIM_ZONE}.", target)])
    assert skipped == ()
    assert group.domains == ()
    assert group.servers == (Server.parse("127.0.0.1:5300"),)
    assert set(group.records) == keys
    assert {p.domain for p in plan(group.records, platform)} == {DKIM_ZONE}
