"""What the reports say (DESIGN §11): per institution and domain, the daily volume and
aligned-pass rate, each source classified as the platform or another sender, the failing
sources ranked by volume; and the policy ramp's next rung with its evidence.

A source is **the platform** when it sends from one of ``platform.sending_ips``, or its mail
carries a passing DKIM signature of the domain with one of the platform's selectors, or its
return path is the domain's return-path host or under the platform's own bounce domain. Any
other source is one of the customer's other senders, told apart by reverse DNS (when the
reporter or ``ingest --reverse-dns`` found one), organisation (parsedmarc's IP database) and
address. A failing source is **explained** when the receivers said why (forwarded, a mailing
list, a trusted forwarder) or the declaration's ``dmarc.explained_sources`` names it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from provisioner.model import DmarcPolicy, Domain, Institution, Platform, RampPolicy

RUNGS = ("none", "quarantine; t=y", "quarantine", "reject; t=y", "reject")
#: Override reasons (RFC 9990 §3.1.2 PolicyOverrideType) that explain a failure.
EXPLAINING = frozenset({"forwarded", "mailing_list", "trusted_forwarder"})


def rung_of(policy: str | None, testing: str | bool | None) -> str:
    """The ramp's rung of a policy: ``t=y`` matters only for quarantine and reject."""
    p = (policy or "none").lower()
    if p not in ("quarantine", "reject"):
        return "none"
    on = testing is True or str(testing or "").lower() == "y"
    return f"{p}; t=y" if on else p


def declared_rung(dmarc: DmarcPolicy) -> str:
    return rung_of(dmarc.policy, dmarc.testing)


def next_rung(rung: str) -> str | None:
    i = RUNGS.index(rung)
    return RUNGS[i + 1] if i + 1 < len(RUNGS) else None


def rung_declaration(rung: str) -> tuple[str, bool]:
    """(policy, testing) of a rung, as the declaration spells them."""
    policy, _, t = rung.partition(";")
    return policy, bool(t)


@dataclass(slots=True)
class Source:
    key: str
    kind: str  # "platform" | "other"
    name: str
    reverse_dns: str | None = None
    ips: set[str] = field(default_factory=set)
    volume: int = 0
    passed: int = 0
    explained: str | None = None

    @property
    def failed(self) -> int:
        return self.volume - self.passed

    def to_json(self, total: int) -> dict[str, Any]:
        return {"source": self.key, "kind": self.kind, "name": self.name,
                "reverse_dns": self.reverse_dns, "ips": sorted(self.ips)[:20],
                "ip_count": len(self.ips), "volume": self.volume, "passed": self.passed,
                "failed": self.failed, "share_of_volume": _pct(self.volume, total),
                "failed_share_of_volume": _pct(self.failed, total),
                "explained": self.explained}


def _pct(part: int, whole: int) -> float | None:
    return None if not whole else round(100.0 * part / whole, 3)


@dataclass(slots=True)
class DomainReport:
    institution: str
    domain: str
    managed: bool
    declared: str
    days: dict[str, list[int]] = field(default_factory=dict)  # day -> [volume, passed]
    platform_days: dict[str, list[int]] = field(default_factory=dict)  # the platform's mail
    reporters: set[str] = field(default_factory=set)
    seen: dict[str, dict[str, int]] = field(default_factory=dict)  # day -> rung -> volume
    sources: dict[str, Source] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def volume(self) -> int:
        return sum(v for v, _ in self.days.values())

    @property
    def passed(self) -> int:
        return sum(p for _, p in self.days.values())

    def platform(self) -> tuple[int, int]:
        vol = sum(s.volume for s in self.sources.values() if s.kind == "platform")
        ok = sum(s.passed for s in self.sources.values() if s.kind == "platform")
        return vol, ok

    def failing(self) -> list[Source]:
        return sorted((s for s in self.sources.values() if s.failed),
                      key=lambda s: (-s.failed, s.key))

    def to_json(self) -> dict[str, Any]:
        total = self.volume
        pvol, pok = self.platform()
        return {
            "institution": self.institution, "domain": self.domain,
            "dns": "managed" if self.managed else "external",
            "declared_rung": self.declared, "volume": total, "passed": self.passed,
            "pass_rate": _pct(self.passed, total),
            "platform": {"volume": pvol, "passed": pok, "aligned_rate": _pct(pok, pvol)},
            "reporters": sorted(self.reporters),
            "daily": [{"day": d, "volume": v, "passed": p, "pass_rate": _pct(p, v),
                       "rung_seen": _majority(self.seen.get(d, {}))}
                      for d, (v, p) in sorted(self.days.items())],
            "sources": [s.to_json(total) for s in sorted(
                self.sources.values(), key=lambda s: (-s.volume, s.key))],
            "failing_sources": [s.to_json(total) for s in self.failing()],
        }


def _majority(counts: Mapping[str, int]) -> str | None:
    return max(sorted(counts), key=lambda k: counts[k]) if counts else None


class Classifier:
    """Tells the platform's mail from the customer's other senders, for one platform."""

    def __init__(self, platform: Platform) -> None:
        self.networks = [ipaddress.ip_network(ip, strict=False) for ip in platform.sending_ips]
        self.selectors = frozenset(s.name.lower() for s in platform.selectors)
        mx = platform.return_path_mx.lower().rstrip(".")
        self.bounce_parent = mx.partition(".")[2] if mx.count(".") >= 2 else mx

    def is_platform(self, row: Mapping[str, Any], domain: Domain) -> bool:
        try:
            ip = ipaddress.ip_address(row["source_ip"])
        except ValueError:
            ip = None
        if ip is not None and any(ip in net for net in self.networks):
            return True
        for d, selector, result in row.get("dkim_auth") or ():
            if result == "pass" and selector in self.selectors and d and (
                    d == domain.name or d.endswith("." + domain.name)):
                return True
        env = row.get("envelope_from") or ""
        if domain.return_path and env == f"{domain.return_path}.{domain.name}":
            return True
        return bool(env) and (env == self.bounce_parent or env.endswith("." + self.bounce_parent))


def _explained(row: Mapping[str, Any], dmarc: DmarcPolicy) -> str | None:
    reasons = set(str(row.get("overrides") or "").split(",")) & EXPLAINING
    if reasons:
        return "the receivers: " + ", ".join(sorted(reasons))
    rdns = row.get("reverse_dns") or ""
    for source, reason in dmarc.explained_sources:
        if source.startswith("."):
            if rdns and ("." + rdns).endswith(source):
                return f"declared: {reason}"
        else:
            try:
                if ipaddress.ip_address(row["source_ip"]) in ipaddress.ip_network(source):
                    return f"declared: {reason}"
            except ValueError:
                continue
    return None


def analyse(platform: Platform, institutions: Sequence[Institution],
            rows: Iterable[Mapping[str, Any]]) -> list[DomainReport]:
    """Fold the store's rows (:meth:`Store.daily`) into one report per declared domain that
    has reports, in institution and domain order."""
    classifier = Classifier(platform)
    domains: dict[tuple[str, str], Domain] = {
        (i.code, d.name): d for i in institutions for d in i.domains}
    out: dict[tuple[str, str], DomainReport] = {}
    for row in rows:
        key = (row["institution"], row["domain"])
        dom = domains.get(key)
        if dom is None:  # a domain no longer declared: its reports are history
            continue
        rep = out.get(key)
        if rep is None:
            rep = out[key] = DomainReport(key[0], key[1], dom.dns.value == "managed",
                                          declared_rung(dom.dmarc))
        count = row["count"]
        passed = count if row["dmarc_pass"] else 0
        day = rep.days.setdefault(row["day"], [0, 0])
        day[0] += count
        day[1] += passed
        rep.reporters.add(row["reporter"])
        seen = rep.seen.setdefault(row["day"], {})
        rung = rung_of(row["policy_p"], row["policy_testing"])
        seen[rung] = seen.get(rung, 0) + count
        if classifier.is_platform(row, dom):
            skey, kind, name = "platform", "platform", platform.name
        else:
            name = row.get("reverse_dns") or row.get("source_name") or row["source_ip"]
            skey, kind = (row.get("reverse_dns") or row.get("source_name")
                          or row["source_ip"]), "other"
        if kind == "platform":
            pday = rep.platform_days.setdefault(row["day"], [0, 0])
            pday[0] += count
            pday[1] += passed
        src = rep.sources.get(skey)
        if src is None:
            src = rep.sources[skey] = Source(skey, kind, str(name), row.get("reverse_dns"))
        src.ips.add(row["source_ip"])
        src.volume += count
        src.passed += passed
        if kind == "other" and not row["dmarc_pass"] and src.explained is None:
            src.explained = _explained(row, dom.dmarc)
    return [out[k] for k in sorted(out)]


# --- the ramp -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    measured: str
    wanted: str

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "measured": self.measured,
                "wanted": self.wanted}


@dataclass(frozen=True, slots=True)
class Recommendation:
    institution: str
    domain: str
    managed: bool
    current: str
    next: str | None
    checks: tuple[Check, ...]
    since: str | None  # the first day receivers saw the current rung, in this run

    @property
    def recommended(self) -> bool:
        return self.next is not None and all(c.ok for c in self.checks)

    @property
    def blocking(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_json(self) -> dict[str, Any]:
        return {"institution": self.institution, "domain": self.domain,
                "dns": "managed" if self.managed else "external", "current": self.current,
                "next": self.next, "recommended": self.recommended,
                "current_rung_seen_since": self.since,
                "checks": [c.to_json() for c in self.checks]}


def held_since(rep: DomainReport) -> str | None:
    """The first day of the latest unbroken run of report days whose receivers saw the
    declared rung (by volume), or None when the latest day shows another."""
    since = None
    for day in sorted(rep.seen, reverse=True):
        if _majority(rep.seen[day]) != rep.declared:
            break
        since = day
    return since


def recommend(rep: DomainReport, ramp: RampPolicy, today: date) -> Recommendation:
    current = rep.declared
    nxt = next_rung(current)
    since = held_since(rep)
    checks: list[Check] = []
    if since is None:
        last = max(rep.seen) if rep.seen else None
        seen = _majority(rep.seen[last]) if last else None
        checks.append(Check("current rung seen", False,
                            f"receivers last saw {seen!r} ({last})" if last else "no report",
                            f"reports at {current!r}"))
        return Recommendation(rep.institution, rep.domain, rep.managed, current, nxt,
                              tuple(checks), None)
    # The evidence: the days at the current rung.
    days = {d: vp for d, vp in rep.days.items() if d >= since}
    volume = sum(v for v, _ in days.values())
    held = (today - date.fromisoformat(since)).days
    checks.append(Check("days of reports", len(days) >= ramp.min_days,
                        f"{len(days)} day(s) since {since}", f"at least {ramp.min_days}"))
    checks.append(Check("reporters", len(rep.reporters) >= ramp.min_reporters,
                        f"{len(rep.reporters)} ({', '.join(sorted(rep.reporters)[:5])})",
                        f"at least {ramp.min_reporters}"))
    pvol, pok = rep.platform()
    rate = 100.0 * pok / pvol if pvol else 0.0
    checks.append(Check("platform aligned", pvol > 0 and rate >= ramp.platform_aligned_percent,
                        f"{rate:.2f} % of {pvol} message(s)" if pvol else "no platform mail",
                        f"at least {ramp.platform_aligned_percent} %"))
    worst = next((s for s in rep.failing() if s.kind == "other" and not s.explained), None)
    share = 100.0 * worst.failed / volume if worst and volume else 0.0
    checks.append(Check(
        "unexplained failing sources", share <= ramp.max_unexplained_percent,
        f"{worst.name}: {worst.failed} failing, {share:.2f} % of the volume" if worst
        else "none", f"none over {ramp.max_unexplained_percent} %"))
    checks.append(Check("rung held", held >= ramp.hold_days,
                        f"{current!r} since {since} ({held} day(s))",
                        f"at least {ramp.hold_days} day(s)"))
    if nxt is None:
        checks.append(Check("next rung", False, "reject is the last rung", "a rung above"))
    return Recommendation(rep.institution, rep.domain, rep.managed, current, nxt,
                          tuple(checks), since)


def window(ramp: RampPolicy, today: date, days: int | None = None) -> tuple[str, str]:
    span = days if days is not None else ramp.window_days
    return (today - timedelta(days=span - 1)).isoformat(), today.isoformat()
