"""What verification says: a status and a reason per check, per domain.

Statuses (issue 4): ``success``; ``pending`` (not visible yet: NXDOMAIN, NODATA); ``failed``
(visible and wrong); ``temporary_failure`` (timeout, SERVFAIL, REFUSED, unreachable). A check run
against several authoritative servers that disagree gets the worst of their statuses, reason
``servers-disagree``, and each server's view in ``servers``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    SUCCESS = "success"
    PENDING = "pending"
    TEMPORARY_FAILURE = "temporary_failure"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Status.SUCCESS: 0, Status.PENDING: 1, Status.TEMPORARY_FAILURE: 2, Status.FAILED: 3}

# Reasons that come straight from an answer, and the status each implies for an expected record.
ABSENT = {"NXDOMAIN", "NODATA"}


def status_of_lookup(reason: str) -> Status:
    """An expected record that is not there: pending; a server that did not say: temporary."""
    return Status.PENDING if reason in ABSENT else Status.TEMPORARY_FAILURE


def not_there(message: str, rtype: str, name: str, reason: str) -> str:
    """``message`` (the record is not there) when the servers said so (NXDOMAIN, NODATA);
    when they did not answer (a timeout, SERVFAIL, unreachable), that it is not known: a
    record nobody could read is not a missing one."""
    if reason in ABSENT:
        return message
    return f"{rtype} at {name} not known: the servers gave no answer ({reason})"


@dataclass(frozen=True, slots=True)
class ServerView:
    server: str
    status: Status
    reason: str
    found: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check of one name. ``reason`` is a stable code (``ok``, ``NXDOMAIN``, ``NODATA``,
    ``SERVFAIL``, ``timeout``, ``mismatch``, ``multiple-records``...); ``message`` explains it."""

    check: str  # spf | dkim | dmarc | mx
    name: str  # fully qualified, no trailing dot
    status: Status
    reason: str
    message: str = ""
    expected: tuple[str, ...] = ()
    found: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    servers: tuple[ServerView, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is Status.SUCCESS

    def __reduce__(self) -> tuple[type[CheckResult], tuple[Any, ...]]:
        # Reports travel back from verify's worker processes pickled; a slotted dataclass's
        # default reduction goes through copyreg and costs about twice as much.
        return (CheckResult, (self.check, self.name, self.status, self.reason, self.message,
                              self.expected, self.found, self.warnings, self.servers))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "check": self.check,
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason,
            "message": self.message,
            "expected": list(self.expected),
            "found": list(self.found),
            "warnings": list(self.warnings),
        }
        if self.servers:
            out["servers"] = [
                {"server": v.server, "status": v.status.value, "reason": v.reason,
                 "found": list(v.found)}
                for v in self.servers
            ]
        return out


def success(check: str, name: str, message: str, expected: tuple[str, ...],
            found: tuple[str, ...], warnings: tuple[str, ...] = ()) -> CheckResult:
    if found == expected:
        found = expected  # one object: a worker process's reports pickle it once
    return CheckResult(check, name, Status.SUCCESS, "ok", message, expected, found, warnings)


def merge(views: list[tuple[str, CheckResult]]) -> CheckResult:
    """One result from each server's: equal views collapse; different ones are reported."""
    first = views[0][1]
    if all((r.status, r.reason, r.found) == (first.status, first.reason, first.found)
           for _, r in views[1:]):
        return first
    worst = max((r for _, r in views), key=lambda r: r.status.rank)
    listed = "; ".join(f"{s}: {r.status.value} ({r.reason})" for s, r in views)
    return replace(
        worst,
        reason="servers-disagree",
        message=f"authoritative servers disagree: {listed}. {worst.message}",
        servers=tuple(ServerView(s, r.status, r.reason, r.found) for s, r in views),
    )


@dataclass(frozen=True, slots=True)
class DomainReport:
    institution: str | None
    domain: str
    checks: tuple[CheckResult, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def __reduce__(self) -> tuple[type[DomainReport], tuple[Any, ...]]:
        return (DomainReport, (self.institution, self.domain, self.checks))

    def to_json(self) -> dict[str, Any]:
        return {
            "institution": self.institution,
            "domain": self.domain,
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass(frozen=True, slots=True)
class Report:
    domains: tuple[DomainReport, ...]
    queries: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.domains)

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for d in self.domains:
            for c in d.checks:
                out[c.status.value] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "counts": self.counts(), "queries": self.queries,
                "seconds": round(self.seconds, 3),
                "domains": [d.to_json() for d in self.domains]}
