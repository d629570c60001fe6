"""Where aggregate reports are kept: SQLite (the embedded default) or PostgreSQL (a fleet).

Written by hand over the two DB-API drivers (sqlite3, psycopg 3) rather than through an ORM:
three tables, a dozen statements, and the only differences are the placeholder and the id
column; SQLAlchemy would add a dependency bigger than this module for none of its features.

A report is one row of ``dmarc_reports``, keyed by what RFC 9990 §3.1.1 makes unique (the
reporter's org_name and report_id) and the domain it is about: a report read twice is counted
once (``INSERT ... ON CONFLICT DO NOTHING``, in both databases). Its records are rows of
``dmarc_rows``; what cannot be read is a row of ``dmarc_quarantine``, keyed by its SHA-256.
The URL of a PostgreSQL store never holds a password (libpq reads ``PGPASSWORD`` or
``~/.pgpass``); :func:`redact` is what any message shows of a URL anyway.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.errors import ProvisionerError

SCHEMA_VERSION = 1

_TABLES = """
CREATE TABLE IF NOT EXISTS dmarc_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dmarc_reports (
    id {id},
    institution TEXT NOT NULL,
    domain TEXT NOT NULL,
    org_name TEXT NOT NULL,
    org_email TEXT,
    report_id TEXT NOT NULL,
    begin_at TEXT NOT NULL,
    end_at TEXT NOT NULL,
    xml_schema TEXT,
    policy_p TEXT,
    policy_sp TEXT,
    policy_np TEXT,
    policy_testing TEXT,
    policy_pct INTEGER,
    policy_adkim TEXT,
    policy_aspf TEXT,
    origin TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    ingested_at TEXT NOT NULL,
    UNIQUE (org_name, report_id, domain)
);
CREATE INDEX IF NOT EXISTS dmarc_reports_by_domain ON dmarc_reports (institution, domain, begin_at);
CREATE TABLE IF NOT EXISTS dmarc_rows (
    report BIGINT NOT NULL REFERENCES dmarc_reports (id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    source_ip TEXT NOT NULL,
    reverse_dns TEXT,
    source_name TEXT,
    source_type TEXT,
    count BIGINT NOT NULL,
    disposition TEXT,
    dmarc_pass INTEGER NOT NULL,
    dkim_aligned INTEGER NOT NULL,
    spf_aligned INTEGER NOT NULL,
    header_from TEXT,
    envelope_from TEXT,
    dkim_auth TEXT NOT NULL,
    spf_auth TEXT NOT NULL,
    overrides TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dmarc_rows_by_report ON dmarc_rows (report);
CREATE INDEX IF NOT EXISTS dmarc_rows_by_day ON dmarc_rows (day);
CREATE TABLE IF NOT EXISTS dmarc_seen (sha256 TEXT PRIMARY KEY, report_of TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dmarc_quarantine (
    sha256 TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    kept_as TEXT,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
"""

_ROW_COLUMNS = ("report", "day", "source_ip", "reverse_dns", "source_name", "source_type",
                "count", "disposition", "dmarc_pass", "dkim_aligned", "spf_aligned",
                "header_from", "envelope_from", "dkim_auth", "spf_auth", "overrides")
_REPORT_COLUMNS = ("institution", "domain", "org_name", "org_email", "report_id", "begin_at",
                   "end_at", "xml_schema", "policy_p", "policy_sp", "policy_np",
                   "policy_testing", "policy_pct", "policy_adkim", "policy_aspf", "origin",
                   "sha256", "ingested_at")


class StoreError(ProvisionerError):
    """The store cannot be opened or written: the message names it (never a password)."""


def redact(url: str) -> str:
    """The URL as messages may show it: any password replaced by ``***``."""
    url = re.sub(r"(://[^/@:\s]+):[^@/\s]*@", r"\1:***@", url)
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", url)


@dataclass(frozen=True, slots=True)
class Report:
    """One aggregate report as stored: the fields the analysis reads."""

    institution: str
    domain: str
    org_name: str
    org_email: str | None
    report_id: str
    begin_at: str
    end_at: str
    xml_schema: str | None
    policy: dict[str, Any]
    origin: str
    sha256: str
    ingested_at: str
    rows: tuple[dict[str, Any], ...]


class Store:
    """An open store; ``with Store.open(url, root) as store: ...``."""

    def __init__(self, conn: Any, kind: str, url: str) -> None:
        self.conn = conn
        self.kind = kind
        self.url = url
        self._mark = "?" if kind == "sqlite" else "%s"

    # --- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, root: Path) -> Store:
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.is_absolute():
                path = root / path
            conn: Any
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(path, isolation_level=None, timeout=30)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"cannot open the report store {path}: {exc}") from None
            store = cls(conn, "sqlite", url)
        elif url.startswith(("postgresql://", "postgres://")):
            try:
                import psycopg
            except ImportError:
                raise StoreError("a PostgreSQL store needs psycopg: pip install "
                                 "'mailauth-provisioner[dmarc]'") from None
            try:
                conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc)
                raise StoreError(f"cannot connect to the report store {redact(url)}: "
                                 f"{redact(str(first))}") from None
            store = cls(conn, "postgresql", url)
        else:
            raise StoreError(f"{redact(url)}: not a report store URL; use sqlite:///PATH or "
                             "postgresql://USER@HOST/DB")
        store._create()
        return store

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def _create(self) -> None:
        ident = ("INTEGER PRIMARY KEY" if self.kind == "sqlite"
                 else "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
        with self.transaction() as cur:
            for statement in _TABLES.format(id=ident).split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute(self._sql("INSERT INTO dmarc_meta (key, value) VALUES (?, ?) "
                                  "ON CONFLICT (key) DO NOTHING"),
                        ("schema_version", str(SCHEMA_VERSION)))

    # --- writing ----------------------------------------------------------------------------

    def _sql(self, statement: str) -> str:
        return statement if self._mark == "?" else statement.replace("?", "%s")

    class _Tx:
        def __init__(self, store: Store) -> None:
            self.store = store

        def __enter__(self) -> Any:
            conn = self.store.conn
            self.cur = conn.cursor()
            self.cur.execute("BEGIN")
            return self.cur

        def __exit__(self, kind: object, *rest: object) -> None:
            self.cur.execute("COMMIT" if kind is None else "ROLLBACK")
            self.cur.close()

    def transaction(self) -> Store._Tx:
        return Store._Tx(self)

    def add_reports(self, reports: Sequence[Report]) -> list[bool]:
        """Store the reports in one transaction; for each, whether it was new (a report
        already stored is left as it is and counted once)."""
        added: list[bool] = []
        insert = self._sql(
            f"INSERT INTO dmarc_reports ({', '.join(_REPORT_COLUMNS)}) VALUES "
            f"({', '.join('?' * len(_REPORT_COLUMNS))}) "
            "ON CONFLICT (org_name, report_id, domain) DO NOTHING RETURNING id")
        rows_sql = self._sql(f"INSERT INTO dmarc_rows ({', '.join(_ROW_COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(_ROW_COLUMNS))})")
        with self.transaction() as cur:
            for report in reports:
                p = report.policy
                cur.execute(insert, (
                    report.institution, report.domain, report.org_name, report.org_email,
                    report.report_id, report.begin_at, report.end_at, report.xml_schema,
                    p.get("p"), p.get("sp"), p.get("np"), p.get("testing"), p.get("pct"),
                    p.get("adkim"), p.get("aspf"), report.origin, report.sha256,
                    report.ingested_at))
                got = cur.fetchone()
                if got is None:  # the same report in other bytes: those bytes are read too
                    cur.execute(self._sql("INSERT INTO dmarc_seen (sha256, report_of) VALUES "
                                          "(?, ?) ON CONFLICT (sha256) DO NOTHING"),
                                (report.sha256, f"{report.org_name} {report.report_id}"))
                    added.append(False)
                    continue
                added.append(True)
                cur.executemany(rows_sql, [
                    (got[0], r["day"], r["source_ip"], r.get("reverse_dns"),
                     r.get("source_name"), r.get("source_type"), r["count"],
                     r.get("disposition"), int(r["dmarc_pass"]), int(r["dkim_aligned"]),
                     int(r["spf_aligned"]), r.get("header_from"), r.get("envelope_from"),
                     json.dumps(r.get("dkim_auth", []), separators=(",", ":")),
                     json.dumps(r.get("spf_auth", []), separators=(",", ":")),
                     ",".join(r.get("overrides", ())))
                    for r in report.rows])
        return added

    def quarantine(self, sha256: str, origin: str, kept_as: str | None, reason: str,
                   at: str) -> bool:
        """Record a report that could not be read; False when it was already recorded."""
        with self.transaction() as cur:
            cur.execute(self._sql(
                "INSERT INTO dmarc_quarantine (sha256, origin, kept_as, reason, at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING RETURNING sha256"),
                (sha256, origin, kept_as, reason, at))
            return cur.fetchone() is not None

    def known(self, sha256s: Iterable[str]) -> set[str]:
        """Which of these contents were stored or quarantined already (a second run over the
        same files or mailbox skips them before parsing)."""
        wanted = list(dict.fromkeys(sha256s))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            for table in ("dmarc_reports", "dmarc_seen", "dmarc_quarantine"):
                found.update(r[0] for r in self._query(
                    f"SELECT sha256 FROM {table} WHERE sha256 IN ({marks})", chunk))
        return found

    # --- reading ----------------------------------------------------------------------------

    def _query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(self._sql(statement), tuple(params))
            return list(cur.fetchall())
        finally:
            cur.close()

    def counts(self) -> dict[str, int]:
        (reports,), = self._query("SELECT COUNT(*) FROM dmarc_reports")
        (rows,), = self._query("SELECT COUNT(*) FROM dmarc_rows")
        (bad,), = self._query("SELECT COUNT(*) FROM dmarc_quarantine")
        return {"reports": int(reports), "rows": int(rows), "quarantined": int(bad)}

    def quarantined(self) -> list[dict[str, str]]:
        return [{"sha256": r[0], "origin": r[1], "kept_as": r[2] or "", "reason": r[3],
                 "at": r[4]}
                for r in self._query("SELECT sha256, origin, kept_as, reason, at "
                                     "FROM dmarc_quarantine ORDER BY at, sha256")]

    def daily(self, since: str, until: str, institutions: Sequence[str] | None = None
              ) -> Iterator[dict[str, Any]]:
        """The rows of the reports that began between ``since`` and ``until`` (days,
        inclusive), summed by everything the analysis tells apart."""
        where = "x.day >= ? AND x.day <= ?"
        params: list[Any] = [since, until]
        if institutions is not None:
            if not institutions:
                return
            where += f" AND r.institution IN ({', '.join('?' * len(institutions))})"
            params.extend(institutions)
        statement = f"""
            SELECT r.institution, r.domain, x.day, r.org_name, r.policy_p, r.policy_testing,
                   x.source_ip, x.reverse_dns, x.source_name, x.source_type, x.dmarc_pass,
                   x.dkim_aligned, x.spf_aligned, x.envelope_from, x.dkim_auth, x.overrides,
                   SUM(x.count)
            FROM dmarc_rows x JOIN dmarc_reports r ON r.id = x.report
            WHERE {where}
            GROUP BY r.institution, r.domain, x.day, r.org_name, r.policy_p, r.policy_testing,
                     x.source_ip, x.reverse_dns, x.source_name, x.source_type, x.dmarc_pass,
                     x.dkim_aligned, x.spf_aligned, x.envelope_from, x.dkim_auth, x.overrides
            ORDER BY r.institution, r.domain, x.day"""
        names = ("institution", "domain", "day", "reporter", "policy_p", "policy_testing",
                 "source_ip", "reverse_dns", "source_name", "source_type", "dmarc_pass",
                 "dkim_aligned", "spf_aligned", "envelope_from", "dkim_auth", "overrides",
                 "count")
        for row in self._query(statement, params):
            item = dict(zip(names, row, strict=True))
            item["count"] = int(item["count"])
            item["dkim_auth"] = json.loads(item["dkim_auth"])
            yield item
