"""The product's values: the platform, institutions' declarations, and the records they expand to.

All values are frozen and hold normalised data: names are lower-case A-labels without a trailing
dot unless the field says "fqdn". Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from provisioner.errors import Origin
from provisioner.keys.policy import KeyPolicy, KeySpec

PLATFORM_FILE = Origin("provisioner.yaml")


def _frozen(d: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


# --- platform -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """An octoDNS provider, by name: ``class`` plus its keyword arguments."""

    name: str
    provider_class: str
    options: Mapping[str, Any] = field(default_factory=_frozen)
    origin: Origin = PLATFORM_FILE


@dataclass(frozen=True, slots=True)
class Selector:
    """A DKIM selector in the customer's zone and the name pattern it points to in ours."""

    name: str  # e.g. stxsel1
    pattern: str  # e.g. sel1-{institution}

    def target_label(self, institution: str) -> str:
        return self.pattern.replace("{institution}", institution)


@dataclass(frozen=True, slots=True)
class DomainConnect:
    """The platform's Domain Connect template settings (provisioner.yaml ``domain_connect``)."""

    provider_id: str
    service_id: str
    provider_name: str
    service_name: str
    sync_pub_key_domain: str
    key_host: str = "_dck1"
    return_path: str = "bounce"
    logo_url: str | None = None
    public_key: str | None = None  # base64 DER of the signing key's public half

    @property
    def key_name(self) -> str:
        return f"{self.key_host}.{self.sync_pub_key_domain}"

    def key_fragments(self) -> tuple[str, ...]:
        """The public key as the spec's TXT fragments ``p=N,a=RS256,d=...``, in order."""
        if not self.public_key:
            return ()
        data, size = self.public_key, 200
        return tuple(f"p={n},a=RS256,d={data[i:i + size]}"
                     for n, i in enumerate(range(0, len(data), size), start=1))


@dataclass(frozen=True, slots=True)
class RampPolicy:
    """When ``dmarc recommend`` proposes the next rung (DESIGN §11; provisioner.yaml
    ``dmarc_reports.ramp``): each threshold blocks a recommendation on its own."""

    min_days: int = 14
    min_reporters: int = 2
    platform_aligned_percent: float = 99.5
    max_unexplained_percent: float = 0.5
    hold_days: int = 14
    window_days: int = 30


@dataclass(frozen=True, slots=True)
class DmarcReports:
    """Where the aggregate reports are stored and quarantined (``dmarc_reports``)."""

    database: str = "sqlite:///build/dmarc/reports.sqlite3"
    quarantine: str = "build/dmarc/quarantine"
    max_report_size: int = 25 * 1024 * 1024
    ramp: RampPolicy = field(default_factory=RampPolicy)


@dataclass(frozen=True, slots=True)
class Platform:
    name: str
    spf_include: str
    sending_ips: tuple[str, ...]
    dkim_zone: str
    selectors: tuple[Selector, ...]
    return_path_mx: str
    dmarc_rua: str | None
    default_target: str
    targets: Mapping[str, Target]
    platform_zones: Mapping[str, str]  # zone -> target name
    ttl: int = 3600
    origin: Origin = PLATFORM_FILE
    # DKIM public keys by selector label in the DKIM zone (e.g. "sel1-mosa" -> base64 DER;
    # "" publishes ``p=``, a key revoked by rotation, RFC 6376 §3.6.1). Filled from the key
    # state (:mod:`provisioner.keys`); empty means "no key records yet".
    dkim_public_keys: Mapping[str, str] = field(default_factory=_frozen)
    # The k= of each label's key when it is not rsa (ed25519, RFC 8463).
    dkim_key_types: Mapping[str, str] = field(default_factory=_frozen)
    keys: KeyPolicy = field(default_factory=KeyPolicy)
    domain_connect: DomainConnect | None = None
    dmarc_reports: DmarcReports = field(default_factory=DmarcReports)

    @property
    def manages_keys(self) -> bool:
        """Whether the product generates and publishes the DKIM keys: their zone is one of the
        platform zones it writes."""
        return self.dkim_zone in self.platform_zones

    def platform_zone_of(self, name: str) -> str | None:
        """The longest platform zone that holds ``name`` (or is it), if any."""
        best: str | None = None
        for zone in self.platform_zones:
            if (name == zone or name.endswith("." + zone)) and (
                best is None or len(zone) > len(best)
            ):
                best = zone
        return best


# --- declarations ---------------------------------------------------------------------------


class DnsMode(StrEnum):
    MANAGED = "managed"
    EXTERNAL = "external"


@dataclass(frozen=True, slots=True)
class SpfPolicy:
    include: tuple[str, ...] = ()
    all: str = "softfail"  # softfail | fail

    @property
    def all_term(self) -> str:
        return "-all" if self.all == "fail" else "~all"


@dataclass(frozen=True, slots=True)
class DmarcPolicy:
    policy: str = "none"
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    subdomain_policy: str | None = None
    adkim: str | None = None  # "r" | "s"
    aspf: str | None = None  # "r" | "s"
    percentage: int | None = None  # pct=: obsolete (RFC 9989), read but never published
    failure_reporting: str | None = None
    non_existent_subdomain_policy: str | None = None  # np= (RFC 9989)
    testing: bool = False  # t=y (RFC 9989)
    psd: str | None = None  # psd= (RFC 9989)
    # Failing senders the institution accepts, for the ramp (source, reason): never published.
    explained_sources: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Domain:
    name: str  # the sender domain, A-label, lower-case, no trailing dot
    zone: str  # the zone holding it (== name or a parent)
    dns: DnsMode
    target: str | None  # managed only
    ttl: int
    spf: SpfPolicy
    dkim: bool
    dmarc: DmarcPolicy
    return_path: str | None
    origin: Origin
    # Origins of the declaration's parts, for errors found after loading (e.g. "spf", "dmarc").
    origins: Mapping[str, Origin] = field(default_factory=_frozen)

    @property
    def relative_name(self) -> str:
        """The domain relative to its zone: ``""`` at the apex."""
        return relative(self.name, self.zone)

    def origin_of(self, part: str) -> Origin:
        return self.origins.get(part, self.origin)


@dataclass(frozen=True, slots=True)
class Institution:
    code: str
    name: str
    contact: str | None
    domains: tuple[Domain, ...]
    origin: Origin
    key_spec: KeySpec | None = None  # dkim_keys: overrides the platform's key policy

    @property
    def uses_dkim(self) -> bool:
        return any(d.dkim for d in self.domains)


# --- records --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class MxValue:
    preference: int
    exchange: str  # fqdn, with the trailing dot

    def __str__(self) -> str:
        return f"{self.preference} {self.exchange}"


RecordValue = str | MxValue


class Role(StrEnum):
    """Why a record exists: drives ownership and verification."""

    SPF = "spf"
    DKIM = "dkim"
    DMARC = "dmarc"
    RETURN_PATH_MX = "return_path_mx"
    RETURN_PATH_SPF = "return_path_spf"
    DKIM_KEY = "dkim_key"
    DOMAIN_CONNECT_KEY = "domain_connect_key"
    DMARC_REPORT_AUTH = "dmarc_report_auth"
    PLATFORM_SPF = "platform_spf"


@dataclass(frozen=True, slots=True)
class Record:
    """One expanded record set. ``zone`` ends with a dot; ``name`` is relative (``""`` = apex).

    ``managed`` is False for domains an institution publishes itself (``dns: external``); those
    records are never written by a target, only explained and verified.
    """

    zone: str
    name: str
    type: str
    ttl: int
    values: tuple[RecordValue, ...]
    role: Role
    origin: Origin
    institution: str | None = None  # None for platform records
    domain: str | None = None
    target: str | None = None  # target name; None when external
    managed: bool = True

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.zone}" if self.name else self.zone

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.zone, self.name, self.type)

    def to_json(self) -> dict[str, Any]:
        values: list[Any] = [
            {"preference": v.preference, "exchange": v.exchange} if isinstance(v, MxValue) else v
            for v in self.values
        ]
        return {
            "zone": self.zone,
            "name": self.name,
            "type": self.type,
            "ttl": self.ttl,
            "values": values,
        }


def relative(name: str, zone: str) -> str:
    """``name`` relative to ``zone`` (both without trailing dots); ``""`` at the apex."""
    name = name.rstrip(".")
    zone = zone.rstrip(".")
    if name == zone:
        return ""
    if not name.endswith("." + zone):
        raise ValueError(f"{name} is not inside {zone}")
    return name[: -len(zone) - 1]


def is_within(name: str, zone: str) -> bool:
    name = name.rstrip(".")
    zone = zone.rstrip(".")
    return name == zone or name.endswith("." + zone)
