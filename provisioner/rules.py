"""Rules across declarations and across expanded records (pure).

The schema checks each file's structure and :mod:`provisioner.config` each file's meaning; these
rules need the whole set: a domain claimed by two institutions, a domain inside the platform's
own zones, a zone written through two targets, two declarations expanding to the same record.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from provisioner.errors import Origin, Problem
from provisioner.model import Institution, Platform, Record

MAX_TXT_VALUE = 4096  # a TXT RRset value this long no longer fits a UDP answer sensibly


def check_institutions(platform: Platform, institutions: Sequence[Institution]) -> list[Problem]:
    problems: list[Problem] = []
    claimants: dict[str, list[tuple[str, Origin]]] = defaultdict(list)
    zone_targets: dict[str, tuple[str | None, str]] = {}
    for inst in institutions:
        for dom in inst.domains:
            claimants[dom.name].append((inst.code, dom.origin))
            zone = platform.platform_zone_of(dom.name)
            if zone is not None:
                problems.append(
                    Problem(
                        "domain.platform-zone",
                        f"domain {dom.name} lies inside the platform zone {zone}",
                        dom.origin,
                        "declare the institution's own domain, not one of the platform's",
                    )
                )
            if dom.target is not None:
                seen = zone_targets.get(dom.zone)
                if seen is not None and seen[0] != dom.target:
                    problems.append(
                        Problem(
                            "zone.target-conflict",
                            f"zone {dom.zone} is written through target {dom.target} here and "
                            f"{seen[0]} by institution {seen[1]}",
                            dom.origin_of("target"),
                            "one zone lives at one DNS host: use the same target",
                        )
                    )
                else:
                    zone_targets[dom.zone] = (dom.target, inst.code)
    for name, owners in claimants.items():
        if len({code for code, _ in owners}) < 2:
            continue
        for code, origin in owners:
            others = ", ".join(f"{c} ({o})" for c, o in owners if (c, o) != (code, origin))
            problems.append(
                Problem(
                    "domain.claimed-twice",
                    f"domain {name} is also declared by {others}",
                    origin,
                    "a sender domain belongs to one institution: remove it from one file",
                )
            )
    return problems


def check_records(records: Iterable[Record], *,
                  skip_domains: frozenset[str] | set[str] = frozenset()) -> list[Problem]:
    """Two declarations expanding to one (zone, name, type), a CNAME beside other data (RFC 1034
    §3.6.2), and TXT values no DNS host would take. A conflict between records of a domain in
    ``skip_domains`` (claimed twice, already reported once per file) is not repeated."""
    problems: list[Problem] = []
    by_key: dict[tuple[str, str, str], Record] = {}
    types_at: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for rec in records:
        key = (rec.zone, rec.name, rec.type)
        first = by_key.get(key)
        if first is not None:
            if rec.domain in skip_domains and first.domain == rec.domain:
                continue
            problems.append(
                Problem(
                    "record.conflict",
                    f"{rec.fqdn} {rec.type} is also produced by "
                    f"{first.institution or 'the platform'} ({first.origin})",
                    rec.origin,
                    "two declarations cannot own the same record: change the domain or return_path",
                )
            )
            continue
        by_key[key] = rec
        types_at[(rec.zone, rec.name)].append(rec)
        for value in rec.values:
            if isinstance(value, str) and rec.type == "TXT":
                if '"' in value or not value.isprintable():
                    problems.append(
                        Problem(
                            "record.txt-value",
                            f"{rec.fqdn} TXT holds a quote or a control character",
                            rec.origin,
                            "remove quotes: values are written without them",
                        )
                    )
                elif len(value) > MAX_TXT_VALUE:
                    problems.append(
                        Problem(
                            "record.txt-too-long",
                            f"{rec.fqdn} TXT is {len(value)} characters",
                            rec.origin,
                            "shorten it",
                        )
                    )
    for recs in types_at.values():
        cname = [r for r in recs if r.type == "CNAME"]
        if cname and len(recs) > 1:
            other = next(r for r in recs if r.type != "CNAME")
            problems.append(
                Problem(
                    "record.cname-conflict",
                    f"{cname[0].fqdn} would hold a CNAME beside a {other.type} record "
                    f"(from {other.institution or 'the platform'})",
                    cname[0].origin,
                    "a CNAME must stand alone (RFC 1034 §3.6.2): change the return_path or domain",
                )
            )
    return problems
