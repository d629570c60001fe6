"""Plan and apply: the product's records through octoDNS providers, zone by zone.

Built from octoDNS's parts rather than its Manager, which reads its config from a file, prints
plans itself and keeps no result a caller can render. The steps per zone are the Manager's
(populate the source, process, ``provider.plan`` with the processors, ``process_plan``), and
the checksum is computed as ``octodns-sync`` computes it (sha256 of the JSON of the plans' data),
so a reviewed plan's checksum gates its apply (``apply --checksum``).

Zones the declarations no longer mention but whose ownership marker says the product wrote them
("orphans": an institution file was removed) are found with the target's ``list_zones()`` and
planned with nothing desired, which removes exactly what the marker lists.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from octodns.processor.base import BaseProcessor  # type: ignore[import-untyped,unused-ignore]
from octodns.record import Record as OctoRecord  # type: ignore[import-untyped,unused-ignore]
from octodns.zone import Zone  # type: ignore[import-untyped,unused-ignore]

from provisioner import progress
from provisioner.errors import Origin, Problem, Severity
from provisioner.model import Platform, Record
from provisioner.octodns.afterapply import live_dns
from provisioner.octodns.convert import plain_values
from provisioner.octodns.guard import Guard, GuardedPlan, MissingZone, check
from provisioner.octodns.ownership import MARKER_NAME, Claim, Ownership, SpfRefused, claim_of
from provisioner.octodns.readonly import build_reader
from provisioner.octodns.source import ProvisionerSource
from provisioner.octodns.targets import build_provider

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Change:
    """One record set's change: ``action`` is create, update or delete."""

    action: str
    zone: str
    name: str
    type: str
    before_ttl: int | None
    before: tuple[Any, ...]
    after_ttl: int | None
    after: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ZonePlan:
    zone: str
    target: str
    exists: bool
    changes: tuple[Change, ...]
    violations: tuple[str, ...] = ()  # what apply refuses without --force
    orphan: bool = False  # no declaration left: removing what the product owned


@dataclass(frozen=True, slots=True)
class Awaiting:
    """A ``dns: external`` domain: records its institution publishes, never written by us."""

    institution: str
    domain: str
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class RefusedSpf:
    """A zone refused because of its live SPF at ``name`` (relative, "" for the apex):
    ``values`` are the live SPF values concerned, ``reason`` the one-line message, the same as
    the ``plan.live-spf-invalid`` problem's."""

    zone: str
    name: str
    values: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class PlanResult:
    zones: tuple[ZonePlan, ...]
    awaiting: tuple[Awaiting, ...]
    problems: tuple[Problem, ...]
    checksum: str | None
    refused: tuple[RefusedSpf, ...] = ()  # zones not planned for their live SPF
    # The octoDNS plans, for apply; not part of the value's meaning.
    octodns_plans: tuple[tuple[Any, Any], ...] = field(default=(), repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not any(p.is_error for p in self.problems)

    @property
    def has_changes(self) -> bool:
        return any(z.changes for z in self.zones)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    applied: tuple[tuple[str, str, int], ...]  # zone, target, changes
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not any(p.is_error for p in self.problems)


def checksum_of(plans: Iterable[Any]) -> str | None:
    """octodns-sync's checksum: sha256 over the JSON of each plan's data, in plan order."""
    data = [p.data for p in plans]
    if not data:
        return None
    return hashlib.sha256(json.dumps(data).encode("utf-8")).hexdigest()


def _changes(zone: str, plan: Any) -> tuple[Change, ...]:
    out = []
    for c in plan.changes:
        old, new = c.existing, c.new
        out.append(Change(
            c.__class__.__name__.lower(), zone, c.record.name, c.record._type,
            old.ttl if old else None, plain_values(old) if old else (),
            new.ttl if new else None, plain_values(new) if new else (),
        ))
    return tuple(out)


def _problem(code: str, message: str, origin: Origin) -> Problem:
    return Problem(code, " ".join(message.split()), origin)


def _sub_zones(zone: str, zones: Iterable[str]) -> set[str]:
    suffix = "." + zone
    return {z[: -len(suffix)] for z in zones if z.endswith(suffix)}


@dataclass(frozen=True, slots=True)
class InstitutionScope:
    """What one institution has in the platform zones (``--institution``).

    A platform zone holds every institution's records side by side; narrowed to one, its plan
    must show, and apply must write, only that one's. ``pairs``: (zone, name, type) of its
    current records there; ``domains`` and ``keys`` (its DKIM key names,
    ``sel1-mosa._domainkey``) also cover records it no longer declares, so that their removal
    still shows.
    """

    codes: frozenset[str]
    pairs: frozenset[tuple[str, str, str]]
    domains: frozenset[str]
    keys: frozenset[str]

    @classmethod
    def of(cls, codes: str | Iterable[str], records: Iterable[Record], platform: Platform
           ) -> InstitutionScope:
        wanted = frozenset([codes] if isinstance(codes, str) else codes)
        mine = [r for r in records if r.institution in wanted]
        return cls(wanted, frozenset((r.zone, r.name, r.type) for r in mine),
                   frozenset(r.domain for r in mine if r.domain),
                   frozenset(f"{s.target_label(c)}._domainkey" for c in wanted
                             for s in platform.selectors))

    def covers(self, zone: str, name: str, rtype: str) -> bool:
        if name == MARKER_NAME:
            return True  # the marker is the zone's, and pattern-based: the same for everyone
        if (zone, name, rtype) in self.pairs:
            return True
        if "._report._dmarc" in name:
            return name.split("._report._dmarc", 1)[0] in self.domains
        return name in self.keys


class Narrow(BaseProcessor):  # type: ignore[misc]
    """octoDNS processor for ``--institution`` in platform zones: every record set the
    institution does not cover is made the same in the desired zone as on the target, so
    octoDNS plans no change to it (and a file target rewrites it unchanged)."""

    def __init__(self, id: str, scope: InstitutionScope, zones: Iterable[str]) -> None:
        super().__init__(id)
        self.scope = scope
        self.zones = frozenset(zones)

    def process_source_and_target_zones(
        self, desired: Any, existing: Any, target: Any, lenient: bool = False
    ) -> tuple[Any, Any]:
        zone = desired.name
        if zone not in self.zones:
            return desired, existing
        live = {(r.name, r._type): r for r in existing.records}
        for record in list(desired.records):
            pair = (record.name, record._type)
            if not self.scope.covers(zone, *pair) and pair not in live:
                desired.remove_record(record)
        for pair, record in live.items():
            if not self.scope.covers(zone, *pair):
                desired.add_record(record.copy(zone=desired), replace=True, lenient=True)
        return desired, existing


@dataclass
class _Planner:
    platform: Platform
    root: Path
    source: ProvisionerSource
    ownership: Ownership
    guard: Guard
    all_zones: set[str]
    narrow: Narrow | None = None

    def plan_zone(self, zone_name: str, provider: Any) -> Any:
        """The octoDNS plan (None: no changes) for one zone on one provider, as the Manager."""
        zone = Zone(zone_name, _sub_zones(zone_name, self.all_zones))
        self.source.populate(zone)
        zone.validate()
        processors: list[Any] = [self.ownership, self.guard]
        if self.narrow is not None:
            processors.insert(0, self.narrow)
        plan = provider.plan(zone, processors=processors)
        for processor in processors:
            plan = processor.process_plan(plan, sources=[self.source], target=provider)
        return plan


def zone_targets(records: Iterable[Record], platform: Platform) -> tuple[dict[str, str],
                                                                          list[Problem]]:
    """Each managed zone's target; a zone claimed by two targets is an error at its records."""
    chosen: dict[str, str] = {}
    first: dict[str, Record] = {}
    problems: list[Problem] = []
    for r in records:
        if not r.managed:
            continue
        target = r.target or platform.platform_zones.get(r.zone.rstrip(".")) or \
            platform.default_target
        if r.zone in chosen and chosen[r.zone] != target:
            problems.append(_problem(
                "plan.zone-targets", f"zone {r.zone} is written to target {target} here and to "
                f"{chosen[r.zone]} at {first[r.zone].origin}: one zone, one target", r.origin))
            continue
        chosen.setdefault(r.zone, target)
        first.setdefault(r.zone, r)
    return chosen, problems


def plan(
    records: Sequence[Record],
    platform: Platform,
    root: Path,
    *,
    only_target: str | None = None,
    only_zones: Iterable[str] | None = None,
    only_institution: str | Iterable[str] | None = None,
    orphan_zones: Mapping[str, str] | None = None,
    scope_domains: Iterable[str] = (),
    find_orphans: bool = True,
    orphans_outside: Iterable[str] | None = None,
    workers: int = 4,
    read_only: bool = False,
) -> PlanResult:
    """What apply would change, per zone, plus the external domains awaiting publication.

    ``only_zones`` narrows to those zones (``--institution``); orphans are then not looked for,
    since every other institution's zone would look like one. ``only_institution`` narrows the
    platform zones' plans to that institution's records (:class:`InstitutionScope`), so that
    ``apply --institution`` writes nothing of another's; several codes (``--changed-since``)
    narrow to the records of those. Target or zone failures become
    problems naming the target; nothing raises for a user's mistake.
    """
    _enable_validators()
    targets_of, problems = zone_targets(records, platform)
    declared = set(targets_of)
    if only_zones is not None:
        wanted = set(only_zones)
        targets_of = {z: t for z, t in targets_of.items() if z in wanted}
        # ``orphans_outside`` (a shard of a full plan): removed institutions' zones are still
        # looked for, among the zones no declaration names at all, never a declared one
        find_orphans = orphans_outside is not None
    if only_target is not None:
        targets_of = {z: t for z, t in targets_of.items() if t == only_target}
    in_use = set(targets_of.values()) | set((orphan_zones or {}).values())
    if find_orphans:
        # A removed institution's zone is on a target no record names any more: look at every
        # target the platform uses, not only those of the remaining records.
        in_use |= {platform.default_target, *platform.platform_zones.values()}
    if only_target is not None:
        in_use = {only_target}
    providers: dict[str, Any] = {}
    for name in sorted(in_use):
        target = platform.targets.get(name)
        if target is None:
            problems.append(_problem("plan.target-unknown", f"no target {name!r} in "
                                     "provisioner.yaml targets", platform.origin))
            continue
        try:
            live_dns(target)  # a bad nameserver option fails the plan, not the apply after it
            if read_only:
                providers[name] = build_reader(
                    target, root, [z for z, t in sorted(targets_of.items()) if t == name],
                    platform.platform_zones)
            else:
                providers[name] = build_provider(target, root)
        except Exception as exc:  # InvalidInput carries located problems
            problems.extend(getattr(exc, "problems", ()) or
                            [_problem("target.init", str(exc), target.origin)])
    source = ProvisionerSource("provisioner", records=records, platform=platform)
    create_zones = [z + "." for z in platform.platform_zones]
    narrow = None
    scope_codes = None if only_institution is None else frozenset(
        [only_institution] if isinstance(only_institution, str) else only_institution)
    if scope_codes is not None:
        scoped = InstitutionScope.of(scope_codes, records, platform)
        # the domains they declared before (a removed one's report authorisations go too)
        scoped = replace(scoped, domains=scoped.domains | frozenset(scope_domains))
        narrow = Narrow("narrow", scoped, [z + "." for z in platform.platform_zones])
    planner = _Planner(platform, root, source, Ownership("ownership"),
                       Guard("guard", create_zones=create_zones), set(targets_of), narrow)
    jobs = [(z, t, False) for z, t in sorted(targets_of.items()) if t in providers]
    # Zones no declaration names any more, given by the caller (--changed-since: a removed
    # institution's or domain's zone): planned empty, so the owned records there are deleted.
    for zone, target_name in sorted((orphan_zones or {}).items()):
        if zone not in targets_of and target_name in providers and \
                (only_target is None or target_name == only_target):
            jobs.append((zone, target_name, True))
    if find_orphans:
        outside = declared | set(targets_of) | set(orphans_outside or ())
        jobs += [(z, t, True) for z, t in _orphan_candidates(providers, outside, platform,
                                                              problems)]
        for name, provider in sorted(providers.items()):
            if read_only and getattr(provider, "list_zones", None) is None:
                problems.append(Problem(
                    "plan.orphans-unseen", f"target {name} is read zone by zone in a read-only "
                    "plan: a zone whose declaration was removed is not shown (apply, which "
                    "lists the zones, then refuses the changed checksum)",
                    platform.targets[name].origin, severity=Severity.WARNING))

    def run(job: tuple[str, str, bool]) -> tuple[tuple[str, str, bool], Any, Exception | None]:
        try:
            return (job, planner.plan_zone(job[0], providers[job[1]]), None)
        except Exception as error:  # a target down, a zone missing: one located line each
            return (job, None, error)
        finally:
            bar.advance()

    # many zones of one Route53 account: one listing page names 100 zones' Ids (the rate
    # limiter is loaded only when a Route53 provider was built, as api_report reads it)
    ratelimit = sys.modules.get("provisioner.octodns.ratelimit")
    if ratelimit is not None:
        for name, provider in sorted(providers.items()):
            ratelimit.prefetch(provider, [z for z, t, _ in jobs if t == name])
    with progress.task("planning zones", len(jobs)) as bar:
        results = _map(run, jobs, workers)
    zone_plans: list[ZonePlan] = []
    refused: list[RefusedSpf] = []
    octo: list[tuple[Any, Any]] = []
    for job, octo_plan, failure in results:
        zone_name, target_name, orphan = job
        target = platform.targets[target_name]
        if isinstance(failure, MissingZone):
            # The user's fix is in the declaration (or at the DNS host): point at the domain.
            first = next((r for r in records if r.zone == zone_name), None)
            problems.append(_problem("plan.zone-missing", str(failure),
                                     first.origin if first else target.origin))
        elif isinstance(failure, SpfRefused):
            # The fix is at the DNS host, but the declaration that wants the merge is where a
            # reader of the plan looks: point at the SPF record's origin when there is one.
            planner.ownership.notes.by_zone.pop(zone_name, None)
            here = [r for r in records if r.zone == zone_name]
            spf = next((r for r in here if r.name == failure.name and r.type == "TXT"), None)
            at = spf or (here[0] if here else None)
            # Problem, not _problem: the live value is quoted exactly, its spaces included.
            problems.append(Problem("plan.live-spf-invalid", str(failure),
                                    at.origin if at else target.origin))
            refused.append(RefusedSpf(zone_name, failure.name, failure.error.values,
                                      str(failure)))
            continue
        elif failure is not None:
            problems.append(_problem("plan.target-error", f"{zone_name} on {target_name}: "
                                     f"{type(failure).__name__}: {failure}", target.origin))
            continue
        if orphan and (octo_plan is None or claim_of(octo_plan.existing) == Claim()):
            continue  # a zone the product never wrote
        notes = planner.ownership.notes.by_zone.pop(zone_name, [])
        problems.extend(notes)
        if octo_plan is None:
            zone_plans.append(ZonePlan(zone_name, target_name, True, ()))
            continue
        violations = octo_plan.violations if isinstance(octo_plan, GuardedPlan) else \
            check(octo_plan)
        zone_plans.append(ZonePlan(zone_name, target_name, bool(octo_plan.exists),
                                   _changes(zone_name, octo_plan), violations, orphan))
        octo.append((providers[target_name], octo_plan))
    for zp in zone_plans:
        for v in zp.violations:
            problems.append(Problem("plan.needs-force", f"{zp.zone} on {zp.target}: {v}",
                                    platform.targets[zp.target].origin,
                                    severity=Severity.WARNING))
    external = [r for r in records
                if scope_codes is None or r.institution in scope_codes]
    return PlanResult(tuple(zone_plans), _awaiting(external), tuple(problems),
                      checksum_of(p for _, p in octo), tuple(refused), tuple(octo))


def unsafe(planned: PlanResult) -> list[Problem]:
    """What octoDNS's safety thresholds refuse in ``planned`` (a zone's deletions or updates
    past its share, a root NS change): one ``apply.unsafe`` each; apply without ``force``
    refuses the whole plan on any."""
    problems: list[Problem] = []
    for _, octo_plan in planned.octodns_plans:
        try:
            octo_plan.raise_if_unsafe()
        except Exception as exc:  # UnsafePlan and its kin
            problems.append(_problem("apply.unsafe", str(exc), Origin("apply")))
    return problems


def apply(
    planned: PlanResult,
    *,
    checksum: str | None = None,
    force: bool = False,
    on_applied: Callable[[str, str, int], None] | None = None,
) -> ApplyResult:
    """Apply a plan; nothing is written when the checksum differs or the guard refuses.

    Zones are independent, so a zone that fails (its target unreachable) does not stop the
    others; re-running apply converges, since each plan is recomputed from the live state.
    """
    problems: list[Problem] = []
    if not planned.ok:
        return ApplyResult((), planned.problems)
    if checksum is not None and checksum != planned.checksum:
        return ApplyResult((), (_problem(
            "apply.checksum", f"the plan changed since it was reviewed: checksum {checksum} "
            f"given, {planned.checksum} computed; review the new plan", Origin("--checksum")),))
    if not force:
        problems = unsafe(planned)
        if problems:
            return ApplyResult((), tuple(problems))
    applied: list[tuple[str, str, int]] = []
    for provider, octo_plan in planned.octodns_plans:
        zone = octo_plan.desired.name
        moved = _changed_since_plan(provider, octo_plan)
        if moved:
            # Optimistic concurrency: the plan wrote its changes over the record sets it read;
            # someone changed one since (a customer's new TXT value in the shared apex set).
            # Writing now would lose their edit: refuse the zone, nothing written to it.
            problems.append(_problem(
                "apply.zone-changed", f"{zone} on {provider.id} changed since the plan "
                f"({', '.join(moved)}): nothing written to it; plan again and review",
                Origin("apply")))
            continue
        try:
            count = int(provider.apply(octo_plan))
        except Exception as exc:
            problems.append(_problem("apply.target-error", f"{zone} on {provider.id}: "
                                     f"{type(exc).__name__}: {exc} (apply again to converge)",
                                     Origin("apply")))
            continue
        unlike = _read_back(provider, octo_plan)
        if unlike:
            # Written, but the target holds something else than the plan showed (a provider
            # that re-encodes a value, an escape decoded on the way): never a silent success.
            problems.append(_problem(
                "apply.read-back", f"{zone} on {provider.id}: written, but reads back unlike "
                f"the plan: {'; '.join(unlike)}", Origin("apply")))
        applied.append((zone, provider.id, count))
        if on_applied is not None:
            on_applied(zone, provider.id, count)
    return ApplyResult(tuple(applied), tuple(problems))


def _reread(provider: Any, octo_plan: Any, when: str) -> dict[tuple[str, str], Any] | None:
    """The zone's record sets as the provider holds them now (None: unreadable)."""
    existing = octo_plan.existing
    fresh = Zone(existing.name, set(existing.sub_zones))
    # octodns-route53 keeps every zone's record sets from its first read (``_r53_rrsets``,
    # per zone id): a re-read would return the plan's own view. Forget it, so that the
    # provider asks Route53 again.
    cache = getattr(provider, "_r53_rrsets", None)
    if isinstance(cache, dict):
        cache.clear()
    try:
        provider.populate(fresh, target=True, lenient=True)
    except Exception as exc:
        log.info("re-reading %s %s: %s", existing.name, when, exc)
        return None
    return {(r.name, r._type): r for r in fresh.records}


def _read_back(provider: Any, octo_plan: Any) -> list[str]:
    """Each record set the plan wrote that does not read back as the plan showed it."""
    now = _reread(provider, octo_plan, "after the write")
    if now is None:
        return ["the zone could not be read back"]
    unlike = []
    for change in octo_plan.changes:
        key = (change.record.name, change.record._type)
        wanted, found = change.new, now.get(key)
        label = f"{key[1]} {key[0] or '@'}"
        if wanted is None and found is not None:
            unlike.append(f"{label} is still there")
        elif wanted is not None and found is None:
            unlike.append(f"{label} is missing")
        elif wanted is not None and found is not None and wanted.data != found.data:
            unlike.append(f"{label} reads {plain_values(found)}, not {plain_values(wanted)}")
    return unlike


def _changed_since_plan(provider: Any, octo_plan: Any) -> list[str]:
    """The record sets a plan changes whose live value is no longer what the plan read:
    re-read from the provider just before the write (one read per changed zone)."""
    now = _reread(provider, octo_plan, "before the write")
    if now is None:  # unreadable now: apply's own write will report the target
        return []
    moved = []
    for change in octo_plan.changes:
        key = (change.record.name, change.record._type)
        before, current = change.existing, now.get(key)
        if (before is None) != (current is None) or (
                before is not None and current is not None and before.data != current.data):
            moved.append(f"{key[1]} {key[0] or '@'}")
    return moved


def _enable_validators() -> None:
    # What octoDNS's Manager enables by default; without it octoDNS warns and enables it anyway.
    OctoRecord.enable_validators(("legacy",))
    Zone.enable_zone_validators(("legacy",))


def _orphan_candidates(providers: dict[str, Any], planned: set[str], platform: Platform,
                       problems: list[Problem]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, provider in sorted(providers.items()):
        lister = getattr(provider, "list_zones", None)
        if lister is None:
            continue
        try:
            listed = lister()
        except FileNotFoundError as exc:  # a missing build/ directory lists nothing
            log.info("list_zones on %s: %s", name, exc)
            continue
        except Exception as exc:  # throttled past the retries, two zones of one name, ...
            why = " ".join(str(exc).split())
            problems.append(Problem(
                "plan.orphans-unseen", f"target {name}: its zones could not be listed "
                f"({type(exc).__name__}: {why}): a zone whose declaration was removed is not "
                "shown (apply lists them again, and refuses a changed checksum)",
                platform.targets[name].origin, severity=Severity.WARNING))
            continue
        out += [(z, name) for z in sorted(listed) if z not in planned]
    return out


def _awaiting(records: Iterable[Record]) -> tuple[Awaiting, ...]:
    grouped: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        if not r.managed:
            grouped[(r.institution or "", r.domain or r.zone.rstrip("."))].append(r)
    return tuple(Awaiting(i, d, tuple(rs)) for (i, d), rs in sorted(grouped.items()))


def _map(fn: Callable[[Any], Any], jobs: list[Any], workers: int) -> list[Any]:
    if workers <= 1 or len(jobs) <= 1:
        return [fn(j) for j in jobs]
    # octoDNS providers are I/O-bound (one HTTP round trip or file read per zone).
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, jobs))
