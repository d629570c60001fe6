"""An octoDNS source yielding the product's expanded records, zone by zone.

Two ways in:

- the engine (``provisioner plan``/``apply``) builds it from records it already expanded;
- a plain ``octodns-sync`` config names it by class with ``config: ./provisioner.yaml``, and it
  loads the project itself (see ``docs/octodns-sync.example.yaml``).

Only managed records are yielded (``dns: external`` domains are the institution's to publish),
plus, per zone, the ownership marker listing what the product owns there (:mod:`.ownership`).
``list_zones()`` makes a ``'*'`` dynamic zone config pick up every institution zone, so a new
file in ``zones/`` needs no octoDNS config change.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from octodns.record import Record as OctoRecord  # type: ignore[import-untyped,unused-ignore]
from octodns.source.base import BaseSource  # type: ignore[import-untyped,unused-ignore]

from provisioner.errors import InvalidInput
from provisioner.model import Platform, Record, Role
from provisioner.octodns.convert import record_data
from provisioner.octodns.ownership import MARKER_NAME, Claim, marker_data

SUPPORTED_TYPES = frozenset({"TXT", "CNAME", "MX"})

# Platform-zone records, one per institution: claimed by pattern, so the marker stays one short
# value however many institutions there are, and a removed institution's records still match.
PATTERNS: dict[Role, tuple[str, str]] = {
    Role.DMARC_REPORT_AUTH: ("*._report._dmarc", "TXT"),
    Role.DKIM_KEY: ("*._domainkey", "TXT"),
}


def claim_for(records: Iterable[Record], platform: Platform) -> Claim:
    """What the product owns in one zone, given that zone's managed records.

    The SPF record at a sender domain shares its TXT set with the customer, so there the product
    owns only the platform's include (the declared includes are the customer's other senders).
    """
    pairs: set[tuple[str, str]] = set()
    spf: set[tuple[str, str]] = set()
    for record in records:
        if record.role is Role.SPF and record.type == "TXT":
            spf.add((record.name, f"include:{platform.spf_include}".lower()))
        elif record.role in PATTERNS:
            pairs.add(PATTERNS[record.role])
        else:
            pairs.add((record.name, record.type))
    return Claim(frozenset(pairs), frozenset(spf))


class ProvisionerSource(BaseSource):  # type: ignore[misc]
    """octoDNS source for the expanded records.

    ``config``: path of provisioner.yaml (relative to the working directory), used when no
    ``records`` are given. ``records``/``platform``: already expanded records (the engine).
    """

    SUPPORTS_GEO = False
    SUPPORTS_DYNAMIC = False
    SUPPORTS = SUPPORTED_TYPES

    def __init__(
        self,
        id: str,
        config: str | None = None,
        records: Sequence[Record] | None = None,
        platform: Platform | None = None,
    ) -> None:
        self.log = logging.getLogger(f"{__name__}[{id}]")
        super().__init__(id)
        if records is None or platform is None:
            records, platform = _load(Path(config or "provisioner.yaml"))
        self.platform = platform
        by_zone: dict[str, list[Record]] = defaultdict(list)
        for record in records:
            if record.managed:
                by_zone[record.zone].append(record)
        self._by_zone = dict(by_zone)

    def list_zones(self) -> list[str]:
        """Every zone holding a managed record, with trailing dots, sorted."""
        return sorted(self._by_zone)

    def records_of(self, zone_name: str) -> tuple[Record, ...]:
        return tuple(self._by_zone.get(zone_name, ()))

    def populate(self, zone: Any, target: bool = False, lenient: bool = False) -> bool:
        """Add the zone's records and its marker; octoDNS validates each against its origin."""
        records = self._by_zone.get(zone.name, [])
        for record in records:
            new = OctoRecord.new(zone, record.name, record_data(record), source=self,
                                 lenient=lenient)
            zone.add_record(new, lenient=lenient)
        if records:
            marker = OctoRecord.new(zone, MARKER_NAME, marker_data(claim_for(records,
                                    self.platform)), source=self, lenient=lenient)
            zone.add_record(marker, lenient=lenient)
        self.log.debug("populate: %s, %d records", zone.name, len(records))
        return bool(records)


def _load(config: Path) -> tuple[Sequence[Record], Platform]:
    """The project's records and platform, for the octodns-sync path; errors are located."""
    from provisioner.config import load_project  # the core loads lazily: engine passes records

    project = load_project(config)
    if not project.ok:
        raise InvalidInput(p for p in project.problems if p.is_error)
    return project.records(), project.platform
