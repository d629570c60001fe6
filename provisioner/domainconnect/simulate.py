"""The apply simulated on the institution's current zone before anyone clicks.

domainconnectzone (the reference implementation DNS hosts use) applies the template to the
records the zone holds now at the names the template touches; the product then judges the
result with its own advice (every step must come out "already right"), its SPF evaluator
(lookups on live DNS) and the DMARC rule (never weaker than today). A group whose result is
not right is left out of the link, and the administrator gets the manual steps for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provisioner.external.live import LiveName, LiveZone


@dataclass(frozen=True)
class Simulation:
    groups: tuple[str, ...]  # the groups that apply cleanly
    left_out: Mapping[str, str] = field(default_factory=dict)  # group -> why
    final: tuple[dict[str, Any], ...] = ()
    error: str | None = None


def zone_records(live: LiveZone) -> list[dict[str, Any]]:
    """The live sets in domainconnectzone's record form (names relative to the zone)."""
    out: list[dict[str, Any]] = []
    for name, here in live.names.items():
        rel = name[: -len(live.zone)].rstrip(".") or "@"
        for value in here.txt:
            out.append({"type": "TXT", "name": rel, "data": value, "ttl": 3600})
        if here.cname:
            out.append({"type": "CNAME", "name": rel, "data": here.cname, "ttl": 3600})
        for pref, exchange in here.mx:
            out.append({"type": "MX", "name": rel, "data": exchange, "ttl": 3600,
                        "priority": pref})
    return out


def live_after(live: LiveZone, final: Sequence[dict[str, Any]]) -> LiveZone:
    """``live`` as it would be after the apply: the names we read, from ``final``."""
    names: dict[str, LiveName] = {}
    for name in live.names:
        rel = name[: -len(live.zone)].rstrip(".") or "@"
        mine = [r for r in final if str(r.get("name", "")).lower() in (rel, rel.rstrip("."))]
        cname = next((str(r["data"]) for r in mine if r["type"] == "CNAME"), None)
        names[name] = LiveName(
            name, txt=tuple(str(r["data"]) for r in mine if r["type"] == "TXT"),
            cname=cname.lower().rstrip(".") + "." if cname else None,
            mx=tuple(sorted((int(r.get("priority", 0)), str(r["data"]).lower().rstrip(".") + ".")
                            for r in mine if r["type"] == "MX")))
    return LiveZone(live.zone, live.servers, live.ns, names)


def apply(template: dict[str, Any], live: LiveZone, domain: str, host: str,
          params: Mapping[str, str], groups: Sequence[str]
          ) -> tuple[list[dict[str, Any]], str | None]:
    """domainconnectzone's result of applying ``groups``: (final records, error)."""
    try:
        from domainconnectzone.DomainConnectImpl import DomainConnect
    except ImportError:
        return [], "domainconnectzone is not installed"
    try:
        _, _, final = DomainConnect(template=template).apply_template(
            zone_records(live), domain.rstrip("."), host, dict(params),
            group_ids=list(groups), ignore_signature=True)
    except Exception as exc:  # the library's own exceptions, and a bad template: a finding
        return [], f"{type(exc).__name__}: {exc}"
    return list(final), None
