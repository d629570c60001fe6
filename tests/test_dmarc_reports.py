"""DMARC aggregate reports (issue 12, parts 3-5): ingest, report, the policy ramp.

Reports are parsedmarc's own samples (RFC 7489 drafts and 1.0, RFC 9990 2.0, gzip, zip, mail
messages) and generated ones (tests/dmarcgen.py). The store is SQLite here; PostgreSQL and
the IMAP mailbox are in tests/test_dmarc_servers.py."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests import dmarcgen as g
from tests.conftest import REPO, Project, cli

SAMPLES = REPO / "tests" / "data" / "dmarc" / "parsedmarc"
TODAY = date(2026, 12, 2)
MOSA = "mosamuseum.com"

EXAMPLE = """
institution: example
name: The samples' domains
domains:
  example.com: {dns: external}
  example.de: {dns: external}
  indemed.com: {dns: external}
  borschow.com: {dns: external}
  ab.id.au: {dns: external}
  twlnet.com: {dns: external}
"""


def _db(project: Project) -> sqlite3.Connection:
    return sqlite3.connect(project.root / "build" / "dmarc" / "reports.sqlite3")


def _samples(tmp_path: Path) -> Path:
    out = tmp_path / "samples"
    shutil.copytree(SAMPLES, out, ignore=shutil.ignore_patterns("LICENSE"))
    return out


def test_parsedmarc_samples_stored_once_each(project: Project, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    project.zone("example", EXAMPLE)
    got = cli(project, capsys, "dmarc", "ingest", str(_samples(tmp_path)), "--format", "json")
    assert got.code == 0, got.err
    doc = json.loads(got.out)
    # 19 samples; two pairs are the same report (same org_name and report_id) in other bytes.
    assert (doc["read"], doc["added"], doc["duplicates"], doc["quarantined"]) == (19, 17, 2, [])
    with _db(project) as db:
        rows = dict(db.execute("SELECT report_id, policy_testing FROM dmarc_reports "
                               "WHERE xml_schema = '2.0'").fetchall())
        assert rows == {"dmarcbis-test-report-001": "y"}  # RFC 9990's t=y, as the report had it
        (np,), = db.execute("SELECT policy_np FROM dmarc_reports WHERE xml_schema = '2.0'")
        assert np == "reject"
        (large,), = db.execute(
            "SELECT COUNT(*) FROM dmarc_rows x JOIN dmarc_reports r ON r.id = x.report "
            "WHERE r.origin LIKE '%large-example%'")
        assert large == 2286
        (mail,), = db.execute("SELECT COUNT(*) FROM dmarc_reports WHERE origin LIKE '%.eml'")
        assert mail == 3  # the gzip, zip and weird-gzip mail messages
    again = cli(project, capsys, "dmarc", "ingest", str(tmp_path / "samples"), "--format", "json")
    assert again.code == 0
    doc = json.loads(again.out)
    assert (doc["added"], doc["already_read"], doc["store"]["reports"]) == (0, 19, 17)


def test_a_report_read_twice_in_other_forms_counts_once(project: Project, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    xml = g.aggregate(MOSA, "google.com", "r-1", TODAY, [g.platform_row(MOSA, 100)])
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.xml").write_bytes(xml)
    (tmp_path / "in" / "a.xml.gz").write_bytes(g.gzipped(xml))
    (tmp_path / "in" / "a.zip").write_bytes(g.zipped(xml))
    (tmp_path / "in" / "a.eml").write_bytes(g.message(xml, MOSA, "google.com", "r-1"))
    got = cli(project, capsys, "dmarc", "ingest", str(tmp_path / "in"), "--jobs", "1",
              "--format", "json")
    doc = json.loads(got.out)
    assert (doc["added"], doc["duplicates"], doc["store"]["reports"]) == (1, 3, 1)
    report = cli(project, capsys, "dmarc", "report", "mosa", "--today", TODAY.isoformat(),
                 "--format", "json")
    (domain,) = json.loads(report.out)["domains"]
    assert domain["volume"] == 100  # not 400


def test_bad_reports_are_quarantined_and_the_run_goes_on(project: Project, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    project.write("provisioner.yaml", (REPO / "provisioner.yaml").read_text()
                  + "dmarc_reports:\n  max_report_size: 100000\n")
    good = g.aggregate(MOSA, "google.com", "ok-1", TODAY, [g.platform_row(MOSA, 10)])
    bomb = (b'<?xml version="1.0"?>\n<!DOCTYPE feedback [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;'
            b'&b;&b;&b;">]>' + good.split(b"\n", 1)[1].replace(b"google.com</org_name>",
                                                                b"&c;</org_name>"))
    big = g.aggregate(MOSA, "yahoo.com", "big-1", TODAY,
                      [g.other_row(MOSA, 1, f"198.51.100.{i % 250}") for i in range(400)])
    assert len(big) > 100000
    d = tmp_path / "in"
    d.mkdir()
    (d / "1-good.xml").write_bytes(good)
    (d / "2-malformed.xml").write_bytes(good[: len(good) // 2])
    (d / "3-oversized.xml.gz").write_bytes(g.gzipped(big) + b"\0" * 100000)
    (d / "4-entities.xml").write_bytes(bomb)
    (d / "5-stranger.xml").write_bytes(g.aggregate("stranger.example", "google.com", "s-1",
                                                   TODAY, [g.platform_row("x.example", 1)]))
    (d / "6-after.xml").write_bytes(g.aggregate(MOSA, "yahoo.com", "ok-2", TODAY,
                                                [g.platform_row(MOSA, 5)]))
    got = cli(project, capsys, "dmarc", "ingest", str(d), "--format", "json")
    assert got.code == 2, got.err
    doc = json.loads(got.out)
    assert doc["added"] == 2  # the good one, and the one after the bad ones
    reasons = {Path(q["origin"]).name: q["reason"] for q in doc["quarantined"]}
    assert set(reasons) == {"2-malformed.xml", "3-oversized.xml.gz", "4-entities.xml",
                            "5-stranger.xml"}
    assert "over max_report_size (100000)" in reasons["3-oversized.xml.gz"]
    assert "DOCTYPE" in reasons["4-entities.xml"]
    assert "stranger.example is not a domain of any institution" in reasons["5-stranger.xml"]
    quarantine = project.root / "build" / "dmarc" / "quarantine"
    kept = sorted(p.name for p in quarantine.iterdir())
    assert any(k.endswith("-4-entities.xml") for k in kept)
    assert any(k.endswith("-4-entities.xml.reason") for k in kept)
    assert not any("oversized" in k for k in kept)  # not copied: its origin is the reference
    assert "quarantined" in got.err and "2 reports added" in got.err
    # Declared later, the stranger's report is read on a retry; the others stay quarantined.
    project.zone("stranger", "institution: stranger\nname: S\ndomains:\n"
                             "  stranger.example: {dns: external}\n")
    retry = cli(project, capsys, "dmarc", "ingest", str(d), "--retry-quarantined",
                "--format", "json")
    doc = json.loads(retry.out)
    assert doc["by_institution"] == {"stranger": 1}
    assert len(doc["quarantined"]) == 3


def test_the_oversized_limit_applies_after_decompression(project: Project, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    import parsedmarc

    rows = [g.other_row(MOSA, 1, "198.51.100.7")] * 20000
    xml = g.aggregate(MOSA, "google.com", "inflated", TODAY, rows)
    assert len(xml) > parsedmarc.MAX_DECOMPRESSED_REPORT_SIZE // 100
    (tmp_path / "z.xml.gz").write_bytes(g.gzipped(xml * 60))  # small on disk, huge inflated
    got = cli(project, capsys, "dmarc", "ingest", str(tmp_path / "z.xml.gz"), "--format", "json")
    assert got.code == 2
    (q,) = json.loads(got.out)["quarantined"]
    assert "limit" in q["reason"] or "exceeds" in q["reason"], q


# --- the report -----------------------------------------------------------------------------


def _write_days(d: Path, days: int, *, reporters: tuple[str, ...] = ("google.com", "yahoo.com"),
                platform: int = 1000, unaligned: int = 0, others: tuple[g.Row, ...] = (),
                policy: str = "none", testing: bool = False, start: int = 0,
                domain: str = MOSA) -> None:
    """``days`` days of reports ending ``start`` days before TODAY, one per reporter a day."""
    d.mkdir(exist_ok=True)
    for i in range(start, start + days):
        day = TODAY - timedelta(days=i)
        for org in reporters:
            rows = [g.platform_row(domain, platform - unaligned), *others]
            if unaligned:
                rows.append(g.platform_row(domain, unaligned, aligned=False))
            xml = g.aggregate(domain, org, f"{org}-{domain}-{day}", day, rows, policy, testing)
            name = g.file_name(org, domain, day, f"{org}-{day}").replace("/", "_")
            (d / (name + ".gz")).write_bytes(
                g.gzipped(xml))


def test_report_classifies_sources_and_ranks_the_failing(project: Project, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    others = (g.other_row(MOSA, 30, "203.0.113.9"), g.other_row(MOSA, 5, "198.51.100.4"),
              g.other_row(MOSA, 50, "192.0.2.80", passing=True),
              g.other_row(MOSA, 7, "198.51.100.200", reasons=("forwarded",)))
    _write_days(tmp_path / "in", 3, others=others)
    cli(project, capsys, "dmarc", "ingest", str(tmp_path / "in"), "--jobs", "1")
    got = cli(project, capsys, "dmarc", "report", "mosa", "--today", TODAY.isoformat(),
              "--format", "json")
    assert got.code == 0, got.err
    (dom,) = json.loads(got.out)["domains"]
    assert dom["volume"] == 3 * 2 * (1000 + 30 + 5 + 50 + 7)
    assert dom["platform"] == {"volume": 6000, "passed": 6000, "aligned_rate": 100.0}
    assert [d["volume"] for d in dom["daily"]] == [2 * 1092] * 3
    kinds = {s["source"]: s["kind"] for s in dom["sources"]}
    assert kinds["platform"] == "platform" and kinds["192.0.2.80"] == "other"
    failing = [(s["source"], s["failed"], s["explained"]) for s in dom["failing_sources"]]
    assert failing == [("203.0.113.9", 180, None), ("198.51.100.200", 42,
                                                    "the receivers: forwarded"),
                       ("198.51.100.4", 30, None)]
    text = cli(project, capsys, "dmarc", "report", "mosa", "--today", TODAY.isoformat())
    assert "mosa mosamuseum.com (managed, none)" in text.out
    assert "203.0.113.9" in text.out.split("failing sources")[1].splitlines()[1]


# --- the ramp -------------------------------------------------------------------------------


def _recommend(project: Project, capsys: pytest.CaptureFixture[str], d: Path
               ) -> dict[str, object]:
    got = cli(project, capsys, "dmarc", "ingest", str(d), "--jobs", "1")
    assert got.code == 0, got.err
    out = cli(project, capsys, "dmarc", "recommend", "mosa", "--today", TODAY.isoformat(),
              "--format", "json")
    assert out.code == 0, out.err
    (rec,) = json.loads(out.out)["recommendations"]
    return rec  # type: ignore[no-any-return]


def _blocking(rec: dict[str, object]) -> list[str]:
    return [c["check"] for c in rec["checks"] if not c["ok"]]  # type: ignore[attr-defined, index]


def test_the_ramp_recommends_the_next_rung_when_every_check_passes(
        project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_days(tmp_path / "in", 20, others=(g.other_row(MOSA, 3, "203.0.113.9"),))
    rec = _recommend(project, capsys, tmp_path / "in")
    assert (rec["current"], rec["next"], rec["recommended"]) == ("none", "quarantine; t=y",
                                                                 True)
    assert _blocking(rec) == []


@pytest.mark.parametrize("case, blocked", [
    ("days", "days of reports"),
    ("reporters", "reporters"),
    ("platform", "platform aligned"),
    ("unexplained", "unexplained failing sources"),
    ("held", "rung held"),
])
def test_each_ramp_criterion_blocks_on_its_own(case: str, blocked: str, project: Project,
                                               tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "in"
    if case == "days":
        # Held long enough (since 19 days ago) but with too few days of reports (11).
        for i in [*range(10), 19]:
            _write_days(d, 1, start=i)
    elif case == "reporters":
        _write_days(d, 20, reporters=("google.com",))
    elif case == "platform":
        _write_days(d, 20, unaligned=10)  # 99.0 % aligned
    elif case == "unexplained":
        _write_days(d, 20, others=(g.other_row(MOSA, 10, "203.0.113.9"),))  # 0.99 %
    elif case == "held":
        project.write("provisioner.yaml", (REPO / "provisioner.yaml").read_text()
                      + "dmarc_reports:\n  ramp: {min_days: 3}\n")
        project.zone("mosa", (REPO / "zones" / "mosa.yaml").read_text().replace(
            "policy: none", "policy: quarantine\n      testing: true"))
        _write_days(d, 15, start=5)
        _write_days(d, 5, policy="quarantine", testing=True)
    rec = _recommend(project, capsys, d)
    assert _blocking(rec) == [blocked], rec
    assert rec["recommended"] is False


def test_a_declared_explanation_unblocks_the_ramp(project: Project, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _write_days(tmp_path / "in", 20, others=(g.other_row(MOSA, 10, "203.0.113.9"),))
    project.zone("mosa", (REPO / "zones" / "mosa.yaml").read_text() + (
        "      explained_sources:\n"
        "        - {source: 203.0.113.0/24, reason: a spoofer we want rejected}\n"))
    rec = _recommend(project, capsys, tmp_path / "in")
    assert rec["recommended"] is True, rec
    check = next(c for c in rec["checks"] if c["check"] == "unexplained failing sources")  # type: ignore[attr-defined]
    assert check["measured"] == "none"


def test_receivers_still_seeing_the_old_rung_block_the_next(project: Project, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    project.zone("mosa", (REPO / "zones" / "mosa.yaml").read_text().replace(
        "policy: none", "policy: quarantine"))
    _write_days(tmp_path / "in", 20)  # receivers saw p=none throughout
    rec = _recommend(project, capsys, tmp_path / "in")
    assert rec["current"] == "quarantine" and _blocking(rec) == ["current rung seen"]
    assert "receivers last saw 'none'" in rec["checks"][0]["measured"]  # type: ignore[index]


def test_recommend_text_names_the_evidence(project: Project, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _write_days(tmp_path / "in", 20)
    cli(project, capsys, "dmarc", "ingest", str(tmp_path / "in"), "--jobs", "1")
    got = cli(project, capsys, "dmarc", "recommend", "--today", TODAY.isoformat())
    assert got.out.splitlines()[0] == "mosa mosamuseum.com: raise to 'quarantine; t=y'"
    assert "ok   reporters: 2 (google.com, yahoo.com)" in got.out
    assert "1 of 1 domain ready for the next rung" in got.err


def test_dmarc_commands_refuse_a_password_in_the_database_url(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    got = cli(project, capsys, "dmarc", "report", "--database",
              "postgresql://reports:hunter2@127.0.0.1/reports")
    assert got.code == 1
    assert "hunter2" not in got.err and "set PGPASSWORD" in got.err


def test_external_instructions_carry_the_ramp(project: Project, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    project.zone("ext", "institution: ext\nname: Ext\ndomains:\n  ext.example:\n"
                        "    dns: external\n    dmarc: {policy: none}\n")
    today = date.today()
    d = tmp_path / "in"
    for i in range(20):
        day = today - timedelta(days=i)
        for org in ("google.com", "yahoo.com"):
            xml = g.aggregate("ext.example", org, f"{org}-{day}", day,
                              [g.platform_row("ext.example", 500)])
            (d / f"{org}-{day}.xml").parent.mkdir(exist_ok=True)
            (d / f"{org}-{day}.xml").write_bytes(xml)
    cli(project, capsys, "dmarc", "ingest", str(d), "--jobs", "1")
    got = cli(project, capsys, "instructions", "ext", "--offline", "--format", "json")
    (dom,) = json.loads(got.out)["domains"]
    assert any("ready for the next policy step, quarantine; t=y" in n["message"]
               for n in dom["notes"]), dom["notes"]
    fr = cli(project, capsys, "instructions", "ext", "--offline", "--lang", "fr")
    line = next(x for x in fr.out.splitlines() if "prêt pour l'étape suivante" in x)
    assert "`quarantine; t=y`" in line and "Attention" not in line, line  # a note, no warning


def test_the_html_report_in_chromium(project: Project, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The page a support engineer opens: the chart drawn, the failing source shown with its
    share, the ramp's verdict, and nothing fetched from anywhere."""
    from tests.test_instructions_browser import ARGS, CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run scripts/install-system-deps")
    from playwright.sync_api import sync_playwright

    hostile = g.other_row(MOSA, 40, "203.0.113.66")
    _write_days(tmp_path / "in", 16, others=(hostile,), reporters=("google.com",
                                                                    "<b>evil</b>.example"))
    cli(project, capsys, "dmarc", "ingest", str(tmp_path / "in"), "--jobs", "1")
    out = tmp_path / "report.html"
    made = cli(project, capsys, "dmarc", "report", "--today", TODAY.isoformat(),
               "--format", "html", "--output", str(out))
    assert made.code == 0, made.err
    text = out.read_text()
    assert "<b>evil</b>" not in text and "&lt;b&gt;evil&lt;/b&gt;" in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "").replace(
        "http://www.w3.org/1999/xlink", "")
    requests: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(out.as_uri())
            section = page.locator("section.domain[data-domain='mosamuseum.com']")
            assert section.count() == 1
            chart = section.locator("figure.chart svg")
            box = chart.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 100
            assert chart.locator("path").count() > 10  # the lines, the bars, the axes
            rows = section.locator("table.sources tr")
            first_failing = [r.inner_text() for r in rows.all() if "203.0.113.66" in
                             r.inner_text()]
            assert first_failing and "3.8" in first_failing[0]  # 40 of 1040: 3.85 %
            assert "stay at" in section.locator(".verdict").inner_text()
            assert section.locator("li.wait").first.inner_text().startswith(
                "wait: unexplained failing sources")
            page.screenshot(path=str(tmp_path / "dmarc-report.png"), full_page=True)
        finally:
            context.close()
    assert requests == [out.as_uri()]
