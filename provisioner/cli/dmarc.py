"""`provisioner dmarc ingest|report|recommend`: the aggregate reports at the platform's rua,
read per institution, and each policy raised a rung at a time on their evidence (DESIGN §11).

- ``ingest [PATH ...] [--imap URL]``: reports from files and directories (``.xml``,
  ``.xml.gz``, ``.zip``, mail messages) and from an IMAP folder into the store
  (``dmarc_reports.database``: SQLite by default, PostgreSQL for a fleet). A report read
  twice counts once; one that cannot be read is quarantined with its reason and the run goes
  on (exit 2 when any was). The mailbox password only from ``PROVISIONER_IMAP_PASSWORD``.
- ``report [CODE] --format text|json|html``: daily volume and pass rate, the sources, the
  failing ones by volume; the HTML with a chart.
- ``recommend [CODE] [--merge-request]``: each domain's next rung and its evidence; with
  ``--merge-request``, the declaration change in one merge request per institution (opened
  or updated). It never writes DNS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from provisioner.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, load, plural


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day such as 2026-12-02") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "dmarc", help="DMARC aggregate reports: ingest, report, recommend the next rung",
        description="The aggregate reports at the platform's rua, read per institution "
                    "(docs/dmarc-reports.md).")
    # --config is taken before the step too (provisioner dmarc --config F report).
    p.add_argument("--config", dest="outer_config", metavar="FILE", default=None,
                   help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="dmarc_command", metavar="STEP", required=True)
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--database", metavar="URL",
                       help="sqlite:///PATH or postgresql://USER@HOST/DB (default: "
                            "dmarc_reports.database of provisioner.yaml)")
    i = sub.add_parser("ingest", parents=[common, store], help="read reports into the store",
                       description="Read aggregate reports from files, directories and an "
                                   "IMAP folder; quarantine what cannot be read.")
    i.add_argument("paths", nargs="*", metavar="PATH", help="report files or directories")
    i.add_argument("--imap", metavar="URL", help="imaps://USER@HOST[:PORT]/FOLDER (password: "
                   "PROVISIONER_IMAP_PASSWORD)")
    i.add_argument("--imap-archive", metavar="FOLDER",
                   help="move the messages read to this folder (default: leave them)")
    i.add_argument("--retry-quarantined", action="store_true",
                   help="read again what was quarantined before (e.g. after a domain was "
                        "declared)")
    i.add_argument("--jobs", type=_positive, default=None, metavar="N",
                   help="parsing processes (default: one per core)")
    i.add_argument("--reverse-dns", action="store_true",
                   help="look up each source's PTR name (DNS, many queries at once) where the "
                        "reporter gave none: other senders are then told apart by name")
    i.add_argument("--nameserver", metavar="HOST[:PORT]", action="append", default=[],
                   help="the recursive server asked (default: /etc/resolv.conf's)")
    i.add_argument("--format", choices=("text", "json"), default="text")
    i.set_defaults(func=run_ingest)
    when = argparse.ArgumentParser(add_help=False)
    when.add_argument("code", nargs="?", metavar="CODE", help="one institution (default: all)")
    when.add_argument("--today", type=_day, default=None, metavar="DAY",
                      help="the day the evidence ends (default: today, UTC)")
    when.add_argument("--days", type=_positive, default=None, metavar="N",
                      help="days of reports read (default: dmarc_reports.ramp.window_days)")
    r = sub.add_parser("report", parents=[common, store, when], help="what the reports say",
                       description="Daily volume and aligned-pass rate, sources, failing "
                                   "sources by volume, per institution and domain.")
    r.add_argument("--format", choices=("text", "json", "html"), default="text")
    r.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    r.set_defaults(func=run_report)
    c = sub.add_parser("recommend", parents=[common, store, when],
                       help="each domain's next policy rung, with the evidence",
                       description="The policy ramp: none, quarantine; t=y, quarantine, "
                                   "reject; t=y, reject.")
    c.add_argument("--format", choices=("text", "json"), default="text")
    c.add_argument("--merge-request", action="store_true",
                   help="open or update one merge request per institution with the change")
    c.add_argument("--token-variable", default="DMARC_RAMP_TOKEN", metavar="NAME",
                   help="environment variable holding the GitLab token (api scope; default: "
                        "DMARC_RAMP_TOKEN)")
    c.add_argument("--server-url", help="GitLab (default: $CI_SERVER_URL)")
    c.add_argument("--project", help="project id or path (default: $CI_PROJECT_ID)")
    c.add_argument("--target-branch", help="default: $CI_DEFAULT_BRANCH, else main")
    c.set_defaults(func=run_recommend)


def _fail(message: str) -> int:
    print(f"provisioner: {message}", file=sys.stderr)
    return EXIT_ERROR


def _open_store(args: argparse.Namespace, project: Any) -> Any:
    from provisioner.dmarcreports.store import Store, StoreError, redact

    url = args.database or project.platform.dmarc_reports.database
    if url.startswith("postgresql://") and ":" in url.split("://", 1)[1].split("@", 1)[0] \
            and "@" in url:
        print(f"provisioner: {redact(url)}: a password in the URL shows in process lists; "
              "set PGPASSWORD instead", file=sys.stderr)
        return None
    try:
        return Store.open(url, project.root)
    except StoreError as exc:
        print(f"provisioner: {exc}", file=sys.stderr)
        return None


def _parsedmarc_missing() -> bool:
    try:
        import parsedmarc  # noqa: F401
    except ImportError:
        print("provisioner: dmarc ingest needs parsedmarc: pip install "
              "'mailauth-provisioner[dmarc]' (make venv installs it)", file=sys.stderr)
        return True
    return False


def run_ingest(args: argparse.Namespace) -> int:
    from provisioner import progress
    from provisioner.dmarcreports import ingest

    if not args.paths and not args.imap:
        return _fail("dmarc ingest: name report files or directories, or --imap URL")
    if _parsedmarc_missing():
        return EXIT_ERROR
    project = load(args)
    if project is None:
        return EXIT_ERROR
    settings = project.platform.dmarc_reports
    box = password = None
    if args.imap:
        try:
            box = ingest.Mailbox.parse(args.imap)
        except ingest.IngestError as exc:
            return _fail(str(exc))
        password = os.environ.get("PROVISIONER_IMAP_PASSWORD", "")
        if not password:
            return _fail("PROVISIONER_IMAP_PASSWORD is empty or not set: the mailbox "
                         "password comes only from there")
    store = _open_store(args, project)
    if store is None:
        return EXIT_ERROR
    domains = {d.name: i.code for i in project.institutions for d in i.domains}
    quarantine = Path(settings.quarantine)
    if not quarantine.is_absolute():
        quarantine = project.root / quarantine
    finish = None
    client = None
    resolver = None
    if args.reverse_dns:
        from provisioner.dnsclient import BadServer, DnsClient, Server

        try:
            client = DnsClient(nameservers=tuple(Server.parse(n) for n in args.nameserver),
                               timeout=2.0)
        except BadServer as exc:
            store.close()
            return _fail(str(exc))
        resolver = ingest.ptr_lookup(client)
    try:
        if args.retry_quarantined:
            with store.transaction() as cur:
                cur.execute("DELETE FROM dmarc_quarantine")
        items: list[Any] = []
        try:
            items = list(ingest.files([Path(p) for p in args.paths]))
        except ingest.IngestError as exc:
            return _fail(str(exc))
        with progress.task("dmarc ingest", len(items)) as bar:
            runner = ingest.Ingester(store, domains, quarantine, settings.max_report_size,
                                     jobs=args.jobs, progress=bar.advance,
                                     reverse_dns=resolver)
            outcome = runner.run(items)
            if box is not None:
                try:
                    messages, finish = ingest.mailbox_items(box, password or "",
                                                            settings.max_report_size,
                                                            args.imap_archive)
                except ingest.IngestError as exc:
                    return _fail(str(exc))
                outcome = runner.run(messages)
        totals = store.counts()
    finally:
        if finish is not None:
            finish()
        if client is not None:
            client.close()
        store.close()
    if args.format == "json":
        print(json.dumps({**outcome.to_json(), "store": totals}, indent=2))
    bad = len(outcome.quarantined)
    print(f"dmarc ingest: {plural(outcome.added, 'report')} added, "
          f"{outcome.duplicates} already stored, {outcome.already_read} read before, "
          f"{bad} quarantined (in {quarantine}); the store holds "
          f"{plural(totals['reports'], 'report')}", file=sys.stderr)
    return EXIT_CHANGES if bad else EXIT_OK


def _evidence(args: argparse.Namespace) -> tuple[Any, Any, list[Any], str, str, date] | None:
    from provisioner.dmarcreports import analyse

    project = load(args, institution=args.code)
    if project is None:
        return None
    store = _open_store(args, project)
    if store is None:
        return None
    today = args.today or datetime.now(UTC).date()
    ramp = project.platform.dmarc_reports.ramp
    since, until = analyse.window(ramp, today, args.days)
    codes = [i.code for i in project.institutions] if args.code else None
    try:
        rows = list(store.daily(since, until, codes))
    finally:
        store.close()
    return project, ramp, rows, since, until, today


def _recommendations(project: Any, ramp: Any, rows: list[Any], today: date
                     ) -> tuple[list[Any], list[Any]]:
    """The reports of the whole window, and each domain's recommendation judged on the days
    at its current rung only."""
    from provisioner.dmarcreports import analyse

    reports = analyse.analyse(project.platform, project.institutions, rows)
    by_key: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        by_key.setdefault((row["institution"], row["domain"]), []).append(row)
    recs = []
    for rep in reports:
        since = analyse.held_since(rep)
        scoped = rep
        if since is not None:
            inst = [i for i in project.institutions if i.code == rep.institution]
            got = analyse.analyse(project.platform, inst,
                                  [r for r in by_key[(rep.institution, rep.domain)]
                                   if r["day"] >= since])
            scoped = got[0] if got else rep
        recs.append(analyse.recommend(scoped, ramp, today))
    return reports, recs


def run_report(args: argparse.Namespace) -> int:
    from provisioner.dmarcreports import render

    got = _evidence(args)
    if got is None:
        return EXIT_ERROR
    project, ramp, rows, since, until, today = got
    reports, recs = _recommendations(project, ramp, rows, today)
    if args.format == "json":
        out = json.dumps(render.report_json(reports, recs, since, until), indent=2,
                         ensure_ascii=False)
    elif args.format == "html":
        try:
            out = render.page(reports, recs, since, until)
        except ImportError:
            return _fail("the HTML report's chart needs matplotlib: pip install "
                         "'mailauth-provisioner[dmarc]'")
    else:
        out = render.text(reports, since, until) or f"no report from {since} to {until}"
    if args.output:
        try:
            Path(args.output).write_text(out + "\n", encoding="utf-8")
        except OSError as exc:
            return _fail(f"cannot write {args.output}: {exc.strerror or exc}")
    else:
        print(out)
    print(f"dmarc report: {plural(len(reports), 'domain')} with reports, {since} to {until}"
          + (f"; written to {args.output}" if args.output else ""), file=sys.stderr)
    return EXIT_OK


def run_recommend(args: argparse.Namespace) -> int:
    from provisioner.dmarcreports import render

    got = _evidence(args)
    if got is None:
        return EXIT_ERROR
    project, ramp, rows, since, until, today = got
    _, recs = _recommendations(project, ramp, rows, today)
    results: list[dict[str, Any]] = []
    if args.merge_request:
        code = _merge_requests(args, project, [r for r in recs if r.recommended], results)
        if code != EXIT_OK:
            return code
    if args.format == "json":
        print(json.dumps({"since": since, "until": until,
                          "recommendations": [r.to_json() for r in recs],
                          "merge_requests": results}, indent=2))
    else:
        print(render.recommendations_text(recs) or f"no report from {since} to {until}")
    ready = sum(r.recommended for r in recs)
    print(f"dmarc recommend: {ready} of {plural(len(recs), 'domain')} ready for the next rung"
          + (f"; merge requests: {', '.join(m['action'] + ' ' + m['url'] for m in results)}"
             if results else ""), file=sys.stderr)
    return EXIT_OK


def _merge_requests(args: argparse.Namespace, project: Any, recs: list[Any],
                    results: list[dict[str, Any]]) -> int:
    from provisioner.dmarcreports import analyse, declaration, mergerequest

    server = args.server_url or os.environ.get("CI_SERVER_URL", "")
    project_id = args.project or os.environ.get("CI_PROJECT_ID", "")
    target = args.target_branch or os.environ.get("CI_DEFAULT_BRANCH", "") or "main"
    token = os.environ.get(args.token_variable, "")
    if not server or not project_id:
        return _fail("--merge-request needs --server-url and --project (or CI_SERVER_URL and "
                     "CI_PROJECT_ID)")
    if not token:
        return _fail(f"environment variable {args.token_variable} is empty or not set (a "
                     "token with the api scope)")
    by_code: dict[str, list[Any]] = {}
    for rec in recs:  # an external institution's declaration changes the same way
        by_code.setdefault(rec.institution, []).append(rec)
    for code, chosen in sorted(by_code.items()):
        inst = project.institution(code)
        path = Path(inst.origin.file)
        full = path if path.is_absolute() else project.root / path
        try:
            text = full.read_text(encoding="utf-8")
            for rec in chosen:
                policy, testing = analyse.rung_declaration(rec.next)
                text = declaration.set_rung(text, rec.domain, policy, testing, str(path))
        except (OSError, declaration.EditError) as exc:
            return _fail(str(exc))
        rel = full.resolve().relative_to(project.root.resolve()).as_posix()
        title = f"DMARC: {code}: " + "; ".join(f"{r.domain} to {r.next}" for r in chosen)
        body = ["The DMARC policy ramp (`provisioner dmarc recommend`) proposes the next "
                "rung on the aggregate reports' evidence:", ""]
        for rec in chosen:
            body.append(f"**{rec.domain}**: `{rec.current}` → `{rec.next}`")
            body.extend(f"- {c.name}: {c.measured} (wanted: {c.wanted})" for c in rec.checks)
            body.append("")
        body.append("Merging applies it through the pipeline's plan and apply; nothing was "
                    "written to DNS.")
        try:
            done = mergerequest.upsert(server, project_id, token, code, rel, text, title,
                                       "\n".join(body), target)
        except mergerequest.MergeRequestError as exc:
            return _fail(str(exc))
        results.append({"institution": code, "action": done.action, "iid": done.iid,
                        "url": done.url, "branch": done.branch})
    return EXIT_OK


def ramp_for(project: Any, code: str) -> list[Any]:
    """The ramp's recommendations for one institution, for its instructions: none when no
    report store exists yet or parsing extras are absent (a note on stderr when it cannot be
    read: the instructions are still written)."""
    from provisioner.dmarcreports import analyse
    from provisioner.dmarcreports.store import Store, StoreError

    settings = project.platform.dmarc_reports
    url = settings.database
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not (path if path.is_absolute() else project.root / path).exists():
            return []
    try:
        store = Store.open(url, project.root)
    except StoreError as exc:
        print(f"provisioner: the DMARC reports are left out: {exc}", file=sys.stderr)
        return []
    today = datetime.now(UTC).date()
    since, until = analyse.window(settings.ramp, today)
    try:
        rows = list(store.daily(since, until, [code]))
    finally:
        store.close()
    return _recommendations(project, settings.ramp, rows, today)[1]
