"""`provisioner drift` end to end on a real PowerDNS (issue 5).

Apply, then behind the product's back change the DMARC policy, delete a DKIM CNAME and add a
second SPF value through the PowerDNS API (as someone with the DNS console would): drift exits 2
and names each of the three and nothing else; after a re-apply drift exits 0.
"""

from __future__ import annotations

import base64
import json
import re
import socket
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.octodns_project import Run, checksum_of, declare, run, write_project
from tests.servers import PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures

KEY = base64.b64encode(
    rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).decode()

MOSA = """
    institution: mosa
    name: Mosa Museum
    domains:
      mosamuseum.com:
        dns: managed
        dmarc:
          policy: quarantine
          rua: [mailto:dmarc@mosamuseum.com]
    """
# A second institution that stays healthy: drift must not name it.
OPERA = """
    institution: gva-opera
    name: Grand Théâtre de Genève
    domains:
      gtg.ch:
        spf:
          include: [_spf.google.com]
        dmarc:
          policy: reject
        return_path: mail
    """


def _platform_dns(server: PdnsServer) -> None:
    """What the platform publishes itself (its SPF include, its DKIM public keys), and the
    SPF records of the customer's other senders (the one added behind our back included)."""
    server.create_zone("google.com", [("_spf", "TXT", 3600,
                                       ['"v=spf1 ip4:209.85.128.0/17 ~all"'])])
    server.create_zone("mailgun.org", [("", "TXT", 3600,
                                        ['"v=spf1 ip4:198.61.254.0/23 ~all"'])])
    server.create_zone("secutix.com", [("spf", "TXT", 3600,
                                        ['"v=spf1 ip4:192.28.148.112 -all"'])])
    server.create_zone("dkim.secutix.com", [
        (f"sel{i}-{code}._domainkey", "TXT", 3600, [f'"v=DKIM1; k=rsa; p={KEY}"'])
        for i in (1, 2) for code in ("mosa", "gva-opera")])


def _apply(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    planned = run(root, capsys, "plan", "--detailed-exitcode")
    assert planned.code == 2, planned.err
    applied = run(root, capsys, "apply", "--checksum", checksum_of(planned.out))
    assert applied.code == 0, applied.err


def _drift(root: Path, server: PdnsServer, capsys: pytest.CaptureFixture[str],
           *args: str) -> Run:
    return run(root, capsys, "drift", "--nameserver", f"127.0.0.1:{server.dns_port}",
               "--timeout", "0.5", *args)


def _tamper(server: PdnsServer) -> None:
    zone = "mosamuseum.com."
    apex = server.rrsets(zone)[("", "TXT")][1]
    server.request("PATCH", f"zones/{zone}", {"rrsets": [
        {"name": f"_dmarc.{zone}", "type": "TXT", "ttl": 3600, "changetype": "REPLACE",
         "records": [{"content": '"v=DMARC1; p=none; rua=mailto:dmarc@mosamuseum.com,'
                                 'mailto:reports@dmarc.secutix.com"', "disabled": False}]},
        {"name": f"stxsel1._domainkey.{zone}", "type": "CNAME", "changetype": "DELETE"},
        {"name": zone, "type": "TXT", "ttl": 3600, "changetype": "REPLACE",
         "records": [{"content": c, "disabled": False}
                     for c in (*apex, '"v=spf1 include:mailgun.org ~all"')]},
    ]})


@pytest.fixture
def project(tmp_path: Path, pdns: PdnsServer) -> Path:  # noqa: F811
    write_project(tmp_path, {"powerdns": pdns.target_options()}, default="powerdns")
    declare(tmp_path, "mosa", MOSA)
    declare(tmp_path, "gva-opera", OPERA)
    pdns.create_zone("mosamuseum.com", [("www", "A", 300, ["192.0.2.10"]),
                                        ("", "MX", 3600, ["10 mx.mosamuseum.com."])])
    pdns.create_zone("gtg.ch", [("", "MX", 3600, ["10 mx.gtg.ch."])])
    _platform_dns(pdns)
    return tmp_path


def test_drift_names_each_hand_change_and_nothing_else(
    project: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    _apply(project, capsys)
    clean = _drift(project, pdns, capsys, "--format", "json")
    assert clean.code == 0, clean.err + clean.out
    assert clean.json()["findings"] == []

    _tamper(pdns)
    drifted = _drift(project, pdns, capsys, "--format", "json")
    assert drifted.code == 2, drifted.err
    found = {(f["class"], f["record"], f["type"]) for f in drifted.json()["findings"]}
    assert found == {
        ("changed", "_dmarc.mosamuseum.com", "TXT"),
        ("missing", "stxsel1._domainkey.mosamuseum.com", "CNAME"),
        ("unexpected", "mosamuseum.com", "TXT"),
    }
    by_record = {f["record"]: f for f in drifted.json()["findings"]}
    dmarc = by_record["_dmarc.mosamuseum.com"]
    assert dmarc["institution"] == "mosa" and dmarc["domain"] == "mosamuseum.com"
    assert any("p=quarantine" in v for v in dmarc["expected"])
    assert any("p=none" in v for v in dmarc["found"])
    assert by_record["stxsel1._domainkey.mosamuseum.com"]["expected"] == [
        "sel1-mosa._domainkey.dkim.secutix.com."]
    assert any("mailgun.org" in v for v in by_record["mosamuseum.com"]["found"])

    # The same drift as GitLab's test report: one failing case, naming the three records.
    junit = ET.fromstring(_drift(project, pdns, capsys, "--format", "junit").out)
    failing = [c for c in junit.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failing] == ["mosamuseum.com"]
    text = failing[0].findtext("failure") or ""
    for record in ("_dmarc.mosamuseum.com", "stxsel1._domainkey.mosamuseum.com"):
        assert record in text
    assert "gtg.ch" in {c.get("name") for c in junit.iter("testcase")}

    # Re-apply, nothing repaired by hand: the two SPF values become one (DESIGN §5), the
    # customer's added mechanism kept beside ours, and the rest is restored.
    _apply(project, capsys)
    again = _drift(project, pdns, capsys, "--format", "text")
    assert again.code == 0, again.err + again.out
    assert again.out.strip() == "no drift"

    # A server that never answers: drift cannot say "no drift", it says how much is unknown.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        blind = run(project, capsys, "drift", "--nameserver",
                    f"127.0.0.1:{silent.getsockname()[1]}", "--timeout", "0.2")
    assert blind.code == 1, blind.err
    assert "no drift" not in blind.out + blind.err
    assert re.search(r"unknown: (\d+) of \1 live checks went unanswered", blind.out), blind.out
    assert re.search(r"drift: .*(\d+) of \1 checks unknown", blind.err), blind.err
    apex = [v.strip('"') for v in pdns.rrsets("mosamuseum.com.")[("", "TXT")][1]]
    spf = [v for v in apex if v.lower().startswith("v=spf1")]
    assert len(spf) == 1, apex
    terms = spf[0].split()
    assert terms.count("include:mailgun.org") == 1 and terms.count("include:spf.secutix.com") == 1


def test_shards_split_the_institutions_and_cover_them_all(
    project: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    _apply(project, capsys)
    _tamper(pdns)
    seen: list[str] = []
    drifted: list[str] = []
    for index in (1, 2, 3):
        shard = _drift(project, pdns, capsys, "--shard", f"{index}/3", "--format", "json")
        report = shard.json()
        seen += report["institutions"]
        drifted += sorted({f["institution"] for f in report["findings"]})
        assert shard.code == (2 if "mosa" in report["institutions"] else 0), shard.err
        assert json.dumps(report) == json.dumps(
            _drift(project, pdns, capsys, "--shard", f"{index}/3", "--format", "json").json())
    assert sorted(seen) == ["gva-opera", "mosa"]
    assert drifted == ["mosa"]


def test_an_unknown_shard_or_institution_is_one_line(
    project: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    for args, message in ((("--shard", "4/3"), "I must be at most N (3)"),
                          (("--shard", "x"), "is not I/N"),
                          (("--institution", "nobody"), "no institution 'nobody'")):
        result = _drift(project, pdns, capsys, *args)
        assert result.code == 1
        assert message in result.err and "Traceback" not in result.err


def test_plan_and_live_name_one_finding_per_record(
    project: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    _apply(project, capsys)
    zone = "mosamuseum.com."
    pdns.request("PATCH", f"zones/{zone}", {"rrsets": [
        {"name": f"_dmarc.{zone}", "type": "TXT", "ttl": 3600, "changetype": "REPLACE",
         "records": [{"content": '"v=DMARC1; p=none"', "disabled": False}]},
        {"name": f"stxsel2._domainkey.{zone}", "type": "CNAME", "changetype": "DELETE"},
    ]})
    drifted = _drift(project, pdns, capsys, "--format", "json")
    assert drifted.code == 2, drifted.err
    found = {(f["class"], f["record"], tuple(f["sources"]), f["target"])
             for f in drifted.json()["findings"]}
    assert found == {
        ("changed", "_dmarc.mosamuseum.com", ("plan", "live"), "powerdns"),
        ("missing", "stxsel2._domainkey.mosamuseum.com", ("plan", "live"), "powerdns"),
    }
    markdown = _drift(project, pdns, capsys, "--format", "markdown").out
    assert "| changed | `mosa` | `_dmarc.mosamuseum.com` | TXT |" in markdown


def test_an_external_domain_never_published_is_unpublished(
    project: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    declare(project, "kunst", """
        institution: kunst
        name: Kunsthaus
        domains:
          kunsthaus.ch:
            dns: external
            dmarc:
              policy: reject
        """)
    pdns.create_zone("kunsthaus.ch", [("", "MX", 3600, ["10 mx.kunsthaus.ch."])])
    _apply(project, capsys)
    drifted = _drift(project, pdns, capsys, "--institution", "kunst", "--format", "json")
    assert drifted.code == 2, drifted.err
    findings = drifted.json()["findings"]
    assert findings and {f["class"] for f in findings} == {"unpublished"}
    assert {f["record"] for f in findings} >= {"kunsthaus.ch", "_dmarc.kunsthaus.ch",
                                               "stxsel1._domainkey.kunsthaus.ch"}
    assert {f["institution"] for f in findings} == {"kunst"}
    assert pdns.rrsets("kunsthaus.ch")[("", "MX")]  # never written: external
    assert ("_dmarc", "TXT") not in pdns.rrsets("kunsthaus.ch")


def test_a_refused_zone_is_an_unexpected_value_not_an_error(
    project: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    # A live SPF value that does not parse is not merged into: the plan refuses the zone, and
    # drift reports it from the plan's structured refusal, the live value as found.
    _apply(project, capsys)
    zone = "mosamuseum.com."
    bad = "v=spf1 include:spf.secutix.com include: ~all"
    pdns.request("PATCH", f"zones/{zone}", {"rrsets": [
        {"name": zone, "type": "TXT", "ttl": 3600, "changetype": "REPLACE",
         "records": [{"content": f'"{bad}"', "disabled": False}]}]})
    drifted = _drift(project, pdns, capsys, "--format", "json")
    assert drifted.code == 2, drifted.err
    findings = drifted.json()["findings"]
    assert [(f["class"], f["record"], f["type"]) for f in findings] == [
        ("unexpected", "mosamuseum.com", "TXT")], findings
    assert bad in findings[0]["found"]
    assert "does not parse" in findings[0]["reason"]
    assert "live-spf-invalid" not in drifted.err


def test_drift_reads_dns_first_and_the_api_only_where_dns_differs(
    project: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.proxy import Proxy

    _apply(project, capsys)
    # Every PowerDNS API request of drift goes through a counting proxy.
    asked: list[str] = []
    proxy = Proxy(pdns.api_port, before=lambda method, path: asked.append(path) or None)
    config = project / "provisioner.yaml"
    config.write_text(config.read_text().replace(f'"port": {pdns.api_port}',
                                                 f'"port": {proxy.port}'))
    try:
        def zones_read() -> set[str]:
            return {p.split("/zones/")[1].split("?")[0].rstrip("/") for p in asked
                    if "/zones/" in p}

        clean = _drift(project, pdns, capsys, "--format", "json")
        assert clean.code == 0 and clean.json()["api_zones"] == [], clean.err
        assert zones_read() == set()  # nothing drifted: not one zone read through the API
        assert "0 of 3 zones read through the API (DNS first)" in clean.err

        _tamper(pdns)
        asked.clear()
        drifted = _drift(project, pdns, capsys, "--format", "json")
        assert drifted.code == 2
        assert drifted.json()["api_zones"] == ["mosamuseum.com."]
        assert zones_read() == {"mosamuseum.com."}
        found = {(f["class"], f["record"]) for f in drifted.json()["findings"]}
        assert found == {("changed", "_dmarc.mosamuseum.com"),
                         ("missing", "stxsel1._domainkey.mosamuseum.com"),
                         ("unexpected", "mosamuseum.com")}

        # the full cycle reads every managed zone, and finds the same
        asked.clear()
        full = _drift(project, pdns, capsys, "--format", "json", "--api", "always")
        assert {(f["class"], f["record"]) for f in full.json()["findings"]} == found
        assert zones_read() == {"mosamuseum.com.", "gtg.ch.", "dmarc.secutix.com."}
        # DNS only: no API request at all, the drift still seen
        asked.clear()
        dns_only = _drift(project, pdns, capsys, "--format", "json", "--api", "never")
        assert dns_only.code == 2 and asked == []
    finally:
        proxy.stop()
