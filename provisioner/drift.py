"""Drift: what the live DNS and the targets say against what the declarations want (DESIGN §1).

Two views are combined, each from the component that owns it:

- the **plan** (:mod:`provisioner.octodns.engine`) of the managed zones, which already touches
  only the records the product owns (DESIGN §5): a record changed or deleted by hand on a target;
- the **live verification** (:mod:`provisioner.verify`) of every domain, managed or external:
  never published, removed, a second SPF record added, a key that no longer matches.

Each :class:`Finding` names the institution, domain, record, expected and found, and a class:

``missing``      an owned record is absent (plan: create; live: NXDOMAIN/NODATA where the rest
                 of the domain answers);
``changed``      present with another value (plan: update; live: a check failed);
``unexpected``   present but not wanted (plan: delete of an owned record; live: a second SPF or
                 DMARC record, a CNAME beside other data);
``unpublished``  the authoritative DNS does not serve it although nothing on the target differs
                 (an external domain whose administrator published nothing, a zone that is not
                 delegated).

A plan finding and a live finding about the same name are one finding (the plan's class, unless
the live check sees an extra record). Checks that could not be answered (timeouts, SERVFAIL) are
problems, not drift: nothing is known about them.

Sharding (``--shard I/N``) takes the institutions whose code hashes to ``I`` (SHA-256, not the list
position, so adding a file does not move the others); records of no institution (ownership
markers of platform zones, the platform's SPF record) belong to shard 1.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from provisioner.config import Project
from provisioner.errors import Origin, Problem
from provisioner.model import DnsMode, MxValue, Record
from provisioner.octodns import engine
from provisioner.verify import CheckResult, Report, Status, verify_records


class DriftClass(StrEnum):
    MISSING = "missing"
    CHANGED = "changed"
    UNEXPECTED = "unexpected"
    UNPUBLISHED = "unpublished"


PLAN_CLASS = {"create": DriftClass.MISSING, "update": DriftClass.CHANGED,
              "delete": DriftClass.UNEXPECTED}
# The record type each live check reads first (return-path checks read MX and TXT at one name).
CHECK_TYPE = {"spf": "TXT", "dmarc": "TXT", "dkim": "CNAME", "mx": "MX"}
# Live reasons that mean "there is more than there should be", not "it is different".
EXTRA_REASON = re.compile(r"multiple|duplicate|second|beside|extra|permerror", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Shard:
    """The ``index``-th of ``total`` shares of the institutions, 1-based as GitLab's
    ``CI_NODE_INDEX``/``CI_NODE_TOTAL`` count them."""

    index: int
    total: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` with 1 <= I <= N; ValueError with a message a user can act on."""
        # ASCII digits, no leading zero, nothing around: "1/4" as CI_NODE_INDEX/CI_NODE_TOTAL
        # write it (\d would take "١/٢", and int() reads it)
        match = re.fullmatch(r"([1-9][0-9]{0,5})/([1-9][0-9]{0,5})", text, flags=re.ASCII)
        if not match:
            if re.fullmatch(r"[0-9]+/0+", text):
                raise ValueError(f"shard {text!r}: N, the number of shards, must be at least 1")
            raise ValueError(f"shard {text!r} is not I/N, two numbers from 1 (e.g. 1/4)")
        index, total = int(match.group(1)), int(match.group(2))
        if index > total:
            raise ValueError(f"shard {text!r}: I must be at most N ({total})")
        return cls(index, total)

    def holds(self, code: str | None) -> bool:
        """Whether this shard checks ``code``'s records; ``None`` (platform records): shard 1."""
        if code is None:
            return self.index == 1
        return shard_of(code, self.total) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def shard_of(code: str, total: int) -> int:
    """The 1-based shard of an institution: stable across runs, machines and fleet changes."""
    digest = hashlib.sha256(code.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % total + 1


@dataclass(frozen=True, slots=True)
class Finding:
    """One drifted record. ``record`` is the fully qualified name without the trailing dot."""

    kind: DriftClass
    institution: str | None
    domain: str | None
    record: str
    type: str
    expected: tuple[str, ...]
    found: tuple[str, ...]
    reason: str
    sources: tuple[str, ...]  # "plan", "live"
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.kind.value,
            "institution": self.institution,
            "domain": self.domain,
            "record": self.record,
            "type": self.type,
            "expected": list(self.expected),
            "found": list(self.found),
            "reason": self.reason,
            "sources": list(self.sources),
            "target": self.target,
        }


@dataclass(frozen=True)
class DriftReport:
    """The findings of one run (one shard), what it checked, and what it could not check."""

    findings: tuple[Finding, ...]
    institutions: tuple[str, ...]
    domains: tuple[tuple[str | None, str], ...]  # (institution, domain) checked live
    problems: tuple[Problem, ...] = ()
    shard: Shard | None = None
    checks: int = 0
    unanswered: tuple[CheckResult, ...] = field(default=())
    api: str = "always"  # how the targets' APIs were used: auto (DNS first), always, never
    api_zones: tuple[str, ...] = ()  # the zones read through the targets' APIs
    managed_zones: int = 0

    @property
    def drift(self) -> bool:
        return bool(self.findings)

    @property
    def ok(self) -> bool:
        """No error: every target planned and every check answered."""
        return not any(p.is_error for p in self.problems)

    def counts(self) -> dict[str, int]:
        out = {c.value: 0 for c in DriftClass}
        for f in self.findings:
            out[f.kind.value] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "drift": self.drift,
            "shard": str(self.shard) if self.shard else None,
            "institutions": list(self.institutions),
            "counts": self.counts(),
            "checks": self.checks,
            "unknown": len(self.unanswered),
            "api": self.api,
            "api_zones": list(self.api_zones),
            "managed_zones": self.managed_zones,
            "findings": [f.to_json() for f in self.findings],
            "problems": [p.to_json() for p in self.problems],
        }


PlanFn = Callable[..., engine.PlanResult]
VerifyFn = Callable[..., Report]


def detect(
    project: Project,
    *,
    shard: Shard | None = None,
    institution: str | None = None,
    nameservers: Sequence[Any] = (),
    timeout: float = 1.0,
    api: str = "auto",
    plan_fn: PlanFn = engine.plan,
    verify_fn: VerifyFn = verify_records,
) -> DriftReport:
    """Verify every domain of the selected institutions on live DNS, and read through the
    targets' APIs (a plan) the zones that need it.

    ``api``: ``auto`` (DNS first): only the zones where live DNS differs from what the
    product owns, or did not answer, are planned; ``always`` (the full cycle, e.g. weekly):
    every managed zone, which also sees what DNS cannot show (an owned record no longer
    declared, a TTL-only change, a hidden primary, a zone behind a broken delegation);
    ``never``: DNS only, no API call at all. The plan always sees the whole expansion (a zone
    planned with part of its records would show the rest as deletions); only its findings are
    narrowed to the shard. ``plan_fn`` and ``verify_fn`` are the engines' entry points,
    injectable for a test of the classification.
    """
    records = project.records()
    chosen = tuple(i.code for i in project.institutions
                   if (shard is None or shard.holds(i.code))
                   and (institution is None or i.code == institution))
    selected = set(chosen)

    def mine(code: str | None) -> bool:
        if code is None:
            return shard is None or shard.holds(None)
        return code in selected

    problems: list[Problem] = []
    findings: list[Finding] = []
    zone_owner = _zone_owners(records)
    by_key = {r.key: r for r in records}
    managed_zones = {r.zone for r in records if r.managed and (
        mine(r.institution) or r.zone.rstrip(".") in project.platform.platform_zones)}
    zone_of = {r.fqdn.rstrip("."): r.zone for r in records}

    live = [r for r in records if mine(r.institution) and r.institution is not None]
    report = verify_fn(live, project.platform, nameservers=tuple(nameservers),
                       timeout=timeout) if live else None
    if api == "always":
        zones = managed_zones
    elif api == "never" or report is None:
        zones = set()
    else:
        # DNS first: a zone is read through the API only when a check of one of its names
        # did not succeed (wrong, absent, or unanswered).
        suspect = {zone_of.get(c.name.rstrip(".")) for d in report.domains for c in d.checks
                   if c.status is not Status.SUCCESS}
        zones = {z for z in suspect if z in managed_zones}
    planned_zones: set[str] = set()
    if zones:
        planned = plan_fn(records, project.platform, project.root, only_zones=zones)
        planned_zones = {z.zone for z in planned.zones}
        refused = [f for f in (_refused_spf(r, by_key) for r in planned.refused)
                   if f is not None]
        findings += [f for f in refused if mine(f.institution)]
        for problem in planned.problems:
            # A refused zone whose record we know is a finding (above), not an error of the run.
            if problem.code == "plan.live-spf-invalid" and any(
                    f.reason == problem.message for f in refused):
                continue
            if problem.is_error:
                problems.append(problem)
        for zone in planned.zones:
            for change in zone.changes:
                record = by_key.get((zone.zone, change.name, change.type))
                code = record.institution if record else zone_owner.get(zone.zone)
                if not mine(code):
                    continue
                findings.append(_plan_finding(zone, change, record, code))
    domains: list[tuple[str | None, str]] = []
    unanswered: list[CheckResult] = []
    checks = 0
    if report is not None:
        modes = {d.name: d.dns for i in project.institutions for d in i.domains}
        for dom in report.domains:
            domains.append((dom.institution, dom.domain))
            checks += len(dom.checks)
            # "Nothing published yet": every record we ask for is absent (the domain's own MX,
            # checked as a courtesy, says nothing about what its administrator did for us).
            all_absent = all(c.status is Status.PENDING for c in dom.checks
                             if not (c.check == "mx" and c.name.rstrip(".") == dom.domain))
            for check in dom.checks:
                if check.status is Status.SUCCESS:
                    continue
                if check.status is Status.TEMPORARY_FAILURE:
                    unanswered.append(check)
                    problems.append(Problem(
                        "drift.unanswered", f"{dom.domain}: {check.check} check of "
                        f"{check.name} could not be answered ({check.reason}): {check.message}",
                        Origin(dom.institution or "platform"), "run drift again; if it "
                        "persists, the domain's authoritative servers are unhealthy"))
                    continue
                external = modes.get(dom.domain) is DnsMode.EXTERNAL
                # A managed zone the plan saw unchanged but the servers do not answer for is
                # unpublished; one the plan could not read (refused) tells nothing: missing.
                seen = external or zone_of.get(check.name.rstrip(".")) in planned_zones
                # A DKIM key record (in the platform's DKIM zone) is a TXT, not the CNAME.
                rtype = ("TXT" if check.check == "dkim" and
                         project.platform.platform_zone_of(check.name.rstrip(".")) else
                         CHECK_TYPE.get(check.check, "TXT"))
                findings.append(_live_finding(dom.institution, dom.domain, check,
                                              external=external, all_absent=all_absent,
                                              planned=seen, rtype=rtype))
    return DriftReport(tuple(_merge(findings)), chosen, tuple(domains), tuple(problems), shard,
                       checks, tuple(unanswered), api=api,
                       api_zones=tuple(sorted(planned_zones)),
                       managed_zones=len(managed_zones))


def _zone_owners(records: Iterable[Record]) -> dict[str, str | None]:
    """Each managed zone's institution (the first by code); platform zones: None."""
    owners: dict[str, str | None] = {}
    for r in sorted(records, key=lambda r: (r.zone, r.institution or "")):
        if r.managed and r.institution and r.domain:
            owners.setdefault(r.zone, r.institution)
    return owners


def _text(value: Any) -> str:
    if isinstance(value, MxValue):
        return str(value)
    if isinstance(value, dict) and "exchange" in value:
        return f"{value.get('preference')} {value['exchange']}"
    return str(value)


def _plan_finding(zone: engine.ZonePlan, change: engine.Change, record: Record | None,
                  code: str | None) -> Finding:
    fqdn = (f"{change.name}.{zone.zone}" if change.name else zone.zone).rstrip(".")
    kind = PLAN_CLASS[change.action]
    expected = tuple(_text(v) for v in change.after)
    found = tuple(_text(v) for v in change.before)
    what = {"create": "absent on the target", "update": "differs on the target",
            "delete": "owned but no longer declared"}[change.action]
    return Finding(kind, code, record.domain if record else None, fqdn, change.type, expected,
                   found, f"{change.type} {fqdn} {what} ({zone.target})", ("plan",), zone.target)


def _live_finding(institution: str | None, domain: str, check: CheckResult, *, external: bool,
                  all_absent: bool, planned: bool, rtype: str = "") -> Finding:
    if check.status is Status.PENDING:
        # Managed: the plan saw the target right (else this merges into its finding), so the
        # servers do not serve it. External: nothing at all is unpublished, a gap is missing.
        if not planned or (external and not all_absent):
            kind = DriftClass.MISSING
        else:
            kind = DriftClass.UNPUBLISHED
    elif EXTRA_REASON.search(check.reason) or len(check.found) > max(1, len(check.expected)):
        kind = DriftClass.UNEXPECTED
    else:
        kind = DriftClass.CHANGED
    reason = f"{check.check}: {check.reason}" + (f": {check.message}" if check.message else "")
    # Sorted: servers answer a record set in any order, and a report must not flicker.
    return Finding(kind, institution, domain, check.name.rstrip("."),
                   rtype or CHECK_TYPE.get(check.check, "TXT"), check.expected,
                   tuple(sorted(check.found)), reason, ("live",))


def _refused_spf(refused: engine.RefusedSpf, by_key: dict[tuple[str, str, str], Record]
                 ) -> Finding | None:
    """A zone the plan refused for its live SPF (several values over the lookup limit, one
    that does not parse): that is drift (an unexpected value), not an error of this run. None
    when no declared record is at that name."""
    record = by_key.get((refused.zone, refused.name, "TXT"))
    if record is None:
        return None
    fqdn = f"{refused.name}.{refused.zone}" if refused.name else refused.zone
    return Finding(DriftClass.UNEXPECTED, record.institution, record.domain,
                   fqdn.rstrip("."), "TXT", tuple(str(v) for v in record.values),
                   refused.values, refused.reason, ("plan",), record.target)


def _merge(findings: list[Finding]) -> list[Finding]:
    """One finding per name: the plan's class (a live 'unexpected' wins), both reasons."""
    merged: dict[tuple[str | None, str], Finding] = {}
    for f in findings:
        key = (f.institution, f.record)
        prior = merged.get(key)
        if prior is None:
            merged[key] = f
            continue
        plan, live = (prior, f) if "plan" in prior.sources else (f, prior)
        if "plan" not in plan.sources or "live" not in live.sources:
            # Two of a kind at one name (a return path's MX and TXT): keep both.
            merged[(f.institution, f"{f.record} {f.type}")] = f
            continue
        kind = live.kind if live.kind is DriftClass.UNEXPECTED else plan.kind
        merged[key] = replace(plan, kind=kind, domain=plan.domain or live.domain,
                              reason=f"{plan.reason}; live {live.reason}",
                              found=live.found or plan.found, sources=("plan", "live"))
    return sorted(merged.values(), key=lambda f: (f.institution or "", f.domain or "", f.record,
                                                  f.type, f.kind.value))
