"""`provisioner drift`: records changed, removed or never published (DESIGN §1, §6).

Exit 0 no drift, 2 drift, 1 an error (bad files or arguments, a target that could not be
planned, checks no server answered). ``--shard I/N`` checks a stable share of the
institutions so that GitLab's ``parallel: N`` jobs split a large fleet
(``--shard $CI_NODE_INDEX/$CI_NODE_TOTAL``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from provisioner.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    api_calls,
    load,
    positive_seconds,
    report,
)
from provisioner.dnsclient import BadServer, Server
from provisioner.drift import DriftReport, Finding, Shard, detect
from provisioner.escape import md_code


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "drift", parents=[common],
        help="find owned records changed, removed or never published (plan + live checks)",
        description="Plan the managed zones and verify every domain live. Exit 0: no drift; "
                    "2: drift; 1: error.",
    )
    p.add_argument("--institution", metavar="CODE", help="only this institution")
    p.add_argument("--shard", metavar="I/N", help="only the I-th of N stable shares of the "
                   "institutions (1-based, as CI_NODE_INDEX/CI_NODE_TOTAL)")
    p.add_argument("--nameserver", metavar="HOST[:PORT]", action="append", default=[],
                   help="ask this server instead of each zone's authoritative servers "
                        "(repeatable)")
    p.add_argument("--timeout", type=positive_seconds, default=1.0, metavar="SECONDS",
                   help="first timeout of each DNS query; retries double it (default 1)")
    p.add_argument("--api", choices=("auto", "always", "never"), default="auto",
                   help="auto (default): DNS first, the targets' APIs read only for zones whose "
                        "live DNS differs; always: every managed zone through the API (the "
                        "slower full cycle, which also sees what DNS cannot); never: DNS only")
    p.add_argument("--format", choices=("text", "json", "markdown", "junit"), default="text")
    p.add_argument("--json-report", metavar="FILE",
                   help="also write the JSON report to FILE (for a CI artifact)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        shard = Shard.parse(args.shard) if args.shard is not None else None
        nameservers = tuple(Server.parse(n) for n in args.nameserver)
    except (ValueError, BadServer) as exc:
        print(f"provisioner: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.timeout <= 0:
        print("provisioner: --timeout must be > 0", file=sys.stderr)
        return EXIT_ERROR
    project = load(args, keys=True)
    if project is None:
        return EXIT_ERROR
    if args.institution and project.institution(args.institution) is None:
        known = ", ".join(i.code for i in project.institutions[:10])
        print(f"provisioner: no institution {args.institution!r} in {project.zones_dir} "
              f"(known: {known})", file=sys.stderr)
        return EXIT_ERROR
    result = detect(project, shard=shard, institution=args.institution,
                    nameservers=nameservers, timeout=args.timeout, api=args.api)
    report(result.problems)
    if args.json_report:
        try:
            Path(args.json_report).write_text(json.dumps(result.to_json(), indent=2) + "\n",
                                              encoding="utf-8")
        except OSError as exc:
            print(f"provisioner: cannot write {args.json_report}: {exc}", file=sys.stderr)
            return EXIT_ERROR
    print(render(result, args.format))
    counts = result.counts()
    unknown = len(result.unanswered)
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    if unknown:
        summary = ", ".join(filter(None, [summary, f"{unknown} of {result.checks} checks "
                                          "unknown (no server answered)"]))
    summary = summary or "no drift"
    scope = f" (shard {result.shard})" if result.shard else ""
    api_calls()
    api = {"auto": "DNS first", "always": "full cycle", "never": "DNS only"}[result.api]
    print(f"drift{scope}: {len(result.institutions)} institutions, {len(result.domains)} "
          f"domains, {result.checks} live checks, {len(result.api_zones)} of "
          f"{result.managed_zones} zones read through the API ({api}): {summary}",
          file=sys.stderr)
    if result.drift:
        return EXIT_CHANGES
    return EXIT_OK if result.ok else EXIT_ERROR


# --- rendering ------------------------------------------------------------------------------


def render(result: DriftReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.to_json(), indent=2)
    if fmt == "markdown":
        return _markdown(result)
    if fmt == "junit":
        return _junit(result)
    return _text(result)


def _values(values: tuple[str, ...]) -> str:
    return " | ".join(json.dumps(v) for v in values) if values else "(nothing)"


def _text(result: DriftReport) -> str:
    if not result.findings:
        if result.unanswered:
            rest = result.checks - len(result.unanswered)
            return (f"unknown: {len(result.unanswered)} of {result.checks} live checks went "
                    "unanswered" + (f"; the other {rest} found nothing changed" if rest else ""))
        return "no drift"
    out = []
    for f in result.findings:
        out.append(f"{f.kind.value.upper():11} {f.institution or 'platform'}  "
                   f"{f.record} {f.type}")
        out.append(f"    expected {_values(f.expected)}")
        out.append(f"    found    {_values(f.found)}")
        out.append(f"    why      {f.reason}")
    return "\n".join(out)


def _cell(text: str) -> str:
    """Text from live DNS in a table cell: a code span, so nothing in it renders."""
    return md_code(text)


def _markdown(result: DriftReport) -> str:
    counts = result.counts()
    head = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    if result.unanswered:
        head = ", ".join(filter(None, [head, f"{len(result.unanswered)} checks unknown"]))
    head = head or "none"
    out = [f"### Drift: {head}", ""]
    if result.findings:
        out += ["| class | institution | record | type | expected | found | why |",
                "|---|---|---|---|---|---|---|"]
        for f in result.findings:
            out.append(f"| {f.kind.value} | `{f.institution or 'platform'}` | `{f.record}` | "
                       f"{f.type} | {_cell(_values(f.expected))} | {_cell(_values(f.found))} "
                       f"| {_cell(f.reason)} |")
        out.append("")
    out.append(f"{len(result.institutions)} institutions, {len(result.domains)} domains checked"
               + (f" (shard {result.shard})" if result.shard else "") + ".")
    return "\n".join(out)


def _junit(result: DriftReport) -> str:
    """One test case per checked domain (and one for the platform's records): GitLab lists
    each drifted domain with its findings, and errors for checks no server answered."""
    suite = ET.Element("testsuite", name="drift" + (f" {result.shard}" if result.shard else ""))
    by_domain: dict[tuple[str, str], list[Finding]] = {}
    for f in result.findings:
        by_domain.setdefault((f.institution or "platform", f.domain or f.record), []).append(f)
    cases = [(i or "platform", d) for i, d in result.domains]
    cases += [k for k in by_domain if k not in cases]
    unanswered: dict[str, list[str]] = {}
    for p in result.problems:
        unanswered.setdefault(p.origin.file, []).append(p.message)
    failures = errors = 0
    for institution, domain in cases:
        case = ET.SubElement(suite, "testcase", classname=f"drift.{institution}", name=domain)
        found = by_domain.get((institution, domain), [])
        if found:
            failures += 1
            kinds = ", ".join(sorted({f.kind.value for f in found}))
            failure = ET.SubElement(case, "failure", type=kinds,
                                    message=f"{len(found)} drifted record(s): {kinds}")
            failure.text = "\n".join(
                f"{f.kind.value}: {f.record} {f.type}: expected {_values(f.expected)}, "
                f"found {_values(f.found)} ({f.reason})" for f in found)
        own = [m for m in unanswered.get(institution, []) if m.startswith(domain + ":")]
        if own:
            errors += 1
            error = ET.SubElement(case, "error", type="unanswered", message=own[0])
            error.text = "\n".join(own)
    leftover = [p for p in result.problems if p.code != "drift.unanswered"]
    if leftover:
        errors += 1
        case = ET.SubElement(suite, "testcase", classname="drift", name="plan")
        error = ET.SubElement(case, "error", type="plan", message=leftover[0].message)
        error.text = "\n".join(str(p) for p in leftover)
    suite.set("tests", str(len(suite)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)
