"""plan and apply against a real PowerDNS: the customer's records survive, ours answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.config import load_project
from provisioner.octodns import engine
from tests.octodns_project import (
    CUSTOMER,
    answer,
    checksum_of,
    declare,
    publish_platform_dns,
    run,
    txt_strings,
    write_project,
)
from tests.servers import PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures

RUAS = [f"mailto:dmarc-aggregate-{i}@reports.mosamuseum.com" for i in range(6)]
DMARC = ("v=DMARC1; p=quarantine; rua=" + ",".join(RUAS) + ",mailto:reports@dmarc.secutix.com")

# The customer's zone before the platform arrives, as PowerDNS stores it.

MOSA = """
    institution: mosa
    name: Mosa Museum
    domains:
      mosamuseum.com:
        dns: managed
        target: powerdns
        spf:
          include: [_spf.google.com]
        dmarc:
          policy: quarantine
          rua: [{ruas}]
        return_path: mail
    """.format(ruas=", ".join(RUAS))


def _setup(tmp_path: Path, server: PdnsServer) -> Path:
    write_project(tmp_path, {"powerdns": server.target_options()}, default="powerdns")
    declare(tmp_path, "mosa", MOSA)
    server.create_zone("mosamuseum.com", CUSTOMER)
    publish_platform_dns(server, ["mosa", "lyon"])
    return tmp_path


def _customer_view(server: PdnsServer) -> dict[tuple[str, str], tuple[int, tuple[str, ...]]]:
    keep = {("www", "A"), ("", "MX"), ("google._domainkey", "TXT")}
    return {k: v for k, v in server.rrsets("mosamuseum.com").items() if k in keep}


def test_apply_keeps_customer_records_and_publishes_ours(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    root = _setup(tmp_path, pdns)
    before = _customer_view(pdns)
    planned = run(root, capsys, "plan", "--detailed-exitcode")
    assert planned.code == 2, planned.err
    assert "www" not in planned.out and "google._domainkey" not in planned.out
    applied = run(root, capsys, "apply", "--checksum", checksum_of(planned.out))
    assert applied.code == 0, applied.err

    assert _customer_view(pdns) == before  # byte for byte, TTLs included
    apex_ttl, apex = pdns.rrsets("mosamuseum.com")[("", "TXT")]
    assert apex_ttl == 300
    assert apex == ('"google-site-verification=Zx81-abc_123"',
                    '"v=spf1 include:_spf.google.com include:spf.secutix.com ~all"')

    port = pdns.dns_port
    assert txt_strings(port, "mosamuseum.com.") == [
        "google-site-verification=Zx81-abc_123",
        "v=spf1 include:_spf.google.com include:spf.secutix.com ~all",
    ]
    assert len(DMARC) > 255  # split into strings on the wire, one value to a resolver
    assert txt_strings(port, "_dmarc.mosamuseum.com.") == [DMARC]
    assert all(len(s) <= 255 for rd in answer(port, "_dmarc.mosamuseum.com.", "TXT")
               for s in rd.strings)
    assert [str(rd.target) for rd in answer(port, "stxsel1._domainkey.mosamuseum.com.",
                                            "CNAME")] == ["sel1-mosa._domainkey.dkim.secutix.com."]
    assert [(rd.preference, str(rd.exchange)) for rd in answer(port, "mail.mosamuseum.com.",
                                                                 "MX")] == [
        (10, "bounce.secutix.com.")]
    assert txt_strings(port, "mail.mosamuseum.com.") == ["v=spf1 include:spf.secutix.com -all"]
    assert txt_strings(port, "google._domainkey.mosamuseum.com.") == [
        "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNAD"]
    # The platform zone was created and authorises the reports (RFC 7489 §7.1).
    assert txt_strings(port, "mosamuseum.com._report._dmarc.dmarc.secutix.com.") == ["v=DMARC1"]

    again = run(root, capsys, "plan", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert "no changes" in again.out


def test_removed_declaration_removes_exactly_what_it_owned(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    root = _setup(tmp_path, pdns)
    original = pdns.rrsets("mosamuseum.com")
    assert run(root, capsys, "apply").code == 0
    (root / "zones" / "mosa.yaml").unlink()

    planned = run(root, capsys, "plan", "--format", "json")
    assert planned.code == 0, planned.err
    zones = {z["zone"]: z for z in planned.json()["zones"]}
    removed = {(c["name"], c["type"], c["action"]) for c in zones["mosamuseum.com."]["changes"]}
    assert removed == {
        ("", "TXT", "update"), ("_dmarc", "TXT", "delete"), ("mail", "MX", "delete"),
        ("mail", "TXT", "delete"), ("stxsel1._domainkey", "CNAME", "delete"),
        ("stxsel2._domainkey", "CNAME", "delete"), ("_mailauth-owner", "TXT", "delete"),
    }
    assert zones["mosamuseum.com."]["needs_force"]

    refused = run(root, capsys, "apply")
    assert refused.code == 1 and "--force" in refused.err
    assert ("_dmarc", "TXT") in pdns.rrsets("mosamuseum.com")  # nothing was applied

    assert run(root, capsys, "apply", "--force").code == 0
    after = pdns.rrsets("mosamuseum.com")
    assert {k: v for k, v in after.items() if k[1] != "SOA"} == {
        k: v for k, v in original.items() if k[1] != "SOA"}
    assert ("mosamuseum.com._report._dmarc", "TXT") not in pdns.rrsets("dmarc.secutix.com")
    assert run(root, capsys, "plan", "--detailed-exitcode").code == 0


def test_interrupted_apply_converges(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    root = _setup(tmp_path, pdns)
    declare(root, "lyon", """
        institution: lyon
        name: Lyon Jazz
        domains:
          lyonjazz.fr:
            dns: managed
        """)
    pdns.create_zone("lyonjazz.fr", [("www", "A", 300, ["192.0.2.20"])])
    project = load_project(root / "provisioner.yaml")
    planned = engine.plan(project.records(), project.platform, project.root)
    assert len(planned.octodns_plans) == 3

    def kill_after_first(zone: str, target: str, count: int) -> None:
        pdns.kill()

    applied = engine.apply(planned, on_applied=kill_after_first)
    assert len(applied.applied) == 1 and not applied.ok
    assert all(p.code == "apply.target-error" for p in applied.problems)

    pdns.start()
    again = run(root, capsys, "plan", "--detailed-exitcode")
    assert again.code == 2  # the zones the kill cut off
    assert run(root, capsys, "apply").code == 0
    assert run(root, capsys, "plan", "--detailed-exitcode").code == 0
    assert pdns.rrsets("lyonjazz.fr")[("www", "A")] == (300, ("192.0.2.20",))


def test_missing_institution_zone_is_an_error(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    write_project(tmp_path, {"powerdns": pdns.target_options()}, default="powerdns")
    declare(tmp_path, "mosa", MOSA)
    result = run(tmp_path, capsys, "plan")
    assert result.code == 1
    assert "zones/mosa.yaml:" in result.err and "[plan.zone-missing]" in result.err
    assert "mosamuseum.com. does not exist on target powerdns" in result.err
    assert "Traceback" not in result.err
    assert len([line for line in result.err.splitlines() if "mosamuseum.com" in line]) == 1
    assert "mosamuseum.com." not in pdns.zones()


@pytest.mark.parametrize("apex", [
    ['"google-site-verification=Zx81-abc_123"', '"v=spf1 include: ~all"'],
    ['"v=spf1 ip4:999.1.1.1 ~all"'],
    ['"v=spf1 include:_spf.google.com ~all"', '"v=spf1 mx include: -all"'],  # one of two
])
def test_unmergeable_live_spf_refuses_the_zone(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
    apex: list[str],
) -> None:
    write_project(tmp_path, {"powerdns": pdns.target_options()}, default="powerdns")
    declare(tmp_path, "mosa", MOSA)
    pdns.create_zone("mosamuseum.com", [*CUSTOMER[:2], ("", "TXT", 300, apex)])
    before = pdns.rrsets("mosamuseum.com")

    planned = run(tmp_path, capsys, "plan")
    assert planned.code == 1 and planned.out == ""
    lines = [line for line in planned.err.splitlines() if "mosamuseum.com" in line]
    assert len(lines) == 1, planned.err
    line = lines[0]
    assert "zones/mosa.yaml:" in line and "[plan.live-spf-invalid]" in line
    assert "zone mosamuseum.com.:" in line and "repair the record at the DNS host" in line
    bad = [v.strip('"') for v in apex if "include: " in v or "999" in v]
    assert len(bad) == 1 and repr(bad[0]) in line

    applied = run(tmp_path, capsys, "apply", "--force")
    assert applied.code == 1
    assert pdns.rrsets("mosamuseum.com") == before  # SOA serial included: nothing written
    assert "dmarc.secutix.com." not in pdns.zones()  # nor anything else of the refused plan


def test_two_live_spf_values_are_merged_into_one(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    # RFC 7208 §4.5: two SPF values are a permerror; DESIGN §5: one value, theirs kept.
    write_project(tmp_path, {"powerdns": pdns.target_options()}, default="powerdns")
    declare(tmp_path, "mosa", MOSA)
    apex = ['"google-site-verification=Zx81-abc_123"', '"v=spf1 include:_spf.google.com ~all"',
            '"v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all"']
    pdns.create_zone("mosamuseum.com", [*CUSTOMER[:2], ("", "TXT", 300, apex)])
    publish_platform_dns(pdns, ["mosa", "lyon"])

    planned = run(tmp_path, capsys, "plan", "--detailed-exitcode")
    assert planned.code == 2, planned.err
    merged = [line for line in planned.err.splitlines() if "[plan.spf-merged]" in line]
    assert len(merged) == 1 and "zones/mosa.yaml:" in merged[0], planned.err
    assert "'v=spf1 include:_spf.google.com ~all'" in merged[0]
    assert "'v=spf1 ip4:192.0.2.25 ip6:2001:db8::25 -all'" in merged[0]
    assert "[plan.live-spf-invalid]" not in planned.err

    applied = run(tmp_path, capsys, "apply", "--checksum", checksum_of(planned.out))
    assert applied.code == 0, applied.out + applied.err
    values = txt_strings(pdns.dns_port, "mosamuseum.com.")
    spf = [v for v in values if v.startswith("v=spf1")]
    assert len(spf) == 1, values
    terms = spf[0].split()
    for term in ("include:_spf.google.com", "ip4:192.0.2.25", "ip6:2001:db8::25",
                 "include:spf.secutix.com"):
        assert terms.count(term) == 1, spf
    assert terms[-1] == "~all"  # the declared all wins where the live values disagree
    assert "google-site-verification=Zx81-abc_123" in values and len(values) == 2

    again = run(tmp_path, capsys, "plan", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert "[plan.spf-merged]" not in again.err


# --- apply verifies what it changed (issue 4 item 7) ------------------------------------------


def test_apply_verifies_the_changed_domains_on_the_targets_dns(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    root = _setup(tmp_path, pdns)
    applied = run(root, capsys, "apply")
    assert applied.code == 0, applied.err
    tail = applied.out.split("verifying 1 domain(s) of the changed zones on live DNS\n", 1)[1]
    rows = [line.split() for line in tail.splitlines()[1:9]]
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("ok", "spf", "mosamuseum.com"), ("ok", "spf", "mail.mosamuseum.com"),
        ("ok", "dkim", "stxsel1._domainkey.mosamuseum.com"),
        ("ok", "dkim", "stxsel2._domainkey.mosamuseum.com"),
        ("ok", "dmarc", "_dmarc.mosamuseum.com"), ("ok", "mx", "mail.mosamuseum.com"),
        ("ok", "mx", "mosamuseum.com"),
        # The report authorisation apply wrote in the platform's zone, checked on its own.
        ("ok", "dmarc", "mosamuseum.com._report._dmarc.dmarc.secutix.com")]
    assert "8 success, 0 pending, 0 temporary_failure, 0 failed (2 domains" in tail

    # Nothing changed, nothing verified: apply stays as quiet as plan.
    again = run(root, capsys, "apply")
    assert again.code == 0 and "verifying" not in again.out


def test_apply_exits_2_when_the_written_records_do_not_verify(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    write_project(tmp_path, {"powerdns": pdns.target_options()}, default="powerdns")
    declare(tmp_path, "mosa", MOSA)
    pdns.create_zone("mosamuseum.com", CUSTOMER)
    # The platform's include does not cover its sending_ips: every domain fails SPF.
    publish_platform_dns(pdns, ["mosa"], sending="ip4:198.51.100.0/24")

    no_check = run(tmp_path, capsys, "apply", "--no-verify", "--format", "json")
    assert no_check.code == 0 and "verifying" not in no_check.out + no_check.err
    pdns.delete_all_zones()
    pdns.create_zone("mosamuseum.com", CUSTOMER)
    publish_platform_dns(pdns, ["mosa"], sending="ip4:198.51.100.0/24")

    applied = run(tmp_path, capsys, "apply", "--verify-wait", "1.5")
    assert applied.code == 2, applied.err
    assert "waiting up to 1.5 s" in applied.out
    failed = [line for line in applied.out.splitlines() if line.startswith("FAILED")]
    assert [line.split()[2:4] for line in failed] == [["spf", "mosamuseum.com"],
                                                      ["spf", "mail.mosamuseum.com"]]
    assert "192.28.148.112" in failed[0]
    assert "the records were written" in applied.err
    # Written all the same: the exit says "not live and right", not "nothing done".
    assert ("_dmarc", "TXT") in pdns.rrsets("mosamuseum.com")
    assert run(tmp_path, capsys, "plan", "--detailed-exitcode").code == 0


def test_bad_nameserver_option_fails_the_plan_at_the_target(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    write_project(tmp_path, {"powerdns": {**pdns.target_options(), "nameserver": "ns:0"}},
                  default="powerdns")
    declare(tmp_path, "mosa", MOSA)
    pdns.create_zone("mosamuseum.com", CUSTOMER)
    result = run(tmp_path, capsys, "apply")
    assert result.code == 1 and "[target.nameserver]" in result.err
    assert "provisioner.yaml:" in result.err and "target powerdns: nameserver 'ns:0'" in \
        result.err
    assert ("_dmarc", "TXT") not in pdns.rrsets("mosamuseum.com")
