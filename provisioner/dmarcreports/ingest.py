"""``dmarc ingest``: aggregate reports from files and from an IMAP mailbox into the store.

Parsing is parsedmarc's (the parser that knows real reporters' quirks: RFC 7489 and RFC 9990
XML, gzip, zip, mail messages carrying them; it refuses any DOCTYPE, so no entity is ever
expanded, and bounds what a compressed report may inflate to). What is ours: which institution
and domain a report belongs to, what is kept of each record, that a report read twice counts
once, and that a report that cannot be read is quarantined with its reason while the run goes
on. Reports are parsed in worker processes (parsing is the cost; the store is written by this
one), fed a bounded number at a time, so memory stays flat however many there are.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from provisioner.dmarcreports.store import Report, Store, redact
from provisioner.errors import ProvisionerError
from provisioner.names import normalize

log = logging.getLogger(__name__)

#: What a source may be called in the quarantine (its own name, made harmless).
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Reports in flight at once per worker: bounds memory whatever the count.
_IN_FLIGHT = 8
_BATCH = 200


class IngestError(ProvisionerError):
    """The run cannot start (no such path, mailbox unreachable): one line, never a password."""


@dataclass(frozen=True, slots=True)
class Item:
    """One thing to read: a file (``path``) or a mail message (``data``)."""

    origin: str
    path: str | None = None
    data: bytes | None = None
    size: int = 0


@dataclass(slots=True)
class Outcome:
    """What a run did, for the closing line and ``--format json``."""

    read: int = 0
    added: int = 0
    duplicates: int = 0
    already_read: int = 0
    quarantined: list[dict[str, str]] = field(default_factory=list)
    by_institution: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"read": self.read, "added": self.added, "duplicates": self.duplicates,
                "already_read": self.already_read, "quarantined": self.quarantined,
                "by_institution": dict(sorted(self.by_institution.items()))}


# --- the sources ----------------------------------------------------------------------------


def files(paths: Sequence[Path]) -> Iterator[Item]:
    """Every regular file under the paths, in name order; symbolic links are not followed
    (a report directory is written by a mail filter, not trusted to point elsewhere)."""
    for path in paths:
        if path.is_symlink():
            log.warning("%s: a symbolic link, not followed", path)
            continue
        if path.is_file():
            yield Item(str(path), path=str(path), size=path.stat().st_size)
        elif path.is_dir():
            for parent, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    full = Path(parent, name)
                    if name.startswith(".") or name.endswith(".reason") or full.is_symlink() \
                            or not full.is_file():
                        continue
                    yield Item(str(full), path=str(full), size=full.stat().st_size)
        else:
            raise IngestError(f"{path}: no such file or directory")


@dataclass(frozen=True, slots=True)
class Mailbox:
    """``imap[s]://USER@HOST[:PORT]/FOLDER``; the password comes from the environment."""

    host: str
    port: int
    user: str
    folder: str
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Mailbox:
        parts = urlsplit(url)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
            raise IngestError(f"{redact(url)}: not a mailbox URL; use "
                              "imaps://USER@HOST[:PORT]/FOLDER")
        if parts.password is not None:
            raise IngestError("the mailbox URL holds a password: remove it and set "
                              "PROVISIONER_IMAP_PASSWORD (a masked CI/CD variable)")
        tls = parts.scheme == "imaps"
        return cls(parts.hostname, parts.port or (993 if tls else 143),
                   unquote(parts.username), unquote(parts.path.lstrip("/")) or "INBOX", tls)

    def __str__(self) -> str:
        scheme = "imaps" if self.tls else "imap"
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{self.folder}"


def mailbox_items(box: Mailbox, password: str, max_size: int,
                  archive: str | None = None) -> tuple[Iterator[Item], Callable[[], None]]:
    """The folder's messages, fetched a few at a time (the size is asked first: a message
    over the limit is quarantined unread), and a function that moves the messages read to
    ``archive`` (when given) and logs out."""
    try:
        from imapclient import IMAPClient
        from imapclient.exceptions import IMAPClientError
    except ImportError:
        raise IngestError("reading a mailbox needs IMAPClient: pip install "
                          "'mailauth-provisioner[dmarc]'") from None
    try:
        client = IMAPClient(box.host, port=box.port, ssl=box.tls, timeout=60,
                            ssl_context=ssl.create_default_context() if box.tls else None)
        client.login(box.user, password)
        client.select_folder(box.folder)
        uids = client.search(["NOT", "DELETED"])
    except (IMAPClientError, OSError) as exc:
        # imaplib's messages carry the server's words, never the password sent.
        raise IngestError(f"{box}: {str(exc).strip() or type(exc).__name__}") from None
    done: list[int] = []

    def items() -> Iterator[Item]:
        for start in range(0, len(uids), 50):
            chunk = uids[start:start + 50]
            sizes = client.fetch(chunk, ["RFC822.SIZE"])
            small = [u for u in chunk if int(sizes.get(u, {}).get(b"RFC822.SIZE", 0)) <= max_size]
            for uid in chunk:
                if uid not in small:
                    size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
                    yield Item(f"{box};UID={uid}", data=None, size=size)
                    done.append(uid)
            bodies = client.fetch(small, ["BODY.PEEK[]"]) if small else {}
            for uid in small:
                data = bodies.get(uid, {}).get(b"BODY[]", b"")
                yield Item(f"{box};UID={uid}", data=bytes(data), size=len(data))
                done.append(uid)

    def finish() -> None:
        try:
            if archive and done:
                if not client.folder_exists(archive):
                    client.create_folder(archive)
                client.copy(done, archive)
                client.delete_messages(done)
                client.expunge()
        finally:
            with contextlib.suppress(IMAPClientError, OSError):
                client.logout()

    return items(), finish


# --- parsing (in the workers) ---------------------------------------------------------------


def _utc(text: Any) -> str:
    """parsedmarc's ``2023-11-14 22:13:20`` (UTC) as ``2023-11-14T22:13:20Z``."""
    return str(text).strip().replace(" ", "T") + "Z"


def _word(value: Any) -> str | None:
    return None if value in (None, "") else str(value).strip().lower()


def _rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for rec in records:
        src = rec.get("source") or {}
        align = rec.get("alignment") or {}
        evaluated = rec.get("policy_evaluated") or {}
        ident = rec.get("identifiers") or {}
        auth = rec.get("auth_results") or {}
        begin = rec.get("interval_begin")
        rows.append({
            "day": str(begin)[:10],
            "source_ip": str(src.get("ip_address") or ""),
            "reverse_dns": _word(src.get("reverse_dns")),
            "source_name": src.get("name") or src.get("as_name"),
            "source_type": src.get("type"),
            "count": int(rec.get("count") or 0),
            "disposition": _word(evaluated.get("disposition")),
            "dmarc_pass": bool(align.get("dmarc")),
            "dkim_aligned": bool(align.get("dkim")),
            "spf_aligned": bool(align.get("spf")),
            "header_from": _word(ident.get("header_from")),
            "envelope_from": _word(ident.get("envelope_from")),
            "dkim_auth": [[_word(a.get("domain")), _word(a.get("selector")),
                           _word(a.get("result"))] for a in auth.get("dkim") or ()],
            "spf_auth": [[_word(a.get("domain")), _word(a.get("result"))]
                         for a in auth.get("spf") or ()],
            "overrides": sorted({str(o.get("type") or "").lower()
                                 for o in evaluated.get("policy_override_reasons") or ()
                                 if o.get("type")}),
        })
    return rows


def parse(item: Item, max_size: int) -> tuple[str, str, Any]:
    """``(sha256, "ok", report)`` or ``(sha256, "bad", reason)``; never raises."""
    try:
        data = item.data if item.data is not None else Path(item.path or "").read_bytes()
    except OSError as exc:
        return "", "bad", f"cannot read: {exc.strerror or exc}"
    digest = hashlib.sha256(data).hexdigest()
    if len(data) > max_size:
        return digest, "bad", f"{len(data)} bytes, over max_report_size ({max_size})"
    try:
        import parsedmarc
    except ImportError:  # pragma: no cover - the command checks first
        return digest, "bad", "parsedmarc is not installed"
    try:
        parsed = parsedmarc.parse_report_file(data, offline=True, always_use_local_files=True)
    except Exception as exc:  # parsedmarc raises many kinds; each is a reason, not a crash
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        return digest, "bad", reason
    if parsed.get("report_type") != "aggregate":
        return digest, "bad", f"a {parsed.get('report_type')} report, not an aggregate one"
    rep = parsed["report"]
    meta = rep.get("report_metadata") or {}
    policy: dict[str, Any] = {k: _word(v)
                              for k, v in (rep.get("policy_published") or {}).items()}
    if policy.get("pct") is not None:
        try:
            policy["pct"] = int(str(policy["pct"]))
        except ValueError:
            policy["pct"] = None
    return digest, "ok", {
        "org_name": str(meta.get("org_name") or "").strip(),
        "org_email": meta.get("org_email"),
        "report_id": str(meta.get("report_id") or "").strip(),
        "begin_at": _utc(meta.get("begin_date")),
        "end_at": _utc(meta.get("end_date")),
        "xml_schema": rep.get("xml_schema"),
        "policy": policy,
        "rows": _rows(rep.get("records") or ()),
    }


def _parse_many(items: Sequence[Item], max_size: int) -> list[tuple[str, str, Any]]:
    return [parse(item, max_size) for item in items]


# --- the run --------------------------------------------------------------------------------


class Ingester:
    """One run: ``Ingester(store, domains, quarantine_dir).run(items)``.

    ``domains`` maps each declared domain to its institution; a report about a domain no
    declaration names is quarantined (the rua is public: anybody can send one)."""

    def __init__(self, store: Store, domains: Mapping[str, str], quarantine_dir: Path,
                 max_size: int, jobs: int | None = None,
                 progress: Callable[[int], None] | None = None,
                 reverse_dns: Callable[[list[str]], dict[str, str]] | None = None) -> None:
        self.store = store
        self.domains = domains
        self.quarantine_dir = quarantine_dir
        self.max_size = max_size
        self.jobs = jobs if jobs is not None else (os.cpu_count() or 1)
        self.progress = progress
        self.reverse_dns = reverse_dns
        self._names: dict[str, str] = {}  # source IP -> its PTR name ("" when it has none)
        self.outcome = Outcome()
        self._pending: list[tuple[Report, str]] = []
        self._now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def institution_of(self, domain: str) -> tuple[str, str] | None:
        """The declared domain a report's policy domain is (or is under), and its owner."""
        name = domain
        while name:
            if name in self.domains:
                return self.domains[name], name
            name = name.partition(".")[2]
        return None

    def run(self, items: Iterable[Item]) -> Outcome:
        executor = self._executor()
        try:
            for batch in _batches(items, _BATCH):
                self._run_batch(batch, executor)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
            self._flush()
        return self.outcome

    def _executor(self) -> Executor:
        if self.jobs > 1:
            try:
                return ProcessPoolExecutor(max_workers=self.jobs)
            except (OSError, NotImplementedError):  # no POSIX semaphores (a bare chroot)
                pass
        return ThreadPoolExecutor(max_workers=1)

    def _run_batch(self, batch: list[Item], executor: Executor) -> None:
        # Files already read (same bytes) are skipped before any parsing.
        todo: list[Item] = []
        digests: dict[int, str] = {}
        for i, item in enumerate(batch):
            if item.data is None and item.path is None:  # a message too large to fetch
                self._bad(item, "", f"{item.size} bytes, over max_report_size "
                                    f"({self.max_size}): not fetched", keep=False)
                continue
            if item.size > self.max_size:
                self._bad(item, _digest_of(item),
                          f"{item.size} bytes, over max_report_size ({self.max_size})",
                          keep=False)
                continue
            digests[i] = _digest_of(item)
            todo.append(item)
        known = self.store.known(digests.values())
        fresh = [item for i, item in enumerate(batch) if i in digests
                 and digests[i] not in known]
        self.outcome.already_read += len(todo) - len(fresh)
        if self.progress and len(todo) != len(fresh):
            self.progress(len(todo) - len(fresh))
        size = max(1, len(fresh) // (self.jobs * _IN_FLIGHT) or 1)
        futures: list[tuple[list[Item], Future[list[tuple[str, str, Any]]]]] = []
        for start in range(0, len(fresh), size):
            chunk = fresh[start:start + size]
            futures.append((chunk, executor.submit(_parse_many, chunk, self.max_size)))
        for chunk, future in futures:
            for item, (digest, state, value) in zip(chunk, future.result(), strict=True):
                self.outcome.read += 1
                if state == "bad":
                    self._bad(item, digest, value)
                else:
                    self._good(item, digest, value)
                if self.progress:
                    self.progress(1)
        self._flush()

    def _good(self, item: Item, digest: str, rep: dict[str, Any]) -> None:
        raw_domain = rep["policy"].get("domain") or ""
        try:
            domain = normalize(raw_domain)
        except Exception:
            self._bad(item, digest, f"policy_published domain {raw_domain[:80]!r} is not a "
                                    "domain name")
            return
        owner = self.institution_of(domain)
        if owner is None:
            self._bad(item, digest, f"{domain} is not a domain of any institution (zones/)")
            return
        if not rep["org_name"] or not rep["report_id"]:
            self._bad(item, digest, "no org_name or report_id: a report cannot be told apart")
            return
        institution, declared = owner
        self._pending.append((Report(
            institution=institution, domain=declared, org_name=rep["org_name"],
            org_email=rep["org_email"], report_id=rep["report_id"], begin_at=rep["begin_at"],
            end_at=rep["end_at"], xml_schema=rep["xml_schema"], policy=rep["policy"],
            origin=item.origin, sha256=digest, ingested_at=self._now,
            rows=tuple(rep["rows"])), institution))
        if len(self._pending) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        if self.reverse_dns is not None:
            rows = [row for report, _ in pending for row in report.rows
                    if not row.get("reverse_dns") and row.get("source_ip")]
            wanted = sorted({r["source_ip"] for r in rows} - set(self._names))
            if wanted:
                found = self.reverse_dns(wanted)
                self._names.update({ip: found.get(ip, "") for ip in wanted})
            for row in rows:
                row["reverse_dns"] = self._names.get(row["source_ip"]) or None
        for (_, code), added in zip(pending, self.store.add_reports([r for r, _ in pending]),
                                    strict=True):
            if added:
                self.outcome.added += 1
                self.outcome.by_institution[code] = self.outcome.by_institution.get(code, 0) + 1
            else:
                self.outcome.duplicates += 1

    def _bad(self, item: Item, digest: str, reason: str, keep: bool = True) -> None:
        """Keep the report's bytes beside its reason in the quarantine directory (unless it is
        too large to copy: then its origin is the reference) and record it once."""
        kept: str | None = None
        if keep:
            name = _SAFE.sub("_", Path(item.origin.split(";UID=")[0]).name)[-80:] or "report"
            if ";UID=" in item.origin:
                name = f"uid{item.origin.rsplit('=', 1)[1]}.eml"
            target = self.quarantine_dir / f"{(digest or 'unread')[:16]}-{name}"
            try:
                self.quarantine_dir.mkdir(parents=True, exist_ok=True)
                data = item.data if item.data is not None else Path(item.path or "").read_bytes()
                target.write_bytes(data)
                target.with_name(target.name + ".reason").write_text(
                    f"{item.origin}\n{reason}\n", encoding="utf-8")
                kept = str(target)
            except OSError as exc:
                log.warning("%s: cannot keep it in the quarantine: %s", item.origin, exc)
        self.store.quarantine(digest or hashlib.sha256(item.origin.encode()).hexdigest(),
                              item.origin, kept, reason, self._now)
        self.outcome.quarantined.append({"origin": item.origin, "reason": reason,
                                         "kept_as": kept or ""})
        log.warning("%s: quarantined: %s", item.origin, reason)


def _digest_of(item: Item) -> str:
    if item.data is not None:
        return hashlib.sha256(item.data).hexdigest()
    h = hashlib.sha256()
    try:
        with open(item.path or "", "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError:
        return ""
    return h.hexdigest()


def _batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def ptr_lookup(client: Any) -> Callable[[list[str]], dict[str, str]]:
    """Reverse DNS of source addresses through the client's recursive servers, many queries in
    flight at once: each address's first PTR name, lower-case, without the final dot. A name
    from DNS is anybody's input: it is kept only when it is a host name."""
    import ipaddress

    from provisioner.dnsclient import NOERROR, Query, fqdn

    servers = client.recursive_servers()

    def lookup(ips: list[str]) -> dict[str, str]:
        if not servers:
            return {}
        queries = {}
        for ip in ips:
            try:
                name = ipaddress.ip_address(ip).reverse_pointer + "."
            except ValueError:
                continue
            queries[ip] = Query(servers[0], fqdn(name), "PTR")
        answers = client.lookup_many(list(queries.values()))
        out: dict[str, str] = {}
        for ip, q in queries.items():
            answer = answers[q]
            if answer.status != NOERROR or not answer.values:
                continue
            host = str(answer.values[0]).rstrip(".").lower()
            if re.fullmatch(r"[a-z0-9_]([a-z0-9_-]{0,62}\.)*[a-z0-9-]{1,63}", host) \
                    and len(host) <= 253:
                out[ip] = host
        return out

    return lookup
