"""`provisioner instructions`: what an external DNS administrator types, in three formats."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import dns.rdatatype
import dns.zone
import pytest

from tests.conftest import Project, cli


def test_markdown_lists_every_record_of_an_external_institution(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(project, capsys, "instructions", "zurich-kunst")
    assert result.code == 0, result.err
    text = result.out
    assert "## kunsthaus.ch" in text and "## kunsthäuser.ch (xn--kunsthuser-v5a.ch)" in text
    assert (
        "| `stxsel1._domainkey` | CNAME | `sel1-zurich-kunst._domainkey.dkim.secutix.com.` | 3600 |"
    ) in text
    assert (
        "| `@` | TXT | `v=spf1 include:spf.mandrillapp.com include:spf.secutix.com ~all` |" in text
    )
    # the one external report destination must authorise the domain, and the text says how
    assert "`kunsthaus.ch._report._dmarc.dmarc-analyser.example.net` TXT `v=DMARC1`" in text
    # platform-side records are the platform's business, not the administrator's
    assert "dmarc.secutix.com." not in text.split("## Before you save")[0].replace(
        "mailto:reports@dmarc.secutix.com", ""
    )


def test_bind_output_loads_as_a_zone_with_the_same_records(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    bind = cli(project, capsys, "instructions", "mosa", "--format", "bind").out
    records = json.loads(
        cli(project, capsys, "records", "--institution", "mosa", "--format", "json").out
    )
    text = bind.split("$ORIGIN mosamuseum.com.")[1]
    zone = dns.zone.from_text(
        "$ORIGIN mosamuseum.com.\n@ 3600 IN SOA ns. h. 1 2 3 4 5\n@ 3600 IN NS ns.\n" + text,
        check_origin=False,
    )
    found = {
        (name.to_text() if name.to_text() != "@" else "", dns.rdatatype.to_text(rds.rdtype))
        for name, node in zone.nodes.items()
        for rds in node.rdatasets
        if rds.rdtype not in (dns.rdatatype.SOA, dns.rdatatype.NS)
    }
    expected = {(r["name"], r["type"]) for r in records if r["zone"] == "mosamuseum.com."}
    assert found == expected
    spf = zone.find_rdataset("@", "TXT")
    assert b"".join(next(iter(spf)).strings) == b"v=spf1 include:spf.secutix.com ~all"


def test_html_is_escaped_and_well_formed(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.zone(
        "acme",
        """
        institution: acme
        name: "Acme <b>&</b> Co"
        domains:
          acme.example:
            dns: external
    """,
    )
    result = cli(project, capsys, "instructions", "acme", "--format", "html")
    assert result.code == 0, result.err
    assert "Acme &lt;b&gt;&amp;&lt;/b&gt; Co" in result.out and "<b>" not in result.out

    class Checker(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag not in {"meta", "br", "!doctype"}:
                self.stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            assert self.stack and self.stack.pop() == tag, tag

    checker = Checker()
    checker.feed(result.out)
    assert checker.stack == []


def test_unknown_code(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    result = cli(project, capsys, "instructions", "nobody")
    assert result.code == 1 and "no institution 'nobody'" in result.err
