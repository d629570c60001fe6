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
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from provisioner import progress
from provisioner.cli import verify as verify_cli
from provisioner.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    KeyContext,
    api_calls,
    api_report,
    load,
    report,
    seconds,
    select_institution,
    with_keys,
)
from provisioner.config import Project
from provisioner.errors import Origin, Problem, ProvisionerError
from provisioner.escape import md_code
from provisioner.keys import clock
from provisioner.keys.service import Pending
from provisioner.model import MxValue
from provisioner.octodns import afterapply, engine
from provisioner.octodns.engine import PlanResult
from provisioner.octodns.ownership import MARKER_NAME
from provisioner.verify import Report


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    scope = argparse.ArgumentParser(add_help=False)
    scope.add_argument("--target", metavar="T", help="only the zones written to this target")
    scope.add_argument("--institution", metavar="CODE", help="only this institution's zones")
    scope.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                       help="text (default), markdown (the merge-request note) or json (one "
                            "document, docs/cli.md)")
    scope.add_argument("--shard", metavar="I/N",
                       help="only the I-th of N stable shares of the zones, by institution (as "
                            "drift's --shard $CI_NODE_INDEX/$CI_NODE_TOTAL): a full plan split "
                            "between parallel jobs (plan-merge makes them one), each shard "
                            "applied with its own checksum; shard 1 also has the platform zones "
                            "whole, the keys to generate and removed institutions' zones, and "
                            "all of a --changed-since scope that is not the whole fleet")
    scope.add_argument("--changed-since", metavar="REF",
                       help="only what the files changed since the git commit REF can affect "
                            "(the merge request's CI_MERGE_REQUEST_DIFF_BASE_SHA); a change to "
                            "the platform file, schemas/ or the code is everything")
    p = subparsers.add_parser(
        "plan", parents=[common, scope], help="what apply would change, per zone",
        description="Compare the declared records with each target; change nothing.",
    )
    p.add_argument("--detailed-exitcode", action="store_true",
                   help="exit 2 when there are changes (0: none, 1: error)")
    p.add_argument("--output-dir", metavar="DIR",
                   help="also write, from this one run, plan.json, plan.md, plan.txt, "
                        "plan.checksum and plan-summary.json (GitLab's terraform report) to DIR")
    p.add_argument("--read-only", action="store_true",
                   help="hold no credential that can write DNS: Route53 credentials must be "
                        "denied writing, targets with read_only: are read through it "
                        "(AXFR), others are refused (docs/security.md)")
    p.set_defaults(func=run_plan)
    a = subparsers.add_parser(
        "apply", parents=[common, scope], help="push the declared records through octoDNS",
        description="Plan, then apply the plan to the targets.",
    )
    a.add_argument("--checksum", metavar="SUM", type=_checksum,
                   help="apply only if the plan's checksum is SUM (the one plan printed)")
    a.add_argument("--auto-approve", action="store_true",
                   help="apply without asking (scripts); --checksum SUM approves too: it names "
                        "the reviewed plan. Without either, apply asks on a terminal and "
                        f"refuses elsewhere ({AUTO_APPROVE}=yes approves as this flag does)")
    a.add_argument("--force", action="store_true",
                   help="apply even if the ownership guard refuses (large deletes)")
    a.add_argument("--verify-wait", type=seconds, default=0.0, metavar="SECONDS",
                   help="after applying, poll the live DNS with backoff for up to SECONDS "
                        "until the changed records verify (default 0: one pass)")
    a.add_argument("--no-verify", action="store_true",
                   help="do not verify the changed records on live DNS after applying")
    a.set_defaults(func=run_apply)
    m = subparsers.add_parser(
        "plan-merge", parents=[common], help="the shards' plans as one (the pipeline's note)",
        description="Merge the plans of `plan --shard I/N --output-dir DIR`, one DIR per "
                    "shard, into one plan: every shard's changes, the summed counts, and each "
                    "shard's checksum for its apply. Every shard must be given once.",
    )
    m.add_argument("plans", nargs="+", metavar="DIR",
                   help="a shard's --output-dir (or its plan.json)")
    m.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                   help="text (default), markdown (the merge-request note) or json")
    m.add_argument("--output-dir", metavar="DIR",
                   help="also write plan.json, plan.md, plan.txt, plan-summary.json and "
                        "plan.shards (one 'I/N CHECKSUM' line per shard with changes) to DIR")
    m.set_defaults(func=run_merge)


def _checksum(text: str) -> str:
    """A ``type=`` for --checksum: the 64 hex digits a plan prints."""
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a plan's checksum (64 hexadecimal digits, as plan prints it)")
    return text


def _scope(args: argparse.Namespace, project: Project, *, say: bool = True) -> Any:
    """The --changed-since scope, computed once per run (None: no such option, or it covers
    everything); said once on stderr."""
    if not getattr(args, "changed_since", None):
        return None
    if getattr(args, "_scope", None) is None:
        from provisioner.changes import scope

        args._scope = scope(project, args.changed_since)
    if say and not getattr(args, "_scope_said", False):
        args._scope_said = True
        print(f"plan: {args._scope.describe()}", file=sys.stderr)
    return None if args._scope.everything else args._scope


def _shard(args: argparse.Namespace) -> Any:
    text = getattr(args, "shard", None)
    if text is None:
        return None
    from provisioner.drift import Shard

    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise ProvisionerError(str(exc)) from None


@dataclass(frozen=True)
class Sharding:
    """How this run splits the plan: ``shard`` the share it plans of a full plan (None: no
    split), ``idle`` when it plans nothing (a narrow --changed-since scope is all shard 1's:
    a merge request's change is small, and two jobs planning one platform zone would each
    want its apply first)."""

    shard: Any = None
    idle: bool = False
    given: str | None = None  # the --shard text, for the plan document

    @property
    def platform(self) -> bool:
        """Whether this run plans the platform zones (whole) and the keys to generate."""
        return not self.idle and (self.shard is None or self.shard.holds(None))


def _sharding(args: argparse.Namespace, project: Project) -> Sharding:
    shard = _shard(args)
    if shard is None:
        return Sharding()
    if _scope(args, project) is not None:
        return Sharding(None, not shard.holds(None), str(shard))
    return Sharding(shard, False, str(shard))


def zone_shards(project: Project) -> dict[str, str | None]:
    """Each managed zone's institution for sharding: the first code (sorted) with records in
    it, so that a zone two institutions share is planned by one shard, whole; None for the
    platform zones (shard 1's, whole: their one marker and their creation belong to one job)."""
    platform = {z + "." for z in project.platform.platform_zones}
    owner: dict[str, str | None] = {}
    for r in project.records():
        if not r.managed:
            continue
        if r.zone in platform or r.institution is None:
            owner[r.zone] = None
        elif r.zone not in owner:
            owner[r.zone] = r.institution
        elif owner[r.zone] is not None:
            owner[r.zone] = min(owner[r.zone] or r.institution, r.institution)
    owner.update({z: None for z in platform})
    return owner


def _plan(args: argparse.Namespace, project: Project) -> PlanResult | None:
    zones = None
    codes: Any = args.institution or None
    orphans = None
    domains: Any = ()
    if args.institution:
        narrowed = select_institution(project, args.institution)
        if narrowed is None:
            return None
        zones = {r.zone for r in narrowed.records() if r.managed}
    sharding = _sharding(args, project)
    if sharding.idle:
        print(f"plan: shard {sharding.given}: the change is not the whole fleet, shard 1 "
              "plans all of it", file=sys.stderr)
        return PlanResult((), (), (), None)
    shard = sharding.shard
    orphans_outside = None
    if shard is not None:
        owners = zone_shards(project)
        mine = {z for z, code in owners.items() if shard.holds(code)}
        zones = mine if zones is None else zones & mine
        if shard.holds(None):
            # shard 1: the platform zones whole (every institution's keys and report
            # authorisations there, a removed one's too), and removed institutions' zones
            orphans_outside = set(owners)
        else:
            held = {i.code for i in project.institutions if shard.holds(i.code)}
            codes = held if codes is None else ({codes} & held)
    changed = _scope(args, project)
    if changed is not None:
        codes = changed.codes if codes is None else set(
            [codes] if isinstance(codes, str) else codes) & changed.codes
        zones = set(changed.zones) if zones is None else zones & changed.zones
        if codes:
            zones |= {z + "." for z in project.platform.platform_zones}
        orphans = dict(changed.orphans)
        domains = changed.domains
    result = engine.plan(project.records(), project.platform, project.root,
                         only_target=args.target, only_zones=zones,
                         only_institution=codes, orphan_zones=orphans, scope_domains=domains,
                         orphans_outside=orphans_outside,
                         read_only=bool(getattr(args, "read_only", False)))
    if shard is not None:
        # the external domains awaiting their institution: each in its institution's shard
        result = replace(result, awaiting=tuple(a for a in result.awaiting
                                                if shard.holds(a.institution)))
    return result


@dataclass(frozen=True)
class Shown:
    """A plan as printed: the project (with its keys), the octoDNS plan, the key state, the
    keys still to generate, and the checksum that gates its apply."""

    project: Project
    result: PlanResult
    keys: KeyContext
    pending: tuple[Pending, ...]
    checksum: str | None
    shard: str | None = None  # --shard I/N as given
    scope: dict[str, str | None] | None = None  # the options apply must repeat (plan_scope)

    @property
    def has_changes(self) -> bool:
        return self.result.has_changes or bool(self.pending)

    def document(self) -> dict[str, Any]:
        """The plan's JSON document: every other form is rendered from it."""
        return to_json(self.result, self.pending, self.checksum, self.shard, self.scope)


def plan_scope(args: argparse.Namespace) -> dict[str, str | None]:
    """What the plan covered, as the options ``apply`` must be given to plan the same zones
    again (its checksum is of those zones only)."""
    return {"target": getattr(args, "target", None),
            "institution": getattr(args, "institution", None),
            "changed_since": getattr(args, "changed_since", None)}


def plan_checksum(result: PlanResult, pending: Iterable[Pending]) -> str | None:
    """octodns-sync's checksum, extended with the keys to generate: the reviewed plan names the
    keys (their values do not exist yet), and apply checks that it adds exactly those."""
    todo = [(p.institution, [(n.label, n.key_id, str(n.spec)) for n in p.needs])
            for p in pending]
    if not todo:
        return result.checksum
    text = json.dumps([result.checksum, todo])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _shown_plan(args: argparse.Namespace, *, quiet: bool = False, hints: bool = True
                ) -> Shown | None:
    """Load, plan, report the problems and print the plan; None when it cannot be applied."""
    from provisioner.keys import service

    only = None
    if getattr(args, "changed_since", None) == "":
        # an unset CI variable: planning the whole fleet in its place would hide the mistake
        raise ProvisionerError("--changed-since needs a commit (the merge request's "
                               "CI_MERGE_REQUEST_DIFF_BASE_SHA): it is empty; leave the option "
                               "out to plan the whole fleet")
    if getattr(args, "changed_since", None):
        from provisioner.changes import declarations

        # only the changed declarations: the validate job reads them all (cross-file rules)
        only = declarations(Path(args.config).resolve(), args.changed_since)
    project = load(args, only=only)
    if project is None:
        return None
    if only is not None:
        changed = _scope(args, project, say=False)
        if changed is not None and changed.orphans:
            # A zone to plan empty must be one no other declaration names: that takes them
            # all (rare: a declaration or a domain removed).
            args._scope = None
            project = load(args)
            if project is None:
                return None
    loaded = with_keys(project, args.institution)
    if loaded is None:
        return None
    project, keys = loaded
    changed = _scope(args, project)
    sharding = _sharding(args, project)
    # the keys to generate are the DKIM zone's, and so shard 1's
    pending = tuple(p for p in service.pending(project, keys.states)
                    if args.institution in (None, p.institution)
                    and (changed is None or p.institution in changed.codes)
                    and sharding.platform)
    result = _plan(args, project)
    if result is None:
        return None
    problems = [*result.problems, *_lost_keys(project, result, pending)]
    report(problems)
    if any(p.is_error for p in problems):
        return None
    shown = Shown(project, result, keys, pending, plan_checksum(result, pending),
                  sharding.given, plan_scope(args))
    if not quiet:
        print(render(shown.document(), args.format, hints=hints))
    return shown


def _write_outputs(directory: Path, shown: Shown) -> bool:
    """Every form the pipeline needs, from the one plan: a second plan run could differ (and
    costs the API calls again)."""
    return write_forms(directory, shown.document())


def write_forms(directory: Path, document: dict[str, Any]) -> bool:
    files = {
        "plan.json": json.dumps(document, indent=2) + "\n",
        "plan.md": render(document, "markdown") + "\n",
        "plan.txt": render(document, "text") + "\n",
        "plan-summary.json": json.dumps(counts(document)) + "\n",
    }
    if "shards" in document:  # merged: each shard's own checksum, one line each, for apply
        files["plan.shards"] = "".join(f"{s['shard']} {s['checksum']}\n"
                                       for s in document["shards"] if s["checksum"])
    else:
        files["plan.checksum"] = document["checksum"] or ""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (directory / name).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"provisioner: cannot write {directory}: {exc}", file=sys.stderr)
        return False
    return True


def _closing(document: dict[str, Any]) -> str:
    n = counts(document)
    keys = sum(len(k["keys"]) for k in document["keys_to_generate"])
    text = f"{n['create']} to create, {n['update']} to update, {n['delete']} to delete"
    return text + (f", {keys} key(s) to generate" if keys else "")


def _lost_keys(project: Project, result: PlanResult, pending: Iterable[Pending],
               before: PlanResult | None = None) -> list[Problem]:
    """Key records the key state does not know: a selector with no key in the state whose
    record on the target would be deleted or overwritten. The store is then not the one that
    made those keys (another MAILAUTH_KEYS_DIR, prefix or region) or was lost: replacing live
    keys would break the signing of every message, so nothing is applied."""
    labels = {f"{n.label}._domainkey": p.institution for p in pending for n in p.needs}
    zone = project.platform.dkim_zone + "."
    seen_before = set()
    if before is not None:
        seen_before = {(c.name, c.action) for z in before.zones if z.zone == zone
                       for c in z.changes}
    problems = []
    for z in result.zones:
        if z.zone != zone:
            continue
        for c in z.changes:
            if c.name in labels and c.action in ("delete", "update") and \
                    (c.name, c.action) not in seen_before:
                problems.append(Problem(
                    "keys.state-lost",
                    f"{c.name}.{zone} on {z.target} publishes a key that the key store does "
                    f"not know (institution {labels[c.name]}): the store is not the one that "
                    "made it, or it was lost; nothing is applied, since replacing a live key "
                    "breaks the signing of every message",
                    project.platform.origin,
                    "point the key store at the one that holds these keys (MAILAUTH_KEYS_DIR, "
                    "the secretsmanager prefix or region); to replace the keys on purpose, "
                    "delete the records at the DNS host first"))
    return problems


def run_plan(args: argparse.Namespace) -> int:
    shown = _shown_plan(args)
    if shown is None:
        return EXIT_ERROR
    if args.output_dir and not _write_outputs(Path(args.output_dir), shown):
        return EXIT_ERROR
    if args.format != "text":  # the text plan ends with this line already
        print(f"plan: {_closing(shown.document())}", file=sys.stderr)
    api_calls()
    if args.detailed_exitcode and shown.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def run_merge(args: argparse.Namespace) -> int:
    from provisioner import planmerge

    merged = planmerge.merge([(Path(d), planmerge.read(Path(d))) for d in args.plans])
    if args.output_dir:
        out = Path(args.output_dir).resolve()
        for given in map(Path, args.plans):
            if out == (given if given.is_dir() else given.parent).resolve():
                raise ProvisionerError(f"plan-merge: --output-dir {args.output_dir} holds the "
                                       f"plan of a shard ({given}): merging there would "
                                       "overwrite it; write the merged plan elsewhere")
    if args.output_dir and not write_forms(Path(args.output_dir), merged):
        return EXIT_ERROR
    print(render(merged, args.format))
    if args.format != "text":
        print(f"plan: {_closing(merged)}", file=sys.stderr)
    return EXIT_OK


#: Set to yes, approves every apply as --auto-approve does (a script's environment).
AUTO_APPROVE = "PROVISIONER_AUTO_APPROVE"


def _approved(args: argparse.Namespace, log: Applied, shown: Shown) -> bool:
    """Whether to write: --auto-approve, $PROVISIONER_AUTO_APPROVE, or "yes" on a terminal (as
    Terraform asks); anything else refuses, nothing written."""
    if args.auto_approve or os.environ.get(AUTO_APPROVE, "").lower() in ("1", "yes", "true"):
        return True
    if sys.stdin.isatty():
        if args.format == "json":  # stdout holds the JSON: show what is asked about here
            print(render(shown.document(), "text", hints=False), file=sys.stderr)
        print("\nApply these changes? Only 'yes' approves: ", end="", file=sys.stderr,
              flush=True)
        if sys.stdin.readline().strip() == "yes":
            return True
        print("provisioner: apply cancelled: nothing written", file=sys.stderr)
        return False
    problem = Problem("apply.not-approved", "apply writes DNS and was not approved: nothing "
                      "written", Origin("apply"), "give --checksum SUM (the reviewed plan's) "
                      "or --auto-approve")
    report([problem])
    log.problems.append(problem)
    return False


@dataclass
class Applied:
    """What one apply did, for its closing line and ``--format json`` (docs/json.md)."""

    plan: dict[str, Any] | None = None
    approved: bool = False
    zones: list[dict[str, Any]] = field(default_factory=list)
    keys_generated: list[dict[str, str]] = field(default_factory=list)
    signing_started: list[dict[str, str]] = field(default_factory=list)
    verification: dict[str, Any] | None = None
    problems: list[Problem] = field(default_factory=list)
    outcome: str = "error"

    def to_json(self, code: int) -> dict[str, Any]:
        return {"outcome": self.outcome, "exit": code, "approved": self.approved,
                "applied": self.zones, "keys_generated": self.keys_generated,
                "signing_started": self.signing_started, "verification": self.verification,
                "plan": self.plan, "problems": _problems_json(self.problems)}

    def summary(self) -> str:
        changes = sum(z["changes"] for z in self.zones)
        zones = sum(1 for z in self.zones if z["changes"])
        keys = f", {len(self.keys_generated)} key(s) generated" if self.keys_generated else ""
        if not self.zones and not keys:
            return f"apply: {self.outcome}"
        return f"apply: {self.outcome}: {changes} change(s) in {zones} zone(s){keys}"


def run_apply(args: argparse.Namespace) -> int:
    """Plan, make the keys the plan announced, apply, then verify what changed: 0 applied (and
    verified or skipped), 1 error (nothing written, or a target failed), 2 applied but
    verification did not succeed. One closing line on stderr; with ``--format json`` the one
    JSON document on stdout says all of it."""
    log = Applied()
    code = _apply(args, log)
    calls = api_calls()
    if args.format == "json":
        print(json.dumps({**log.to_json(code), "api_calls": calls}, indent=2))
    print(log.summary(), file=sys.stderr)
    return code


def _apply(args: argparse.Namespace, log: Applied) -> int:
    if args.verify_wait < 0:
        print("provisioner: --verify-wait must be >= 0", file=sys.stderr)
        return EXIT_ERROR
    shown = _shown_plan(args, quiet=args.format == "json", hints=False)
    if shown is None:
        log.outcome = "error: nothing written"
        return EXIT_ERROR
    log.plan = shown.document()
    if not shown.has_changes:
        if args.checksum:
            # The reviewed plan had changes and now there are none: someone else applied it,
            # or the zones moved. Nothing to write, but not what was reviewed either.
            _refuse(log, Problem("apply.checksum", f"the plan changed since it was reviewed: "
                                 f"checksum {args.checksum} given, and nothing is left to "
                                 "change", Origin("--checksum"),
                                 "plan again: there is nothing to apply"))
            return EXIT_ERROR
        log.outcome = "nothing to apply"
        return EXIT_OK
    if args.checksum is None and not _approved(args, log, shown):
        log.outcome = "not approved: nothing written"
        return EXIT_ERROR
    if args.checksum is not None and args.checksum != shown.checksum:
        _refuse(log, Problem("apply.checksum", f"the plan changed since it was reviewed: "
                             f"checksum {args.checksum} given, {shown.checksum} computed; "
                             "review the new plan", Origin("--checksum")))
        return EXIT_ERROR
    log.approved = True
    project, result = shown.project, shown.result
    refused = [] if args.force else engine.unsafe(result)
    if refused:
        # refused before the keys are made: a refused apply leaves the key store as it was
        report(refused)
        log.problems.extend(refused)
        log.outcome = "refused: nothing written"
        return EXIT_ERROR
    if shown.pending:
        made = _generate(args, shown, log)
        if made is None:
            log.outcome = "error: nothing written to DNS"
            return EXIT_ERROR
        project, result = made
    # The checksum was checked above against the reviewed plan (with its keys to generate);
    # the plan with the new keys differs from it by exactly those keys (checked in _generate).
    checksum = args.checksum if not shown.pending else None
    zones = {(z.zone, z.target): len(z.changes) for z in result.zones}
    step = progress.task("applying zones", sum(1 for n in zones.values() if n))

    with step as bar:
        def on_applied(zone: str, target: str, count: int) -> None:
            log.zones.append({"zone": zone, "target": target, "changes": count})
            bar.advance()
            if args.format == "text":
                print(f"applied {count} change(s) to {zone} on {target}")

        applied = engine.apply(result, checksum=checksum, force=args.force,
                               on_applied=on_applied)
    report(applied.problems)
    log.problems.extend(applied.problems)
    if not applied.ok:
        log.outcome = "failed" if log.zones else "error: nothing written"
        return EXIT_ERROR
    log.outcome = "applied"
    if args.no_verify:
        log.outcome = "applied, not verified (--no-verify)"
        return EXIT_OK
    code, verified = _verify_applied(args, project, applied)
    if verified is not None:
        log.verification = verified.to_json()
        log.outcome = "applied and verified" if code == EXIT_OK else \
            "applied, not verified yet"
    if verified is not None and shown.keys.store is not None:
        _first_activations(args, project, shown.keys, verified, log)
    return code


def _refuse(log: Applied, problem: Problem) -> None:
    report([problem])
    log.problems.append(problem)
    log.outcome = "refused: nothing written"


def _generate(args: argparse.Namespace, shown: Shown, log: Applied
              ) -> tuple[Project, PlanResult] | None:
    """Make and store the keys the plan announced, then plan again with them: the new plan may
    differ from the reviewed one only by those keys' records."""
    from provisioner.keys import service
    from provisioner.keys.store import StoreError

    out = sys.stderr if args.format == "json" else sys.stdout
    store = shown.keys.store
    try:
        outcome = service.onboard_all(shown.project, store, shown.keys.states, clock.now(),
                                      only=[p.institution for p in shown.pending])
    except StoreError as exc:
        print(f"provisioner: key store: {exc}; nothing was written to DNS", file=sys.stderr)
        return None
    for code, key_id, spec in outcome.generated:
        log.keys_generated.append({"institution": code, "key": key_id, "spec": str(spec)})
        print(f"generated key {key_id} ({spec}) for {code} in {store.location}", file=out)
    project = service.attach(shown.project, outcome.states)
    result = _plan(args, project)
    if result is None or not result.ok:
        report(result.problems if result else ())
        return None
    problems = _lost_keys(project, result, shown.pending, before=shown.result)
    allowed = {f"{n.label}._domainkey" for p in shown.pending for n in p.needs}
    reviewed = {(c.zone, c.name, c.type, c.action, c.after) for z in shown.result.zones
                for c in z.changes}
    marker_ok = {f"owns TXT {label}" for label in allowed} | {"owns TXT *._domainkey"}
    reviewed_marker = {v for z in shown.result.zones for c in z.changes
                       if c.name == MARKER_NAME and z.zone == c.zone for v in c.after}
    for z in result.zones:
        for c in z.changes:
            key = (c.zone, c.name, c.type, c.action, c.after)
            in_dkim_zone = c.zone.rstrip(".") == project.platform.dkim_zone
            if key in reviewed or (in_dkim_zone and c.name in allowed and c.type == "TXT"):
                continue
            # The DKIM zone's ownership marker gains one claim per new key record.
            added = set(c.after) - set(c.before) - reviewed_marker
            if in_dkim_zone and c.name == MARKER_NAME and c.action != "delete" and \
                    added <= marker_ok:
                continue
            problems.append(Problem(
                "apply.plan-moved", f"{c.action} {c.name or '@'} {c.type} in {c.zone} was not "
                "in the reviewed plan", Origin("apply"), "plan again and review the new plan"))
    if problems:
        report(problems)
        print("provisioner: the new keys are stored and not published; nothing was written "
              "to DNS", file=sys.stderr)
        return None
    return project, result


def _first_activations(args: argparse.Namespace, project: Project, keys: KeyContext,
                       verified: Report, log: Applied) -> None:
    """Signing starts on an institution's first key as soon as its chain verifies (there is
    nothing to switch from, so no propagation gate); rotations are the schedule's."""
    from provisioner.keys import lifecycle, service
    from provisioner.keys.store import StoreError

    out = sys.stderr if args.format == "json" else sys.stdout
    seen = service.observations(project, verified)
    now = clock.now()
    try:
        states = service.read(project, keys.store, list(seen))
        decide = {}
        for code, state in states.items():
            inst = project.institution(code)
            if inst is None or state.signing is not None or any(s.signed for s in state.slots):
                continue
            policy = service.policy_of(project, inst)
            decide[code] = (lambda s, p=policy, o=seen[code]:
                            lifecycle.activate(s, o, now, p, project.platform.ttl))
        outcome = service.perform(project, keys.store, states, decide, now)
    except StoreError as exc:
        print(f"provisioner: key store: {exc}; run 'provisioner keys advance' to start "
              "signing", file=sys.stderr)
        return
    for code in outcome.changed:
        signing = outcome.states[code].signing
        if signing is not None and signing.key is not None:
            log.signing_started.append({"institution": code, "key": signing.key.id})
            print(f"keys: {code} signs with {signing.key.id} (its chain verifies)", file=out)
    for refusal in outcome.refusals:
        print(f"keys: {refusal}; 'provisioner keys advance' starts signing once it verifies",
              file=out)


def _verify_applied(args: argparse.Namespace, project: Project,
                    applied: engine.ApplyResult) -> tuple[int, Report | None]:
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
        return EXIT_OK, None
    count = sum(len(g.domains) for g in groups)
    own = sum(1 for g in groups for r in g.records if r.domain is None)
    what = f"{count} domain(s)" + (f" and {own} platform record(s)" if own else "")
    wait = f", waiting up to {args.verify_wait:g} s" if args.verify_wait else ""
    print(f"\nverifying {what} of the changed zones on live DNS{wait}", file=out)
    verified = afterapply.run(groups, project.platform, wait=args.verify_wait)
    print(verify_cli.text(verified), file=out)
    if verified.ok:
        return EXIT_OK, verified
    print("provisioner: the records were written, but verification says they are not all live "
          "and right yet (see above); check again with: provisioner verify --wait 60",
          file=sys.stderr)
    return EXIT_CHANGES, verified


# --- rendering ------------------------------------------------------------------------------
# Every form is rendered from the plan's JSON document (:func:`to_json`), so that the shards'
# documents merged into one (:func:`merge`) render exactly as one plan does.


def _value(v: Any, rtype: str) -> str:
    if isinstance(v, dict):  # MX, as the document writes it
        return f"{v.get('preference')} {v.get('exchange')}"
    return json.dumps(v) if rtype in ("TXT", "SPF") else str(v)


def _name(change: dict[str, Any]) -> str:
    return change["name"] or "@"


def _ttl(change: dict[str, Any]) -> Any:
    side = change["after"] or change["before"] or {}
    return side.get("ttl")


def _change_lines(change: dict[str, Any]) -> list[str]:
    head = {"create": "+", "update": "~", "delete": "-"}[change["action"]]
    before_side = change["before"] or {"ttl": None, "values": []}
    after_side = change["after"] or {"ttl": None, "values": []}
    lines = [f"  {head} {_name(change)} {change['type']} {_ttl(change)}"]
    before = {_value(v, change["type"]) for v in before_side["values"]}
    after = {_value(v, change["type"]) for v in after_side["values"]}
    def mark(v: str) -> str:
        return " " if v in before and v in after else ("-" if v in before else "+")

    # as a diff reads: what stays, what goes, then what comes
    for v in sorted(before | after, key=lambda v: (" -+".index(mark(v)), v)):
        lines.append(f"      {mark(v)} {v}")
    if change["action"] == "update" and before_side["ttl"] != after_side["ttl"]:
        lines.append(f"      ttl {before_side['ttl']} -> {after_side['ttl']}")
    return lines


def counts(document: dict[str, Any]) -> dict[str, int]:
    """create/update/delete counts: GitLab's terraform report (plan-summary.json)."""
    n = {"create": 0, "update": 0, "delete": 0}
    for zone in document["zones"]:
        for c in zone["changes"]:
            n[c["action"]] += 1
    return n


def render(document: dict[str, Any], fmt: str, *, hints: bool = True) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2)
    if fmt == "markdown":
        return _markdown(document)
    return _text(document, hints=hints)


def apply_command(document: dict[str, Any], shard: str | None, checksum: str,
                  force: bool) -> str:
    """The apply that writes exactly this plan: the plan's own scope (target, institution,
    --changed-since: the checksum is of those zones), the shard, --force when the guard asks
    for it, and the checksum."""
    import shlex

    scope = document.get("scope") or {}
    words = ["provisioner", "apply"]
    for option, key in (("--target", "target"), ("--institution", "institution"),
                        ("--changed-since", "changed_since")):
        if scope.get(key):
            words += [option, shlex.quote(str(scope[key]))]
    if shard:
        words += ["--shard", shard]
    if force:
        words.append("--force")
    return " ".join([*words, "--checksum", checksum])


def _apply_hints(document: dict[str, Any]) -> list[tuple[str | None, str, bool]]:
    """(shard, checksum, needs --force) of each plan to apply: one, or each shard's of a
    merged plan."""
    if "shards" in document:
        return [(s["shard"], s["checksum"], bool(s.get("needs_force")))
                for s in document["shards"] if s["checksum"]]
    force = any(z["needs_force"] for z in document["zones"])
    return [(document.get("shard"), document["checksum"], force)] if document["checksum"] \
        else []


def _pending_lines(document: dict[str, Any]) -> list[str]:
    pending = document["keys_to_generate"]
    if not pending:
        return []
    out = ["", "keys to generate (apply makes them in the key store, then publishes them):"]
    out += [f"  {p['institution']}: keys to generate: {_keys(p)}" for p in pending]
    return out


def _keys(pending: dict[str, Any]) -> str:
    specs = sorted({str(k["spec"]) for k in pending["keys"]})
    return ", ".join([*(str(k["selector"]) for k in pending["keys"]), *specs])


def _text(document: dict[str, Any], *, hints: bool = True) -> str:
    out: list[str] = []
    for zone in document["zones"]:
        state = "" if zone["exists"] else " (new zone)"
        state += " (declaration removed)" if zone["orphan"] else ""
        if not zone["changes"]:
            out.append(f"{zone['zone']} on {zone['target']}: no changes")
            continue
        out.append(f"{zone['zone']} on {zone['target']}{state}: "
                   f"{len(zone['changes'])} change(s)")
        for c in zone["changes"]:
            out.extend(_change_lines(c))
        out.extend(f"  ! apply needs --force: {v}" for v in zone["needs_force"])
    out.extend(_awaiting_lines(document))
    out.extend(_pending_lines(document))
    out.append("")
    applies = _apply_hints(document)
    if document["changes"]:
        what = _closing(document)
        if len(applies) == 1 and "shards" not in document:
            shard, checksum, force = applies[0]
            out.append(f"{what}; checksum {checksum}")
            if hints:
                out.append("apply exactly this plan: "
                           + apply_command(document, shard, checksum, force))
        else:
            out.append(what)
            if hints:
                out.append("apply exactly this plan, shard by shard:")
                out += ["  " + apply_command(document, shard, checksum, force)
                        for shard, checksum, force in applies]
    else:
        out.append("no changes")
    return "\n".join(out)


def _awaiting_lines(document: dict[str, Any]) -> list[str]:
    if not document["awaiting"]:
        return []
    out = ["", "awaiting publication by the institution (dns: external, never written):"]
    for a in document["awaiting"]:
        out.append(f"  {a['institution']}: {a['domain']}, {len(a['records'])} record(s) "
                   f"(provisioner instructions {a['institution']})")
    return out


def _markdown(document: dict[str, Any]) -> str:
    n = counts(document)
    out = [f"### octoDNS plan: {n['create']} create, {n['update']} update, "
           f"{n['delete']} delete", ""]
    for zone in document["zones"]:
        if not zone["changes"]:
            continue
        extra = "" if zone["exists"] else " (new zone)"
        out += [f"#### {md_code(zone['zone'])} on {md_code(zone['target'])}{extra}", "",
                "| | name | type | ttl | values |", "|---|---|---|---|---|"]
        for c in zone["changes"]:
            lines = _change_lines(c)[1:]
            values = "<br>".join(md_code(line.strip()) for line in lines)
            out.append(f"| {c['action']} | {md_code(_name(c))} | {c['type']} | {_ttl(c)} | "
                       f"{values} |")
        out += [f"> **apply needs `--force`**: {md_code(v)}" for v in zone["needs_force"]]
        out.append("")
    unchanged = [z for z in document["zones"] if not z["changes"]]
    if unchanged:
        out += [f"No changes in {len(unchanged)} zone(s).", ""]
    if document["awaiting"]:
        out += ["#### Awaiting publication by the institution (`dns: external`)", ""]
        out += [f"- {md_code(a['institution'])}: {md_code(a['domain'])}, "
                f"{len(a['records'])} record(s)" for a in document["awaiting"]]
        out.append("")
    if document["keys_to_generate"]:
        out += ["#### DKIM keys to generate (at apply, in the key store)", ""]
        out += [f"- {md_code(p['institution'])}: keys to generate: {_keys(p)}"
                for p in document["keys_to_generate"]]
        out.append("")
    if any(z["needs_force"] for z in document["zones"]):
        out += ["**This plan needs `--force`** (above): review the deletions; the pipeline's "
                "apply job then takes it from the variable `APPLY_FORCE=yes`, set when it is "
                "run.", ""]
    hints = [(shard, checksum) for shard, checksum, _ in _apply_hints(document)]
    if "shards" in document:
        out += ["Checksums, one per shard (apply takes each): " + ", ".join(
            f"shard {md_code(s['shard'])} " + (md_code(s["checksum"]) if s["checksum"]
                                                else "no changes")
            for s in document["shards"])]
    elif hints:
        shard, checksum = hints[0]
        out.append(f"Checksum: {md_code(checksum)}" +
                   (f" (shard {md_code(shard)})" if shard else ""))
    return "\n".join(out)


def _problems_json(problems: Iterable[Problem]) -> list[dict[str, str | int]]:
    return [p.to_json() for p in problems]


def to_json(result: PlanResult, pending: tuple[Pending, ...] = (),
            checksum: str | None = None, shard: str | None = None,
            scope: dict[str, str | None] | None = None) -> dict[str, Any]:
    def values(vs: tuple[Any, ...]) -> list[Any]:
        return [{"preference": v.preference, "exchange": v.exchange}
                if isinstance(v, MxValue) else v for v in vs]

    return {
        "checksum": checksum if checksum is not None else result.checksum,
        "shard": shard,
        "scope": dict(scope or {"target": None, "institution": None, "changed_since": None}),
        "changes": result.has_changes or bool(pending),
        "keys_to_generate": [{"institution": p.institution,
                              "keys": [{"selector": n.label, "id": n.key_id,
                                        "spec": str(n.spec)} for n in p.needs]}
                             for p in pending],
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
        "api_calls": api_report(),
    }
