"""`provisioner plan` and `provisioner apply` (DESIGN §6): the records through octoDNS targets.

``plan`` prints what ``apply`` would change, per zone (text; markdown for merge requests; json
for machines), the external-DNS domains awaiting publication by their institution, and the
plan's checksum. ``apply --checksum SUM`` applies only the plan whose checksum is SUM, so that CI
applies exactly what was reviewed; ``--force`` overrides the ownership guard's refusals.
After a successful apply, the domains of the zones it changed are verified on live DNS
(:mod:`provisioner.octodns.afterapply`: which targets serve DNS, and where); ``--verify-wait``
polls for propagation, ``--no-verify`` skips it, and a failed verification exits 2: the records
were written, the check says they are not live (yet).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any

from provisioner.cli import verify as verify_cli
from provisioner.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    load,
    report,
    select_institution,
)
from provisioner.config import Project
from provisioner.model import MxValue
from provisioner.octodns import afterapply, engine
from provisioner.octodns.engine import Change, PlanResult


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    scope = argparse.ArgumentParser(add_help=False)
    scope.add_argument("--target", metavar="T", help="only the zones written to this target")
    scope.add_argument("--institution", metavar="CODE", help="only this institution's zones")
    scope.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    p = subparsers.add_parser(
        "plan", parents=[common, scope], help="what apply would change, per zone",
        description="Compare the declared records with each target; change nothing.",
    )
    p.add_argument("--detailed-exitcode", action="store_true",
                   help="exit 2 when there are changes (0: none, 1: error)")
    p.set_defaults(func=run_plan)
    a = subparsers.add_parser(
        "apply", parents=[common, scope], help="push the declared records through octoDNS",
        description="Plan, then apply the plan to the targets.",
    )
    a.add_argument("--checksum", metavar="SUM",
                   help="apply only if the plan's checksum is SUM (the one plan printed)")
    a.add_argument("--force", action="store_true",
                   help="apply even if the ownership guard refuses (large deletes)")
    a.add_argument("--verify-wait", type=float, default=0.0, metavar="SECONDS",
                   help="after applying, poll the live DNS with backoff for up to SECONDS "
                        "until the changed records verify (default 0: one pass)")
    a.add_argument("--no-verify", action="store_true",
                   help="do not verify the changed records on live DNS after applying")
    a.set_defaults(func=run_apply)


def _plan(args: argparse.Namespace, project: Project) -> PlanResult | None:
    zones = None
    if args.institution:
        narrowed = select_institution(project, args.institution)
        if narrowed is None:
            return None
        zones = {r.zone for r in narrowed.records() if r.managed}
    return engine.plan(project.records(), project.platform, project.root,
                       only_target=args.target, only_zones=zones,
                       only_institution=args.institution or None)


def _shown_plan(args: argparse.Namespace) -> tuple[Project, PlanResult] | None:
    """Load, plan, report the problems and print the plan; None when it cannot be applied."""
    project = load(args)
    if project is None:
        return None
    result = _plan(args, project)
    if result is None:
        return None
    report(result.problems)
    if not result.ok:
        return None
    print(render(result, args.format))
    return project, result


def run_plan(args: argparse.Namespace) -> int:
    shown = _shown_plan(args)
    if shown is None:
        return EXIT_ERROR
    _, result = shown
    if args.detailed_exitcode and result.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def run_apply(args: argparse.Namespace) -> int:
    """Plan, apply, then verify what changed: 0 applied (and verified or skipped), 1 error
    (nothing written, or a target failed), 2 applied but verification did not succeed."""
    if args.verify_wait < 0:
        print("provisioner: --verify-wait must be >= 0", file=sys.stderr)
        return EXIT_ERROR
    shown = _shown_plan(args)
    if shown is None:
        return EXIT_ERROR
    project, result = shown
    if not result.has_changes:
        return EXIT_OK

    def progress(zone: str, target: str, count: int) -> None:
        if args.format == "text":
            print(f"applied {count} change(s) to {zone} on {target}")

    applied = engine.apply(result, checksum=args.checksum, force=args.force,
                           on_applied=progress)
    report(applied.problems)
    if not applied.ok:
        return EXIT_ERROR
    if args.no_verify:
        return EXIT_OK
    return _verify_applied(args, project, applied)


def _verify_applied(args: argparse.Namespace, project: Project,
                    applied: engine.ApplyResult) -> int:
    """Verify the domains of the zones apply changed, on the targets that serve live DNS.

    The report goes to stdout with the text and markdown formats; with json, stdout stays one
    JSON document (the plan), so the report goes to stderr.
    """
    changed = [(zone, target) for zone, target, count in applied.applied if count]
    groups, skipped = afterapply.verification_plan(project.records(), project.platform, changed)
    out = sys.stderr if args.format == "json" else sys.stdout
    for skip in skipped:
        print(skip, file=out)
    if not groups:
        return EXIT_OK
    count = sum(len(g.domains) for g in groups)
    own = sum(1 for g in groups for r in g.records if r.domain is None)
    what = f"{count} domain(s)" + (f" and {own} platform record(s)" if own else "")
    wait = f", waiting up to {args.verify_wait:g} s" if args.verify_wait else ""
    print(f"\nverifying {what} of the changed zones on live DNS{wait}", file=out)
    verified = afterapply.run(groups, project.platform, wait=args.verify_wait)
    print(verify_cli.text(verified), file=out)
    if verified.ok:
        return EXIT_OK
    print("provisioner: the records were written, but verification says they are not all live "
          "and right yet (see above); check again with: provisioner verify --wait 60",
          file=sys.stderr)
    return EXIT_CHANGES


# --- rendering ------------------------------------------------------------------------------


def _value(v: Any, rtype: str) -> str:
    if isinstance(v, MxValue):
        return str(v)
    return json.dumps(v) if rtype in ("TXT", "SPF") else str(v)


def _name(change: Change) -> str:
    return change.name or "@"


def _change_lines(change: Change) -> list[str]:
    head = {"create": "+", "update": "~", "delete": "-"}[change.action]
    ttl = change.after_ttl if change.after_ttl is not None else change.before_ttl
    lines = [f"  {head} {_name(change)} {change.type} {ttl}"]
    before = {_value(v, change.type) for v in change.before}
    after = {_value(v, change.type) for v in change.after}
    for v in sorted(before | after):
        mark = " " if v in before and v in after else ("-" if v in before else "+")
        lines.append(f"      {mark} {v}")
    if change.action == "update" and change.before_ttl != change.after_ttl:
        lines.append(f"      ttl {change.before_ttl} -> {change.after_ttl}")
    return lines


def _counts(result: PlanResult) -> dict[str, int]:
    counts = {"create": 0, "update": 0, "delete": 0}
    for zone in result.zones:
        for c in zone.changes:
            counts[c.action] += 1
    return counts


def render(result: PlanResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(to_json(result), indent=2)
    if fmt == "markdown":
        return _markdown(result)
    return _text(result)


def _text(result: PlanResult) -> str:
    out: list[str] = []
    for zone in result.zones:
        state = "" if zone.exists else " (new zone)"
        state += " (declaration removed)" if zone.orphan else ""
        if not zone.changes:
            out.append(f"{zone.zone} on {zone.target}: no changes")
            continue
        out.append(f"{zone.zone} on {zone.target}{state}: {len(zone.changes)} change(s)")
        for c in zone.changes:
            out.extend(_change_lines(c))
        out.extend(f"  ! apply needs --force: {v}" for v in zone.violations)
    out.extend(_awaiting_lines(result))
    counts = _counts(result)
    out.append("")
    if result.has_changes:
        out.append(f"{counts['create']} to create, {counts['update']} to update, "
                   f"{counts['delete']} to delete; checksum {result.checksum}")
        out.append(f"apply exactly this plan: provisioner apply --checksum {result.checksum}")
    else:
        out.append("no changes")
    return "\n".join(out)


def _awaiting_lines(result: PlanResult) -> list[str]:
    if not result.awaiting:
        return []
    out = ["", "awaiting publication by the institution (dns: external, never written):"]
    for a in result.awaiting:
        out.append(f"  {a.institution}: {a.domain}, {len(a.records)} record(s) "
                   f"(provisioner instructions {a.institution})")
    return out


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown(result: PlanResult) -> str:
    counts = _counts(result)
    out = [f"### octoDNS plan: {counts['create']} create, {counts['update']} update, "
           f"{counts['delete']} delete", ""]
    for zone in result.zones:
        if not zone.changes:
            continue
        extra = "" if zone.exists else " (new zone)"
        out += [f"#### `{zone.zone}` on `{zone.target}`{extra}", "",
                "| | name | type | ttl | values |", "|---|---|---|---|---|"]
        for c in zone.changes:
            ttl = c.after_ttl if c.after_ttl is not None else c.before_ttl
            lines = _change_lines(c)[1:]
            values = "<br>".join(_md_cell(line.strip()) for line in lines)
            out.append(f"| {c.action} | `{_name(c)}` | {c.type} | {ttl} | {values} |")
        out += [f"> **apply needs `--force`**: {_md_cell(v)}" for v in zone.violations]
        out.append("")
    unchanged = [z.zone for z in result.zones if not z.changes]
    if unchanged:
        out += [f"No changes in {len(unchanged)} zone(s).", ""]
    if result.awaiting:
        out += ["#### Awaiting publication by the institution (`dns: external`)", ""]
        out += [f"- `{a.institution}`: {a.domain}, {len(a.records)} record(s)"
                for a in result.awaiting]
        out.append("")
    if result.checksum:
        out.append(f"Checksum: `{result.checksum}`")
    return "\n".join(out)


def _problems_json(problems: Iterable[Any]) -> list[dict[str, str]]:
    return [{"code": p.code, "severity": p.severity.value, "message": p.message,
             "origin": str(p.origin)} for p in problems]


def to_json(result: PlanResult) -> dict[str, Any]:
    def values(vs: tuple[Any, ...]) -> list[Any]:
        return [{"preference": v.preference, "exchange": v.exchange}
                if isinstance(v, MxValue) else v for v in vs]

    return {
        "checksum": result.checksum,
        "changes": result.has_changes,
        "zones": [{
            "zone": z.zone, "target": z.target, "exists": z.exists, "orphan": z.orphan,
            "needs_force": list(z.violations),
            "changes": [{
                "action": c.action, "name": c.name, "type": c.type,
                "before": None if c.before_ttl is None else
                {"ttl": c.before_ttl, "values": values(c.before)},
                "after": None if c.after_ttl is None else
                {"ttl": c.after_ttl, "values": values(c.after)},
            } for c in z.changes],
        } for z in result.zones],
        "awaiting": [{"institution": a.institution, "domain": a.domain,
                      "records": [r.to_json() for r in a.records]} for a in result.awaiting],
        "problems": _problems_json(result.problems),
    }
