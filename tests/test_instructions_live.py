"""`provisioner instructions` against the institution's live zone on a real PowerDNS (issue 13).

Each starting state of the customer's zone gives its own instructions: what to add, what is
already right, what to replace (one merged SPF value, a DMARC never weaker), what to remove,
and each record's status from the verifier; the exit is verify's (0 finished, 2 not yet).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import dns.rdatatype
import dns.zone
import pytest

from tests.octodns_project import Run, declare, dkim_public_key, run, write_project
from tests.servers import PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures

ACME = """
    institution: acme
    name: Acme Théâtre
    domains:
      acme.example:
        dns: external
        spf:
          include: [_spf.google.com]
        dmarc:
          policy: quarantine
          rua: [mailto:dmarc@acme.example]
        return_path: mail
    """
SPF = "v=spf1 include:_spf.google.com include:spf.secutix.com ~all"
DMARC = "v=DMARC1; p=quarantine; rua=mailto:dmarc@acme.example,mailto:reports@dmarc.secutix.com"
DKIM1 = "sel1-acme._domainkey.dkim.secutix.com."
DONE = [("", "TXT", [f'"{SPF}"']), ("_dmarc", "TXT", [f'"{DMARC}"']),
        ("stxsel1._domainkey", "CNAME", [DKIM1]),
        ("stxsel2._domainkey", "CNAME", ["sel2-acme._domainkey.dkim.secutix.com."]),
        ("mail", "MX", ["10 bounce.secutix.com."]),
        ("mail", "TXT", ['"v=spf1 include:spf.secutix.com ~all"'])]


def _platform(server: PdnsServer, senders: int = 0) -> None:
    """What the platform and the other senders publish: SPF includes, DKIM keys, the report
    authorisation, the bounce host; ``senders`` zones s1..sN.example with an SPF each."""
    server.create_zone("google.com", [("_spf", "TXT", 3600,
                                       ['"v=spf1 ip4:209.85.128.0/17 ~all"'])])
    server.create_zone("secutix.com", [("spf", "TXT", 3600, ['"v=spf1 ip4:192.28.148.112 -all"']),
                                       ("bounce", "A", 3600, ["192.28.148.112"])])
    server.create_zone("dkim.secutix.com", [
        (f"sel{i}-acme._domainkey", "TXT", 3600, [f'"v=DKIM1; k=rsa; p={dkim_public_key()}"'])
        for i in (1, 2)])
    server.create_zone("dmarc.secutix.com", [
        ("acme.example._report._dmarc", "TXT", 3600, ['"v=DMARC1"'])])
    for i in range(1, senders + 1):
        server.create_zone(f"s{i}.example",
                           [("", "TXT", 3600, [f'"v=spf1 ip4:198.51.100.{i} ~all"'])])


def _project(tmp_path: Path, server: PdnsServer) -> Path:
    write_project(tmp_path, {"powerdns": server.target_options()}, default="powerdns")
    declare(tmp_path, "acme", ACME)
    return tmp_path


def _zone(server: PdnsServer, records: list[tuple[str, str, list[str]]],
          ns: list[str] | None = None) -> None:
    server.create_zone("acme.example", [(n, t, 3600, c) for n, t, c in records])
    if ns:
        server.request("PATCH", "zones/acme.example.", {"rrsets": [
            {"name": "acme.example.", "type": "NS", "ttl": 3600, "changetype": "REPLACE",
             "records": [{"content": n, "disabled": False} for n in ns]}]})


def _instructions(root: Path, server: PdnsServer, capsys: pytest.CaptureFixture[str],
                  *args: str) -> Run:
    return run(root, capsys, "instructions", "acme", "--nameserver",
               f"127.0.0.1:{server.dns_port}", "--timeout", "0.5", *args)


def _steps(result: Run) -> dict[tuple[str, str], dict[str, Any]]:
    document = json.loads(result.out)
    (dom,) = [d for d in document["domains"] if d["dns"] == "external"]
    return {(r["host"], r["type"]): r for r in dom["records"]}


def _all_notes(step: dict[str, Any]) -> str:
    return " ".join(n["message"] for n in step["notes"])


def test_an_empty_zone_gets_every_record_to_add(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    root = _project(tmp_path, pdns)
    _platform(pdns)
    _zone(pdns, [])
    result = _instructions(root, pdns, capsys, "--format", "json")
    assert result.code == 2, result.err
    steps = _steps(result)
    assert {k: (s["action"], s["status"]) for k, s in steps.items()} == {
        ("@", "TXT"): ("add", "to do"), ("_dmarc", "TXT"): ("add", "to do"),
        ("stxsel1._domainkey", "CNAME"): ("add", "to do"),
        ("stxsel2._domainkey", "CNAME"): ("add", "to do"),
        ("mail", "MX"): ("add", "to do"), ("mail", "TXT"): ("add", "to do")}
    assert steps[("@", "TXT")]["value"] == SPF and steps[("_dmarc", "TXT")]["value"] == DMARC
    assert steps[("mail", "MX")]["priority"] == 10
    assert steps[("mail", "MX")]["value"] == "bounce.secutix.com."
    assert "Not finished: 6 of 6" in json.loads(result.out)["closing"]


def test_an_existing_spf_is_merged_into_one_value_never_a_second(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    root = _project(tmp_path, pdns)
    _platform(pdns, senders=1)
    _zone(pdns, [("", "TXT", ['"v=spf1 include:s1.example mx -all"',
                              '"google-site-verification=abc"'])])
    steps = _steps(_instructions(root, pdns, capsys, "--format", "json"))
    spf = steps[("@", "TXT")]
    assert spf["action"] == "replace"
    # theirs as written, the declared and the platform's includes before their -all
    assert spf["value"] == ("v=spf1 include:s1.example mx include:_spf.google.com "
                            "include:spf.secutix.com -all")
    assert spf["current"] == ["v=spf1 include:s1.example mx -all"]
    notes = _all_notes(spf)
    assert "Never add a second SPF record" in notes and "include:s1.example mx" in notes

    # two SPF records today: one value replaces both
    pdns.delete_all_zones()
    _platform(pdns, senders=1)
    _zone(pdns, [("", "TXT", ['"v=spf1 include:s1.example ~all"',
                              '"v=spf1 include:_spf.google.com ~all"'])])
    spf = _steps(_instructions(root, pdns, capsys, "--format", "json"))[("@", "TXT")]
    assert spf["action"] == "replace"
    terms = spf["value"].split()  # the two values' order is the server's
    assert sorted(terms[1:3]) == ["include:_spf.google.com", "include:s1.example"]
    assert terms[0] == "v=spf1" and terms[3:] == ["include:spf.secutix.com", "~all"]
    assert "has 2 SPF records: receivers reject them all" in _all_notes(spf)


@pytest.mark.parametrize(("senders", "words"), [
    (8, "uses 10 of the 10 DNS lookups"),  # 8 + google + the platform = 10: at the limit
    (9, "needs more than 10 DNS lookups"),  # 11: receivers would answer permerror
])
def test_the_merged_spf_is_evaluated_against_the_lookup_limit(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
    senders: int, words: str,
) -> None:
    root = _project(tmp_path, pdns)
    _platform(pdns, senders=senders)
    includes = " ".join(f"include:s{i}.example" for i in range(1, senders + 1))
    _zone(pdns, [("", "TXT", [f'"v=spf1 {includes} include:_spf.google.com ~all"'])])
    result = _instructions(root, pdns, capsys, "--format", "json")
    spf = _steps(result)[("@", "TXT")]
    assert words in _all_notes(spf), spf
    lookups = json.loads(result.out)["domains"][0]["spf_lookups"]["acme.example"]
    assert lookups == senders + 2 or (senders == 9 and lookups >= 10)


def test_half_done_and_complete(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    root = _project(tmp_path, pdns)
    _platform(pdns)
    _zone(pdns, DONE[2:4])  # the two DKIM CNAMEs only
    half = _instructions(root, pdns, capsys, "--format", "json")
    assert half.code == 2
    steps = _steps(half)
    assert steps[("stxsel1._domainkey", "CNAME")]["action"] == "keep"
    assert steps[("stxsel1._domainkey", "CNAME")]["status"] == "done"
    assert steps[("@", "TXT")]["status"] == "to do"
    assert "Not finished: 4 of 6" in json.loads(half.out)["closing"]

    pdns.delete_all_zones()
    _platform(pdns)
    _zone(pdns, DONE)
    done = _instructions(root, pdns, capsys)
    assert done.code == 0, done.out
    assert "**Finished: every record of `acme` is live and right.**" in done.out
    assert "| 1 | done | already right | `@` | TXT |" in done.out
    assert "instructions: acme: Finished" in done.err


def test_conflicts_are_explained_with_the_choice_made(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    root = _project(tmp_path, pdns)
    _platform(pdns)
    _zone(pdns, [("stxsel1._domainkey", "CNAME", ["s1.domainkey.other-esp.example."]),
                 ("stxsel2._domainkey", "TXT", ['"v=DKIM1; k=rsa; p=MIGf"']),
                 ("_dmarc", "TXT", ['"v=DMARC1; p=none; rua=mailto:agg@their-vendor.example"']),
                 ("mail", "MX", ["5 mx.acme-mail.example."])])
    steps = _steps(_instructions(root, pdns, capsys, "--format", "json"))
    dkim = steps[("stxsel1._domainkey", "CNAME")]
    assert dkim["action"] == "replace" and dkim["current"] == ["s1.domainkey.other-esp.example."]
    assert "points to s1.domainkey.other-esp.example. now" in _all_notes(dkim)
    assert steps[("stxsel2._domainkey", "TXT")]["action"] == "remove"
    assert steps[("stxsel2._domainkey", "CNAME")]["action"] == "add"
    # a weaker DMARC: raised to the declared policy, their report address kept
    dmarc = steps[("_dmarc", "TXT")]
    assert dmarc["action"] == "replace"
    assert dmarc["value"] == ("v=DMARC1; p=quarantine; rua=mailto:agg@their-vendor.example,"
                              "mailto:dmarc@acme.example,mailto:reports@dmarc.secutix.com")
    assert "Your report address stays" in _all_notes(dmarc)
    mx = steps[("mail", "MX")]
    assert mx["action"] == "replace" and mx["current"] == ["5 mx.acme-mail.example."]
    assert "already receives mail through 5 mx.acme-mail.example." in _all_notes(mx)
    assert "choose another return_path" in _all_notes(mx)


def test_a_stronger_dmarc_is_never_weakened(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    root = _project(tmp_path, pdns)
    _platform(pdns)
    _zone(pdns, [("_dmarc", "TXT", ['"v=DMARC1; p=reject; sp=reject; adkim=s; '
                                     'rua=mailto:dmarc@acme.example"'])])
    dmarc = _steps(_instructions(root, pdns, capsys, "--format", "json"))[("_dmarc", "TXT")]
    assert dmarc["value"] == ("v=DMARC1; p=reject; sp=reject; adkim=s; "
                              "rua=mailto:dmarc@acme.example,mailto:reports@dmarc.secutix.com")
    assert "Your policy p=reject is kept: it is stronger than the declared p=quarantine" in \
        _all_notes(dmarc)


def test_the_dns_host_is_recognised_from_its_name_servers(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    root = _project(tmp_path, pdns)
    _platform(pdns)
    _zone(pdns, [], ns=["ada.ns.cloudflare.com.", "bob.ns.cloudflare.com."])
    result = _instructions(root, pdns, capsys)
    assert "DNS host: `Cloudflare`" in result.out
    assert "\"DNS only\" (grey cloud)" in result.out
    assert "MX: type the priority in its own field" in result.out
    pdns.delete_all_zones()
    _platform(pdns)
    _zone(pdns, [], ns=["ns-1.awsdns-01.org.", "ns-2.awsdns-02.co.uk."])
    result = _instructions(root, pdns, capsys, "--lang", "fr")
    assert "Amazon Route 53" in result.out
    assert "guillemets" in result.out  # Route 53 wants TXT values quoted: said in French


class _Table(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "data-host" in a:
            self.rows.append((a["data-host"] or "", a["data-type"] or "",
                              a["data-status"] or ""))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_four_formats_carry_the_same_records_statuses_and_warnings(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    root = _project(tmp_path, pdns)
    _platform(pdns)
    _zone(pdns, [("stxsel1._domainkey", "CNAME", [DKIM1]),
                 ("_dmarc", "TXT", ['"v=DMARC1; p=reject"']),
                 ("mail", "MX", ["5 mx.acme-mail.example."])])
    out = {f: _instructions(root, pdns, capsys, "--format", f).out
           for f in ("json", "markdown", "html", "bind")}
    document = json.loads(out["json"])
    records = [r for d in document["domains"] for r in d["records"]]
    expected = {(r["host"], r["type"], r["status"] or "") for r in records}
    warnings = [n["message"] for r in records for n in r["notes"] if n["warning"]]
    assert warnings
    # markdown: one table row per record
    rows = re.findall(r"^\| \d+ \| ([^|]*) \| ([^|]*) \| `([^`]*)` \| (\w+) \|", out["markdown"],
                      re.MULTILINE)
    assert {(h, t, "" if s.strip() == "not checked" else s.strip())
            for s, _, h, t in rows} == expected
    table = _Table()
    table.feed(out["html"])
    assert set(table.rows) == expected
    html_text = " ".join("".join(table.text).split())
    # bind: every record to publish, loadable; the ones to remove as comments
    text = out["bind"].split("$ORIGIN acme.example.")[1]
    zone = dns.zone.from_text("$ORIGIN acme.example.\n@ 3600 IN SOA ns. h. 1 2 3 4 5\n"
                              "@ 3600 IN NS ns.\n" + text, check_origin=False)
    published = {(n.to_text(), dns.rdatatype.to_text(r.rdtype)) for n, node in zone.nodes.items()
                 for r in node.rdatasets} - {("@", "SOA"), ("@", "NS")}
    assert published == {(h, t) for h, t, _ in expected}
    for warning in warnings:
        plain = " ".join(warning.split())
        assert plain in html_text, warning
        assert plain in " ".join(out["bind"].split()), warning
        assert plain in " ".join(out["markdown"].replace("`", "").split()), warning
    for closing in (document["closing"],):
        assert closing in html_text and closing in out["bind"]
        assert closing in out["markdown"].replace("`", "")

