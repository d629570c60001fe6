"""`provisioner instructions` without the live zone (--offline): the records and the generic
cautions, in the four formats, escaped for each."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import ClassVar

import dns.rdatatype
import dns.zone
import pytest

from tests.conftest import Project, cli


def test_markdown_lists_every_record_of_an_external_institution(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(project, capsys, "instructions", "zurich-kunst", "--offline")
    assert result.code == 0, result.err
    text = result.out
    assert "## kunsthaus.ch" in text and "## kunsthäuser.ch (xn--kunsthuser-v5a.ch)" in text
    assert ("| add | `stxsel1._domainkey` | CNAME |  | "
            "`sel1-zurich-kunst._domainkey.dkim.secutix.com.` | 3600 |") in text
    assert ("| add | `@` | TXT |  | `v=spf1 include:spf.mandrillapp.com include:spf.secutix.com "
            "~all` | 3600 |") in text
    # the one external report destination must authorise the domain, and the text says how
    assert "`kunsthaus.ch._report._dmarc.dmarc-analyser.example.net` TXT v=DMARC1" in text
    # what only the platform can run is never asked of the administrator
    assert "provisioner " not in text
    assert "Status not checked: 8 record(s) to publish." in text
    assert "instructions: zurich-kunst: Status not checked" in result.err


def test_a_managed_institution_has_nothing_to_do(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(project, capsys, "instructions", "mosa", "--offline")
    assert result.code == 0
    assert "published by the platform: nothing to do" in result.out


def test_bind_output_loads_as_a_zone_with_the_same_records(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    bind = cli(project, capsys, "instructions", "zurich-kunst", "--format", "bind",
               "--offline").out
    records = json.loads(
        cli(project, capsys, "records", "--institution", "zurich-kunst", "--format", "json").out
    )
    text = bind.split("$ORIGIN kunsthaus.ch.")[1].split("$ORIGIN")[0]
    zone = dns.zone.from_text(
        "$ORIGIN kunsthaus.ch.\n@ 3600 IN SOA ns. h. 1 2 3 4 5\n@ 3600 IN NS ns.\n" + text,
        check_origin=False,
    )
    found = {
        (name.to_text() if name.to_text() != "@" else "", dns.rdatatype.to_text(rds.rdtype))
        for name, node in zone.nodes.items()
        for rds in node.rdatasets
        if rds.rdtype not in (dns.rdatatype.SOA, dns.rdatatype.NS)
    }
    expected = {(r["name"], r["type"]) for r in records if r["zone"] == "kunsthaus.ch."}
    assert found == expected
    spf = zone.find_rdataset("@", "TXT")
    assert b"".join(next(iter(spf)).strings) == (
        b"v=spf1 include:spf.mandrillapp.com include:spf.secutix.com ~all")


class Checker(HTMLParser):
    """Every element closed in order; no element or attribute from the input."""

    VOID: ClassVar[frozenset[str]] = frozenset({"meta", "br", "wbr", "!doctype"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.add(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, tag


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
    result = cli(project, capsys, "instructions", "acme", "--format", "html", "--offline")
    assert result.code == 0, result.err
    assert "Acme &lt;b&gt;&amp;&lt;/b&gt; Co" in result.out and "<b>" not in result.out
    checker = Checker()
    checker.feed(result.out)
    assert checker.stack == [] and "b" not in checker.tags
    assert "http://" not in result.out and "https://" not in result.out  # no external resource


def test_unknown_code(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    result = cli(project, capsys, "instructions", "nobody")
    assert result.code == 1 and "no institution 'nobody'" in result.err
