"""Ownership: the product changes only the record sets it expands (DESIGN §5).

What the product owns in a zone is written into the zone itself, in one TXT record set named
:data:`MARKER_NAME`. Keeping it in DNS rather than in a state file means any run, from any
checkout, knows what an earlier run wrote, so that a removed declaration removes exactly what it
had published. Its values (one per owned set, each short):

- ``owns <TYPE> <name>``: the whole (name, type) set is ours; ``owns TXT *._report._dmarc``
  covers every name under ``_report._dmarc`` (platform zones: one value, not one per customer);
- ``spf <name> <mechanism>``: the TXT set at ``<name>`` is the customer's; we own only this
  mechanism inside its one ``v=spf1`` value (``<name>`` is ``@`` at the apex).

:class:`Ownership` is an octoDNS processor: before octoDNS compares the zones, it copies every
record the product does not own from the target's zone into the desired zone, so octoDNS sees no
difference there whatever the target holds; and it merges the shared SPF sets. :mod:`.guard`
checks the resulting plan independently.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from octodns.processor.base import (  # type: ignore[import-untyped,unused-ignore]
    BaseProcessor,
    ProcessorException,
)
from octodns.record import Record as OctoRecord  # type: ignore[import-untyped,unused-ignore]

from provisioner.errors import Origin, Problem, Severity
from provisioner.octodns.convert import escape, unescape
from provisioner.octodns.spfmerge import LiveSpfError, check_lookups, is_spf, live_spf, merge

log = logging.getLogger(__name__)

MARKER_NAME = "_mailauth-owner"
MARKER_TTL = 3600

Pair = tuple[str, str]  # (relative name, type)


def _label(name: str) -> str:
    return name or "@"


def _unlabel(label: str) -> str:
    return "" if label == "@" else label


@dataclass(frozen=True, slots=True)
class Claim:
    """What the product owns in one zone, as read from or written to the marker."""

    pairs: frozenset[Pair] = frozenset()
    spf: frozenset[tuple[str, str]] = frozenset()  # (relative name, mechanism)

    def owns(self, pair: Pair) -> bool:
        """Whether the claim covers ``pair``; a ``*.suffix`` name covers every name below it."""
        if pair in self.pairs or (pair == (MARKER_NAME, "TXT") and (self.pairs or self.spf)):
            return True
        name, rtype = pair
        return any(
            n.startswith("*.") and t == rtype and name.endswith(n[1:]) for n, t in self.pairs
        )

    @property
    def spf_names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.spf)

    def spf_mechanisms(self, name: str) -> frozenset[str]:
        return frozenset(m for n, m in self.spf if n == name)

    def values(self) -> list[str]:
        """The marker's TXT values, sorted so that an unchanged claim plans no change."""
        out = [f"owns {t} {_label(n)}" for n, t in self.pairs]
        out += [f"spf {_label(n)} {m}" for n, m in self.spf]
        return sorted(out)

    @classmethod
    def parse(cls, values: Iterable[str]) -> Claim:
        """The claim from marker values; values it does not understand are skipped."""
        pairs: set[Pair] = set()
        spf: set[tuple[str, str]] = set()
        for value in values:
            parts = value.split()
            if len(parts) == 3 and parts[0] == "owns":
                pairs.add((_unlabel(parts[2]), parts[1].upper()))
            elif len(parts) == 3 and parts[0] == "spf":
                spf.add((_unlabel(parts[1]), parts[2].lower()))
        return cls(frozenset(pairs), frozenset(spf))

    def __or__(self, other: Claim) -> Claim:
        return Claim(self.pairs | other.pairs, self.spf | other.spf)


def claim_of(zone: Any) -> Claim:
    """The claim in an octoDNS zone's marker; empty when the zone has none."""
    for record in zone.records:
        if record.name == MARKER_NAME and record._type == "TXT":
            return Claim.parse(unescape(str(v)) for v in record.values)
    return Claim()


def marker_data(claim: Claim) -> dict[str, Any]:
    return {"type": "TXT", "ttl": MARKER_TTL, "values": [escape(v) for v in claim.values()]}


@dataclass
class ZoneNotes:
    """Warnings per zone, collected while planning, read by the engine afterwards."""

    by_zone: dict[str, list[Problem]] = field(default_factory=dict)

    def add(self, zone: str, code: str, message: str, origin: Origin) -> None:
        log.info("%s: %s", zone, message)  # the CLI reports it as a located warning
        self.by_zone.setdefault(zone, []).append(
            Problem(code, message, origin, severity=Severity.WARNING)
        )


class SpfRefused(ProcessorException):  # type: ignore[misc]
    """A zone whose live SPF the product cannot merge into; its plan is refused as a whole.

    ``zone`` is the zone (trailing dot), ``name`` the relative name, ``error`` what is wrong
    with the live value(s). The message is one line: zone, name, live value, error and the fix.
    """

    def __init__(self, zone: str, name: str, error: LiveSpfError) -> None:
        self.zone = zone
        self.name = name
        self.error = error
        fqdn = f"{name}.{zone}" if name else zone
        super().__init__(
            f"zone {zone}: {fqdn} TXT: {error}. Nothing in this zone is planned or changed: "
            f"{error.fix}"
        )


class Ownership(BaseProcessor):  # type: ignore[misc]
    """octoDNS processor: leave the customer's records alone, merge the shared SPF sets.

    Configure it on every zone whose source is :class:`~provisioner.octodns.source.
    ProvisionerSource`; in a plain ``octodns-sync`` config::

        processors:
          ownership: {class: provisioner.octodns.ownership.Ownership}
    """

    def __init__(self, id: str, **kwargs: Any) -> None:
        super().__init__(id, **kwargs)
        self.notes = ZoneNotes()

    def process_source_and_target_zones(
        self, desired: Any, existing: Any, target: Any, lenient: bool = False
    ) -> tuple[Any, Any]:
        wanted = claim_of(desired)
        before = claim_of(existing)
        claim = wanted | before  # a zone we never wrote has an empty claim: nothing is ours
        spf_names = wanted.spf_names | before.spf_names
        desired_by_pair = {(r.name, r._type): r for r in desired.records}
        for record in existing.records:
            pair = (record.name, record._type)
            if record._type == "TXT" and record.name in spf_names and not claim.owns(pair):
                continue  # merged below
            if not claim.owns(pair):
                desired.add_record(record.copy(zone=desired), replace=True, lenient=True)
        existing_by_pair = {(r.name, r._type): r for r in existing.records}
        for name in sorted(spf_names):
            self._merge_spf(
                desired, name, existing_by_pair.get((name, "TXT")),
                desired_by_pair.get((name, "TXT")), wanted, before,
            )
        return desired, existing

    def _merge_spf(
        self, desired: Any, name: str, live: Any, ours: Any, wanted: Claim, before: Claim
    ) -> None:
        """Set the desired TXT set at ``name``: the customer's values plus one merged SPF."""
        zone = desired.name
        live_values = [unescape(str(v)) for v in live.values] if live else []
        our_values = [unescape(str(v)) for v in ours.values] if ours else []
        our_spf = next((v for v in our_values if is_spf(v)), None)
        origin = Origin(str(ours.context)) if ours is not None and ours.context else Origin(zone)
        released = before.spf_mechanisms(name) - wanted.spf_mechanisms(name)
        try:
            spf = live_spf(live_values, our_spf)
            result = merge(spf.value, our_spf, wanted.spf_mechanisms(name), released)
            check_lookups(result, spf)
        except LiveSpfError as exc:
            # Raised, not noted: the zone's plan must not exist, so apply cannot write it.
            raise SpfRefused(desired.decoded_name, name, exc) from None
        for mech in result.undeclared:
            self.notes.add(
                zone, "ownership.spf-undeclared",
                f"{_label(name)}: live SPF mechanism {mech} is not declared in spf.include; "
                "it stays (declare it so that instructions and verification know it)",
                origin,
            )
        if spf.combined:
            listed = ", ".join(repr(v) for v in spf.values)
            self.notes.add(
                zone, "plan.spf-merged",
                f"{_label(name)}: {len(spf.values)} live SPF values ({listed}) merged into "
                f"one ({result.value!r}): more than one SPF record at a name is a permerror "
                "(RFC 7208 §4.5); every mechanism of each stays",
                origin,
            )
        for note in result.notes:
            self.notes.add(zone, "ownership.spf-note", f"{_label(name)}: {note}", origin)
        values = [v for v in live_values if v not in spf.values]
        if result.value is not None:
            values.insert(0, result.value)
        if ours is not None:
            desired.remove_record(ours)
        if not values:
            return
        # A set the customer already has keeps its TTL: only our SPF mechanisms are ours to set.
        template = live if live is not None else ours
        data = {"type": "TXT", "ttl": template.ttl, "values": [escape(v) for v in values]}
        record = OctoRecord.new(desired, name, data, source=getattr(template, "source", None),
                                lenient=True)
        record.context = getattr(ours if ours is not None else live, "context", None)
        desired.add_record(record, replace=True, lenient=True)
