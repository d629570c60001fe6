"""Each sample institution's records, compared as text with tests/golden/ (DESIGN §4).

A change in expansion shows up as a readable diff of the records a customer would publish.
Regenerate deliberately with ``pytest tests/test_expansion_golden.py --update-golden`` and
review the diff before committing it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, Project, cli

GOLDEN = Path(__file__).parent / "golden"
SAMPLES = sorted(p.stem for p in (REPO / "zones").glob("*.yaml"))


def check_golden(path: Path, text: str, update: bool) -> None:
    if update:
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path.name}: run pytest --update-golden and review it"
    assert text == path.read_text(encoding="utf-8")


def test_samples_cover_every_feature() -> None:
    text = "\n".join((REPO / "zones" / f"{code}.yaml").read_text() for code in SAMPLES)
    for feature in (
        "dns: external",
        "zone:",
        "return_path:",
        "strict",
        "include:",
        "ruf:",
        "kunsthäuser.ch",
        "failure_reporting:",
        "testing: true",
        "non_existent_subdomain_policy:",
        "subdomain_policy:",
        "target:",
        "ttl:",
        "dkim: false",
    ):
        assert feature in text, f"no sample uses {feature}"
    assert len(SAMPLES) >= 4


@pytest.mark.parametrize("code", SAMPLES)
@pytest.mark.parametrize("fmt", ["json", "bind"])
def test_sample_expansion_matches_golden(
    project: Project, capsys: pytest.CaptureFixture[str], update_golden: bool, code: str, fmt: str
) -> None:
    result = cli(project, capsys, "records", "--institution", code, "--format", fmt)
    assert result.code == 0, result.err
    check_golden(
        GOLDEN / f"{code}.{'json' if fmt == 'json' else 'zone'}", result.out, update_golden
    )


def test_guide_example_records_exactly(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """The customer guide's own records for mosa / mosamuseum.com, as it prints them."""
    result = cli(project, capsys, "records", "--institution", "mosa", "--format", "json")
    records = json.loads(result.out)
    by_name = {(r["zone"], r["name"], r["type"]): r for r in records}
    assert by_name[("mosamuseum.com.", "", "TXT")]["values"] == [
        "v=spf1 include:spf.secutix.com ~all"
    ]
    assert by_name[("mosamuseum.com.", "stxsel1._domainkey", "CNAME")]["values"] == [
        "sel1-mosa._domainkey.dkim.secutix.com."
    ]
    assert by_name[("mosamuseum.com.", "stxsel2._domainkey", "CNAME")]["values"] == [
        "sel2-mosa._domainkey.dkim.secutix.com."
    ]
    assert by_name[("mosamuseum.com.", "_dmarc", "TXT")]["ttl"] == 3600
    # The platform's report address lives in a platform zone: it authorises the domain.
    assert by_name[("dmarc.secutix.com.", "mosamuseum.com._report._dmarc", "TXT")]["values"] == [
        "v=DMARC1"
    ]
    keys = [(r["zone"], r["name"], r["type"]) for r in records]
    assert keys == sorted(keys)


def test_records_json_is_sorted_and_typed(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(project, capsys, "records", "--format", "json")
    assert result.code == 0
    records = json.loads(result.out)
    assert [(r["zone"], r["name"], r["type"]) for r in records] == sorted(
        (r["zone"], r["name"], r["type"]) for r in records
    )
    mx = [r for r in records if r["type"] == "MX"]
    assert mx and all(
        v == {"preference": 10, "exchange": "bounce.secutix.com."} for r in mx for v in r["values"]
    )
    for r in records:
        assert set(r) == {"zone", "name", "type", "ttl", "values"}
        assert r["zone"].endswith(".") and not r["name"].endswith(".")
        assert r["name"] == r["name"].lower()
        if r["type"] == "CNAME":
            assert len(r["values"]) == 1 and r["values"][0].endswith(".")
    # the IDN sample is published as its A-label
    assert any(r["zone"] == "xn--kunsthuser-v5a.ch." for r in records)


def test_unknown_institution_is_an_error(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(project, capsys, "records", "--institution", "nope")
    assert result.code == 1
    assert "no institution 'nope'" in result.err
