"""DMARC reports through real servers (issue 12, part 3): ingestion into PostgreSQL (Debian's,
started on 127.0.0.1) giving the same report as SQLite, and from a Dovecot IMAP mailbox
(Debian's), read once, archived on request, with the password only from the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import dmarcgen as g
from tests.conftest import Project, cli
from tests.mailservers import (  # noqa: F401 - fixtures
    PG_DATABASE,
    PG_PASSWORD,
    PG_USER,
    DovecotServer,
    PostgresServer,
    dovecot,
    dovecot_server,
    postgres,
    postgres_server,
)
from tests.servers import PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures
from tests.test_dmarc_reports import MOSA, SAMPLES, TODAY, _samples, _write_days

EXAMPLE = """
institution: example
name: The samples' domains
domains:
  example.com: {dns: external}
  example.de: {dns: external}
  indemed.com: {dns: external}
"""


def _pg_url(server: PostgresServer) -> str:
    return f"postgresql://{PG_USER}@127.0.0.1:{server.port}/{PG_DATABASE}"


def test_postgresql_stores_what_sqlite_stores(project: Project, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              postgres: PostgresServer,  # noqa: F811
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", PG_PASSWORD)
    project.zone("example", EXAMPLE)
    _write_days(tmp_path / "in", 5, others=(g.other_row(MOSA, 9, "203.0.113.9"),))
    samples = _samples(tmp_path)
    url = _pg_url(postgres)
    pg = cli(project, capsys, "dmarc", "ingest", str(tmp_path / "in"), str(samples),
             "--database", url, "--format", "json")
    assert pg.code == 2, pg.err  # three samples are about domains not declared here
    lite = cli(project, capsys, "dmarc", "ingest", str(tmp_path / "in"), str(samples),
               "--format", "json")
    assert json.loads(pg.out)["store"] == json.loads(lite.out)["store"]
    again = cli(project, capsys, "dmarc", "ingest", str(tmp_path / "in"), "--database", url,
                "--format", "json")
    assert json.loads(again.out)["added"] == 0  # idempotent in PostgreSQL too
    args = ("dmarc", "report", "--today", TODAY.isoformat(), "--days", "4000",
            "--format", "json")
    from_pg = json.loads(cli(project, capsys, *args, "--database", url).out)
    from_lite = json.loads(cli(project, capsys, *args).out)
    assert from_pg == from_lite
    assert {d["domain"] for d in from_pg["domains"]} == {MOSA, "example.com", "example.de",
                                                         "indemed.com"}
    with postgres.connect() as conn:
        (n,), = conn.execute("SELECT COUNT(*) FROM dmarc_reports").fetchall()
        assert n == json.loads(pg.out)["store"]["reports"]
    assert PG_PASSWORD not in pg.out + pg.err + lite.err


def test_a_wrong_postgresql_password_is_one_line(project: Project,
                                                 capsys: pytest.CaptureFixture[str],
                                                 postgres: PostgresServer,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "not-it")
    got = cli(project, capsys, "dmarc", "report", "--database", _pg_url(postgres))
    assert got.code == 1
    assert got.err.count("\n") == 1 and "cannot connect to the report store" in got.err
    assert "not-it" not in got.err


def test_reports_from_an_imap_mailbox(project: Project, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str],
                                      dovecot: DovecotServer,  # noqa: F811
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = ("gzip", "zip", "xml")
    for i, day_offset in enumerate(range(6)):
        day = TODAY.fromordinal(TODAY.toordinal() - day_offset)
        xml = g.aggregate(MOSA, "google.com", f"imap-{i}", day, [g.platform_row(MOSA, 100)])
        dovecot.append("INBOX", g.message(xml, MOSA, "google.com", f"imap-{i}",
                                          kind=kinds[i % 3]))
    dovecot.append("INBOX", b"From: someone@example.net\r\nSubject: hello\r\n\r\nnot a report\r\n")
    dovecot.append("INBOX", (SAMPLES / "twilight.eml").read_bytes())  # a real one, other domain
    url = f"imap://{dovecot.user}@127.0.0.1:{dovecot.port}/INBOX"
    monkeypatch.delenv("PROVISIONER_IMAP_PASSWORD", raising=False)
    nopw = cli(project, capsys, "dmarc", "ingest", "--imap", url)
    assert nopw.code == 1 and "PROVISIONER_IMAP_PASSWORD" in nopw.err
    inline = cli(project, capsys, "dmarc", "ingest", "--imap",
                 url.replace("@", ":secret@", 1))
    assert inline.code == 1 and "secret" not in inline.err
    monkeypatch.setenv("PROVISIONER_IMAP_PASSWORD", "wrong")
    wrong = cli(project, capsys, "dmarc", "ingest", "--imap", url)
    assert wrong.code == 1 and wrong.err.count("\n") == 1 and "wrong" not in wrong.err
    monkeypatch.setenv("PROVISIONER_IMAP_PASSWORD", dovecot.password)
    got = cli(project, capsys, "dmarc", "ingest", "--imap", url, "--format", "json")
    assert got.code == 2, got.err  # the two that are not reports of ours: quarantined
    doc = json.loads(got.out)
    assert (doc["added"], len(doc["quarantined"])) == (6, 2)
    assert all(";UID=" in q["origin"] for q in doc["quarantined"])
    assert dovecot.messages("INBOX") == 8  # left in place without --imap-archive
    again = cli(project, capsys, "dmarc", "ingest", "--imap", url, "--imap-archive",
                "Processed", "--format", "json")
    doc = json.loads(again.out)
    assert (doc["added"], doc["already_read"]) == (0, 8)
    assert dovecot.messages("INBOX") == 0 and dovecot.messages("Processed") == 8
    report = cli(project, capsys, "dmarc", "report", "mosa", "--today", TODAY.isoformat(),
                 "--format", "json")
    (dom,) = json.loads(report.out)["domains"]
    assert dom["volume"] == 600 and len(dom["daily"]) == 6
    assert dovecot.password not in got.out + got.err + again.err


def test_reverse_dns_tells_other_senders_apart(project: Project, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               pdns: PdnsServer) -> None:  # noqa: F811
    """Two addresses of one sender become one source under its PTR name; a hostile PTR
    (not a host name) is not kept; an address without PTR stays an address."""
    pdns.create_zone("113.0.203.in-addr.arpa", [
        ("9", "PTR", 300, ["mta1.newsletter.example."]),
        ("10", "PTR", 300, ["MTA1.Newsletter.Example."]),
        ("11", "PTR", 300, ["evil\\032name\\027[31m.example."]),
    ])
    others = (g.other_row(MOSA, 20, "203.0.113.9"), g.other_row(MOSA, 10, "203.0.113.10"),
              g.other_row(MOSA, 5, "203.0.113.11"), g.other_row(MOSA, 3, "203.0.113.12"))
    _write_days(tmp_path / "in", 2, others=others)
    got = cli(project, capsys, "dmarc", "ingest", str(tmp_path / "in"), "--jobs", "1",
              "--reverse-dns", "--nameserver", f"127.0.0.1:{pdns.dns_port}")
    assert got.code == 0, got.err
    report = cli(project, capsys, "dmarc", "report", "mosa", "--today", TODAY.isoformat(),
                 "--format", "json")
    (dom,) = json.loads(report.out)["domains"]
    failing = {s["source"]: (s["failed"], s["ip_count"]) for s in dom["failing_sources"]}
    assert failing == {"mta1.newsletter.example": (2 * 2 * 30, 2),
                       "203.0.113.11": (20, 1), "203.0.113.12": (12, 1)}
