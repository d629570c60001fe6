"""`provisioner verify`: are the records live and right on the authoritative servers?

Exit 0 when every check succeeds, 2 when any is pending, failed or could not be answered
(temporary failure), 1 on an error in the user's files or arguments (DESIGN §6).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from xml.etree import ElementTree as ET

from provisioner.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    load,
    positive_seconds,
    seconds,
    select_institution,
)
from provisioner.dnsclient import BadServer, Server
from provisioner.verify import Report, Status, verify_records

_MARK = {Status.SUCCESS: "ok", Status.PENDING: "PENDING", Status.FAILED: "FAILED",
         Status.TEMPORARY_FAILURE: "TEMPFAIL"}


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "verify", parents=[common],
        help="check SPF, DKIM, DMARC and MX on the live authoritative servers",
        description="Query every authoritative server of each domain and check the records. "
                    "Exit 0: all succeed; 2: something pending, failed or unanswered; 1: error.",
    )
    p.add_argument("--institution", metavar="CODE", help="only this institution")
    p.add_argument("--nameserver", metavar="HOST[:PORT]", action="append", default=[],
                   help="ask this server instead of each zone's authoritative servers "
                        "(repeatable)")
    p.add_argument("--wait", type=seconds, default=0.0, metavar="SECONDS",
                   help="poll with backoff until everything succeeds or SECONDS have passed")
    p.add_argument("--timeout", type=positive_seconds, default=1.0, metavar="SECONDS",
                   help="the longest a server's retransmission timeout grows, and the first "
                        "one before it has answered; a query is given up after at least this "
                        "(default 1)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="processes that check at once (default: the CPUs available, at most "
                        "8; passes of under 500 domains per process stay in one)")
    p.add_argument("--format", choices=("text", "json", "junit"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        nameservers = tuple(Server.parse(n) for n in args.nameserver)
    except BadServer as exc:
        print(f"provisioner: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.wait < 0 or args.timeout <= 0 or (args.jobs is not None and args.jobs < 1):
        print("provisioner: --wait must be >= 0, --timeout > 0 and --jobs >= 1",
              file=sys.stderr)
        return EXIT_ERROR
    project = load(args, keys=True)
    if project is None:
        return EXIT_ERROR
    project = select_institution(project, args.institution)
    if project is None:
        return EXIT_ERROR
    report = verify_records(project.records(), project.platform, nameservers=nameservers,
                            wait=args.wait, timeout=args.timeout, jobs=args.jobs)
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2))
    elif args.format == "junit":
        print(junit(report))
    else:
        print(text(report))
    print(summary(report), file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_CHANGES


def summary(report: Report) -> str:
    """The closing line: ok, failed, or unknown when only unanswered checks stand between the
    domains and ok (never "ok" then)."""
    counts = report.counts()
    checks = sum(counts.values())
    unknown = counts[Status.TEMPORARY_FAILURE.value]
    bad = counts[Status.FAILED.value] + counts[Status.PENDING.value]
    verdict = "ok" if report.ok else ("failed" if bad else "unknown")
    parts = [f"{counts[Status.SUCCESS.value]} ok"]
    if counts[Status.FAILED.value]:
        parts.append(f"{counts[Status.FAILED.value]} failed")
    if counts[Status.PENDING.value]:
        parts.append(f"{counts[Status.PENDING.value]} pending")
    if unknown:
        parts.append(f"{unknown} unknown (no server answered)")
    return (f"verify: {verdict}: {len(report.domains)} domains, {checks} checks: "
            + ", ".join(parts))


def text(report: Report) -> str:
    """A table: one line per check, then the totals."""
    rows: list[tuple[str, ...]] = []
    for d in report.domains:
        for c in d.checks:
            rows.append((_MARK[c.status], d.institution or "-", c.check, c.name, c.reason,
                         c.message))
            for w in c.warnings:
                rows.append(("warning", "", "", "", "", w))
            if c.status is not Status.SUCCESS and (c.expected or c.found):
                rows.append(("", "", "", "", "expected", " | ".join(c.expected) or "-"))
                rows.append(("", "", "", "", "found", " | ".join(c.found) or "-"))
    header = ("STATUS", "INSTITUTION", "CHECK", "NAME", "REASON", "DETAIL")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:5], widths, strict=True)) + "  " + r[5]
             for r in [header, *rows]]
    counts = report.counts()
    lines.append("")
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items())
                 + f" ({len(report.domains)} domains, {report.queries} queries, "
                   f"{report.seconds:.2f} s)")
    return "\n".join(line.rstrip() for line in lines)


def junit(report: Report) -> str:
    """JUnit XML as GitLab reads it: a suite per domain, a case per check."""
    suites = ET.Element("testsuites", name="provisioner verify")
    for d in report.domains:
        failures = sum(c.status in (Status.FAILED, Status.PENDING) for c in d.checks)
        errors = sum(c.status is Status.TEMPORARY_FAILURE for c in d.checks)
        suite = ET.SubElement(suites, "testsuite", name=f"{d.institution or '-'} {d.domain}",
                              tests=str(len(d.checks)), failures=str(failures),
                              errors=str(errors))
        for c in d.checks:
            case = ET.SubElement(suite, "testcase", classname=f"{d.institution}.{d.domain}",
                                 name=f"{c.check} {c.name}")
            detail = "\n".join([c.message, *(f"warning: {w}" for w in c.warnings),
                                f"expected: {' | '.join(c.expected)}",
                                f"found: {' | '.join(c.found)}"])
            if c.status in (Status.FAILED, Status.PENDING):
                ET.SubElement(case, "failure", type=c.reason,
                              message=f"{c.status.value}: {c.reason}").text = detail
            elif c.status is Status.TEMPORARY_FAILURE:
                ET.SubElement(case, "error", type=c.reason,
                              message=f"{c.status.value}: {c.reason}").text = detail
            else:
                ET.SubElement(case, "system-out").text = detail
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")
