"""`provisioner status` and `provisioner readiness`: where each institution stands.

- ``status --format html --output DIR``: a static page (``DIR/index.html``, no external
  resource) for a GitLab Pages artifact of the schedule; ``--format json``: the document on
  stdout. ``--state FILE`` (default ``DIR/status.json``, or ``build/status/status.json`` beside
  the platform file) keeps each record's state and since when across runs.
- ``readiness [CODE] --format text|json|junit``: the bulk-sender readiness rows alone; exit 2
  when a domain is not ready, 1 when one is unknown (no server answered).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from provisioner.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, load, positive_seconds
from provisioner.dnsclient import BadServer, DnsClient, Server

DEFAULT_STATE = Path("build/status/status.json")


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    live = argparse.ArgumentParser(add_help=False)
    live.add_argument("--nameserver", metavar="HOST[:PORT]", action="append", default=[],
                      help="ask this server instead of each zone's authoritative servers")
    live.add_argument("--timeout", type=positive_seconds, default=1.0, metavar="SECONDS",
                      help="per DNS query (default 1); a record no server answers is unknown")
    s = subparsers.add_parser("status", parents=[common, live],
                              help="the fleet's state: a static page or JSON",
                              description="Verify every domain and build the status page.")
    s.add_argument("--format", choices=("html", "json"), default="json",
                   help="json (default: the document on stdout, docs/cli.md) or html (the "
                        "static page, with --output)")
    s.add_argument("--output", metavar="DIR", help="html: write DIR/index.html (and the state)")
    s.add_argument("--state", metavar="FILE", help="the previous run's state, kept across runs "
                   "(default: DIR/status.json or build/status/status.json)")
    s.set_defaults(func=run_status)
    r = subparsers.add_parser("readiness", parents=[common, live],
                              help="bulk-sender readiness rows (Google, Yahoo, Microsoft)",
                              description="What DNS can show of the bulk-sender requirements.")
    r.add_argument("code", nargs="?", metavar="CODE", help="one institution (default: all)")
    r.add_argument("--format", choices=("text", "json", "junit"), default="text",
                   help="text (default), json or junit (a test case per criterion: failure "
                        "when not met, error when unknown, skipped when not checkable)")
    r.set_defaults(func=run_readiness)


def _document(args: argparse.Namespace, code: str | None = None,
              previous: dict[str, Any] | None = None) -> dict[str, Any] | None:
    from provisioner import status
    from provisioner.keys import clock, service
    from provisioner.keys.store import StoreError
    from provisioner.verify import verify_records

    try:
        servers = tuple(Server.parse(n) for n in args.nameserver)
    except BadServer as exc:
        print(f"provisioner: {exc}", file=sys.stderr)
        return None
    project = load(args, institution=code, keys=True)
    if project is None:
        return None
    states: dict[str, Any] = {}
    if project.platform.manages_keys:
        try:
            states = dict(service.read(project, service.store_of(project.platform),
                                       [code] if code else None))
        except StoreError as exc:
            print(f"provisioner: key store: {exc}", file=sys.stderr)
            return None
    records = tuple(r for r in project.records() if r.institution is not None)
    report = verify_records(records, project.platform, nameservers=servers,
                            timeout=args.timeout)
    client = DnsClient(nameservers=servers, timeout=args.timeout)
    try:
        ptr = status.check_ptr(client, project.platform.sending_ips)
    finally:
        client.close()
    return status.build(project, report, states, ptr, clock.now(), previous)


def run_status(args: argparse.Namespace) -> int:
    from provisioner import status, statuspage

    out_dir = Path(args.output) if args.output else None
    if args.format == "html" and out_dir is None:
        print("provisioner: --format html needs --output DIR", file=sys.stderr)
        return EXIT_ERROR
    # the default state lives with the repository it describes, wherever the command runs
    state_path = Path(args.state) if args.state else (
        out_dir / "status.json" if out_dir else Path(args.config).parent / DEFAULT_STATE)
    if state_path.is_dir():
        print(f"provisioner: --state {state_path} is a directory; give a file (e.g. "
              f"{state_path / 'status.json'})", file=sys.stderr)
        return EXIT_ERROR
    previous = status.read_previous(state_path)
    if previous is None and state_path.exists():
        print(f"provisioner: {state_path} is not a status state file (not its JSON): it is "
              "replaced, and every record's 'since' starts from this run", file=sys.stderr)
    document = _document(args, previous=previous)
    if document is None:
        return EXIT_ERROR
    try:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        state_path.write_text(json.dumps({"since": document["since"]}) + "\n",
                              encoding="utf-8")
        if args.format == "html":
            assert out_dir is not None
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "index.html").write_text(statuspage.page(document), encoding="utf-8")
    except OSError as exc:
        print(f"provisioner: cannot write: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.format == "json":
        print(json.dumps({k: v for k, v in document.items() if k != "since"}, indent=2,
                         ensure_ascii=False))
    s = document["summary"]
    print(f"status: {s['institutions']} institutions, {s['domains']} domains, {s['ready']} "
          f"ready; records: {s['success']} success, {s['pending']} pending, {s['failed']} "
          f"failed, {s['temporary failure']} temporary failure"
          + (" (no answer: not known this run)" if s["temporary failure"] else "")
          + (f"; page: {out_dir / 'index.html'}" if out_dir and args.format == "html" else ""),
          file=sys.stderr)
    return EXIT_OK


def run_readiness(args: argparse.Namespace) -> int:
    document = _document(args, args.code)
    if document is None:
        return EXIT_ERROR
    rows = [(i["code"], d["domain"], d["ready"], d["readiness"], d["unknown"])
            for i in document["institutions"] for d in i["domains"]]
    if args.format == "json":
        print(json.dumps([{"institution": c, "domain": dom, "ready": ok, "rows": rs}
                          for c, dom, ok, rs, _ in rows], indent=2))
    elif args.format == "junit":
        suites = ET.Element("testsuites", name="provisioner readiness")
        for code, domain, _, rs, _ in rows:
            suite = ET.SubElement(suites, "testsuite", name=f"{code} {domain}",
                                  tests=str(len(rs)),
                                  failures=str(sum(r["ok"] is False for r in rs)),
                                  errors=str(sum(bool(r.get("unknown")) for r in rs)),
                                  skipped=str(sum(r["ok"] is None and not r.get("unknown")
                                                  for r in rs)))
            for r in rs:
                case = ET.SubElement(suite, "testcase", classname=f"{code}.{domain}",
                                     name=r["label"])
                if r.get("unknown"):  # could not be checked: an error, not a failure
                    ET.SubElement(case, "error", message=r["detail"]).text = r["detail"]
                elif r["ok"] is False:
                    ET.SubElement(case, "failure", message=r["detail"]).text = r["detail"]
                elif r["ok"] is None:
                    ET.SubElement(case, "skipped", message=r["detail"])
        ET.indent(suites)
        print('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites,
                                                                     encoding="unicode"))
    else:
        for code, domain, ok, rs, unanswered in rows:
            print(f"{code} {domain}: "
                  f"{'ready' if ok else ('UNKNOWN' if unanswered else 'NOT READY')}")
            for r in rs:
                mark = ("??  " if r.get("unknown") else "n/a ") if r["ok"] is None else \
                    ("ok  " if r["ok"] else "FAIL")
                where = "" if r["from_dns"] or "not checkable from DNS" in r["detail"] \
                    else " (not from DNS)"
                print(f"  {mark} {r['label']}: {r['detail']}{where}")
    not_ready = sum(1 for _, _, ok, _, _ in rows if not ok)
    unknown = document["summary"]["unknown"]
    print(f"readiness: {len(rows) - not_ready} of {len(rows)} domains ready"
          + (f", {unknown} unknown (no server answered)" if unknown else ""), file=sys.stderr)
    if not_ready > unknown:
        return EXIT_CHANGES
    return EXIT_ERROR if unknown else EXIT_OK
