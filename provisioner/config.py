"""Loading a project: ``provisioner.yaml`` and ``zones/*.yaml`` in, checked values out.

This is the file-reading adapter around the pure core. It collects every problem of every file
(schema, then per-file meaning, then rules across files and records) instead of stopping at the
first, so one run tells a user all that is wrong.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from provisioner import rules, schema
from provisioner.errors import InvalidInput, Origin, Problem, Severity
from provisioner.expand import expand
from provisioner.keys.policy import KeyPolicy, KeySpec, StoreConfig, parse_duration
from provisioner.model import (
    DmarcPolicy,
    DmarcReports,
    DnsMode,
    Domain,
    DomainConnect,
    Institution,
    Platform,
    RampPolicy,
    Record,
    Selector,
    SpfPolicy,
    Target,
    is_within,
)
from provisioner.names import NameError_, normalize
from provisioner.octodns.targets import ALLOW_ENV, allowed_class, missing_class
from provisioner.yamlload import Document, PathKey, load

ZONES_DIR = "zones"
MAX_SPF_LOOKUPS = 10  # RFC 7208 §4.6.4


@dataclass(frozen=True)
class Project:
    """A loaded repository. ``ok`` is False when any problem is an error."""

    config_path: Path
    root: Path
    zones_dir: Path
    platform: Platform
    institutions: tuple[Institution, ...]
    problems: tuple[Problem, ...]
    _records: tuple[Record, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return not any(p.is_error for p in self.problems)

    @cached_property
    def _expanded(self) -> tuple[Record, ...]:
        if self._records is not None:
            return self._records
        return expand(self.platform, self.institutions)

    def records(self) -> tuple[Record, ...]:
        """The full expansion, sorted by zone, name and type."""
        return self._expanded

    def only(self, code: str) -> Project | None:
        """The project narrowed to one institution (its records and its platform records)."""
        chosen = tuple(i for i in self.institutions if i.code == code)
        if not chosen:
            return None
        return replace(self, institutions=chosen, _records=None)

    def institution(self, code: str) -> Institution | None:
        return next((i for i in self.institutions if i.code == code), None)


def display_path(path: Path, root: Path) -> str:
    """The path as the user wrote it relative to the project, for error messages. The file
    itself is not resolved: a link is named as the link, never as what it points to."""
    try:
        return str((path.absolute().parent.resolve() / path.name).relative_to(root.resolve()))
    except (ValueError, OSError, RuntimeError):
        return str(path)


def load_project(config_path: Path, files: Sequence[Path] | None = None,
                 only: Sequence[Path] | None = None) -> Project:
    """Load the platform and every declaration in ``zones/``.

    With ``files``, problems are reported only for those files (and the platform file, which
    every declaration depends on); files outside ``zones/`` are loaded too. Rules across files
    (a domain claimed twice) always see every declaration, so checking one file cannot miss a
    conflict with another.

    With ``only``, just those declarations of ``zones/`` are loaded (``plan --changed-since``:
    the rules across files are the validate job's, which reads them all in the same pipeline).
    """
    root = config_path.parent
    zones_dir = root / ZONES_DIR
    problems: list[Problem] = []
    platform = _load_platform(config_path, root, problems)
    if only is not None:
        here = zones_dir.resolve()
        # zones/X.yaml as the glob would name it (relative when the config path is)
        paths = sorted((zones_dir / p.name for p in only
                        if p.suffix == ".yaml" and p.resolve().parent == here
                        and (zones_dir / p.name).is_file()), key=lambda p: p.name)
    else:
        paths = sorted(zones_dir.glob("*.yaml"), key=lambda p: p.name) \
            if zones_dir.is_dir() else []
    shown_as = {p: f"{ZONES_DIR}/{p.name}" for p in paths}
    if files:
        known = {p.resolve() for p in paths} | {config_path.resolve()}
        paths.extend(f for f in files if f.resolve() not in known)
    if zones_dir.is_dir():
        # A declaration saved as .yml (or .YAML) would otherwise provision nothing, silently.
        for stray in sorted(zones_dir.iterdir(), key=lambda p: p.name):
            if stray.suffix.lower() in (".yml", ".yaml") and stray.suffix != ".yaml":
                problems.append(Problem(
                    "project.not-yaml-suffix",
                    f"{stray.name} is not read: declarations end in .yaml",
                    Origin(f"{ZONES_DIR}/{stray.name}"),
                    f"git mv {ZONES_DIR}/{stray.name} {ZONES_DIR}/{stray.stem}.yaml"))
    else:
        problems.append(
            Problem(
                "project.no-zones",
                f"no {ZONES_DIR}/ directory beside {config_path.name}",
                Origin(display_path(config_path, root)),
                f"create {ZONES_DIR}/ with one <code>.yaml per institution",
                Severity.WARNING,
            )
        )
    institutions: list[Institution] = []
    for path in paths:
        file = shown_as.get(path) or display_path(path, root)
        # Files of zones/ must be regular files of the repository (a merge request may add a
        # link to /etc/shadow or a FIFO); files named on the command line are the user's.
        inst = _load_institution(path, file, platform, problems,
                                 root if path in shown_as else None)
        if inst is not None:
            institutions.append(inst)
    problems.extend(rules.check_institutions(platform, institutions))
    records = expand(platform, institutions)
    # A domain claimed by two files is one error in each (domain.claimed-twice); the records
    # it expands to would repeat that error in the second file for every record.
    claimed: dict[str, int] = {}
    for inst in institutions:
        for dom in inst.domains:
            claimed[dom.name] = claimed.get(dom.name, 0) + 1
    problems.extend(rules.check_records(
        records, skip_domains={name for name, n in claimed.items() if n > 1}))
    if files:
        shown = {display_path(f, root) for f in files} | {display_path(config_path, root)}
        problems = [p for p in problems if p.origin.file in shown]
    return Project(
        config_path, root, zones_dir, platform, tuple(institutions), tuple(problems), records
    )


# --- platform --------------------------------------------------------------------------------


def _domain_connect(data: Mapping[str, Any], name: str, zones: Mapping[str, str],
                    doc: Document, problems: list[Problem]) -> DomainConnect | None:
    """``domain_connect`` (schema-valid) as settings; its key domain must be ours to publish."""
    dc = data.get("domain_connect")
    if not isinstance(dc, Mapping):
        return None
    key_domain = str(dc["sync_pub_key_domain"]).lower().rstrip(".")
    if not any(key_domain == z or key_domain.endswith("." + z) for z in zones):
        problems.append(Problem(
            "domain-connect.key-domain",
            f"sync_pub_key_domain {key_domain} is in no platform zone: the product could not "
            "publish the signing key there", doc.where(("domain_connect", "sync_pub_key_domain")),
            "use a platform zone (or a name within one), e.g. one of: " + ", ".join(zones)))
    return DomainConnect(
        provider_id=str(dc["provider_id"]).lower(), service_id=str(dc["service_id"]),
        provider_name=str(dc.get("provider_name") or name),
        service_name=str(dc.get("service_name") or "E-mail sending"),
        sync_pub_key_domain=key_domain, key_host=str(dc.get("key_host", "_dck1")),
        return_path=str(dc.get("return_path", "bounce")), logo_url=dc.get("logo_url"),
        public_key=dc.get("public_key"))


def _empty_platform(origin: Origin) -> Platform:
    return Platform(
        name="",
        spf_include="",
        sending_ips=(),
        dkim_zone="",
        selectors=(),
        return_path_mx="",
        dmarc_rua=None,
        default_target="",
        targets=MappingProxyType({}),
        platform_zones=MappingProxyType({}),
        origin=origin,
    )


def _load_platform(path: Path, root: Path, problems: list[Problem]) -> Platform:
    file = display_path(path, root)
    if not path.exists():
        problems.append(
            Problem(
                "config.missing",
                f"{path} does not exist",
                Origin(file),
                "run from the repository root or pass --config FILE",
            )
        )
        return _empty_platform(Origin(file))
    try:
        doc = load(path, file)
    except InvalidInput as exc:
        problems.extend(exc.problems)
        return _empty_platform(Origin(file))
    found = schema.check("platform", doc)
    if found:
        problems.extend(found)
        return _empty_platform(doc.where(()))
    return _build_platform(doc, problems, root)


def _name(
    doc: Document, path: PathKey, problems: list[Problem], code: str, *, underscore: bool = False
) -> str:
    value = str(_get(doc.data, path))
    try:
        return normalize(value, allow_underscore=underscore)
    except NameError_ as exc:
        problems.append(
            Problem(
                code, f"{value!r}: {exc}", doc.where(path), "write a host name such as example.com"
            )
        )
        return value.lower().rstrip(".")


def _get(data: Any, path: PathKey) -> Any:
    for part in path:
        data = data[part]
    return data


def _build_platform(doc: Document, problems: list[Problem], root: Path) -> Platform:
    data = doc.data
    p = data["platform"]
    origin = doc.where(())
    spf_include = _name(
        doc, ("platform", "spf_include"), problems, "platform.name", underscore=True
    )
    dkim_zone = _name(doc, ("platform", "dkim", "zone"), problems, "platform.name")
    mx = _name(doc, ("platform", "return_path_mx"), problems, "platform.name")
    ips: list[str] = []
    for i, ip in enumerate(p["sending_ips"]):
        try:
            ips.append(
                str(ipaddress.ip_network(str(ip), strict=True))
                .removesuffix("/32")
                .removesuffix("/128")
            )
        except ValueError:
            problems.append(
                Problem(
                    "platform.sending-ip",
                    f"{ip!r} is not an IP address or network",
                    doc.where(("platform", "sending_ips", i)),
                    "write an IPv4 or IPv6 address such as 192.0.2.10",
                )
            )
    selectors = tuple(Selector(k, v) for k, v in p["dkim"]["selectors"].items())
    targets = {
        name: Target(
            name,
            cfg["class"],
            MappingProxyType({k: v for k, v in cfg.items() if k != "class"}),
            doc.where(("targets", name)),
        )
        for name, cfg in data["targets"].items()
    }
    for name, target in targets.items():
        if not allowed_class(target.provider_class):
            problems.append(Problem(
                "target.class-refused",
                f"target {name}: {target.provider_class!r} is not an octoDNS provider "
                "package's class: provisioner.yaml names providers, never code",
                doc.where(("targets", name, "class")),
                f"use octodns.* or octodns_<provider>.*; allow another package with the "
                f"protected CI/CD variable {ALLOW_ENV}"))
        elif (why := missing_class(target.provider_class, root)) is not None:
            problems.append(Problem(
                "target.class-unknown", f"target {name}: cannot load {target.provider_class}: "
                f"{why}", doc.where(("targets", name, "class")),
                "name an installed octoDNS provider class, e.g. "
                "octodns_route53.Route53Provider"))
        reader = target.options.get("read_only")
        if isinstance(reader, Mapping) and isinstance(reader.get("class"), str) \
                and not allowed_class(reader["class"]):
            problems.append(Problem(
                "target.class-refused",
                f"target {name}: read_only.class {reader['class']!r} is not an octoDNS "
                "package's class: provisioner.yaml names sources, never code",
                doc.where(("targets", name, "read_only", "class")),
                f"use octodns_bind.AxfrSource; allow another with {ALLOW_ENV}"))
        elif isinstance(reader, Mapping) and isinstance(reader.get("class"), str) \
                and (why := missing_class(reader["class"], root)) is not None:
            problems.append(Problem(
                "target.class-unknown", f"target {name}: cannot load read_only.class "
                f"{reader['class']}: {why}", doc.where(("targets", name, "read_only", "class")),
                "name an installed octoDNS source, e.g. octodns_bind.AxfrSource"))
    default_target = data.get("default_target", schema.default("platform", "default_target"))
    if default_target not in targets:
        problems.append(
            Problem(
                "target.unknown",
                f"default_target {default_target!r} is not a target",
                doc.where(("default_target",)),
                f"use one of: {', '.join(sorted(targets))}",
            )
        )
    zones: dict[str, str] = {}
    for zone, cfg in (data.get("platform_zones") or {}).items():
        zname = zone
        try:
            zname = normalize(zone)
        except NameError_ as exc:
            problems.append(
                Problem(
                    "platform.name", f"{zone!r}: {exc}", doc.where_key(("platform_zones", zone))
                )
            )
        if cfg["target"] not in targets:
            problems.append(
                Problem(
                    "target.unknown",
                    f"platform zone {zone} names target {cfg['target']!r}, which is not in targets",
                    doc.where(("platform_zones", zone, "target")),
                    f"use one of: {', '.join(sorted(targets))}",
                )
            )
        zones[zname] = cfg["target"]
    rua = p.get("dmarc_rua")
    keys = _key_policy(doc, p["dkim"].get("keys") or {}, problems, root)
    ttl = int(p.get("ttl", schema.default("platform", "platform", "ttl")))
    gate = keys.gate(ttl)
    if keys.propagation_gate is not None and gate.total_seconds() < ttl:
        problems.append(Problem(
            "keys.gate-below-ttl",
            f"propagation_gate {p['dkim']['keys']['propagation_gate']} is shorter than the key "
            f"records' TTL ({ttl} s): resolvers may still hold the old key when signing moves",
            doc.where(("platform", "dkim", "keys", "propagation_gate")),
            "use at least the TTL (a short gate is for tests)", Severity.WARNING))
    if keys.spec.algorithm == "ed25519":
        problems.append(_ed25519_warning(doc.where(("platform", "dkim", "keys", "algorithm"))))
    if dkim_zone not in zones:
        problems.append(Problem(
            "keys.unmanaged",
            f"the DKIM zone {dkim_zone} is not in platform_zones: no keys are generated and no "
            "key record is published; the selectors' CNAMEs point at keys published elsewhere",
            doc.where(("platform", "dkim", "zone")),
            f"add '{dkim_zone}: {{target: {default_target}}}' to platform_zones to have the "
            "product own the keys", Severity.WARNING))
    return Platform(
        name=p["name"],
        spf_include=spf_include,
        sending_ips=tuple(ips),
        dkim_zone=dkim_zone,
        selectors=selectors,
        return_path_mx=mx,
        dmarc_rua=rua.lower() if rua else None,
        default_target=default_target,
        targets=MappingProxyType(targets),
        platform_zones=MappingProxyType(zones),
        ttl=ttl,
        origin=origin,
        domain_connect=_domain_connect(data, p["name"], zones, doc, problems),
        keys=keys,
        dmarc_reports=_dmarc_reports(data.get("dmarc_reports") or {}, doc, problems),
    )


_REPORTS_DEFAULT = DmarcReports()


def _dmarc_reports(spec: Mapping[str, Any], doc: Document,
                   problems: list[Problem]) -> DmarcReports:
    database = str(spec.get("database", _REPORTS_DEFAULT.database))
    if database.startswith("postgresql://") and "password" in database.partition("?")[2]:
        problems.append(Problem(
            "dmarc.database-password", "dmarc_reports.database holds a password",
            doc.where(("dmarc_reports", "database")),
            "remove it: libpq reads PGPASSWORD or ~/.pgpass (a CI/CD variable)"))
    ramp = spec.get("ramp") or {}
    return DmarcReports(
        database=database,
        quarantine=str(spec.get("quarantine", _REPORTS_DEFAULT.quarantine)),
        max_report_size=int(spec.get("max_report_size", _REPORTS_DEFAULT.max_report_size)),
        ramp=RampPolicy(**{k: ramp[k] for k in RampPolicy.__dataclass_fields__ if k in ramp}),
    )


def _ed25519_warning(origin: Origin) -> Problem:
    return Problem(
        "keys.ed25519-only",
        "ed25519 keys alone: receivers without RFC 8463 support (several large mailbox "
        "providers) cannot verify the signature, so DMARC then rests on SPF alone",
        origin, "keep rsa unless the mail platform also signs with an RSA key",
        Severity.WARNING)


def _key_policy(doc: Document, spec: dict[str, Any], problems: list[Problem],
                root: Path) -> KeyPolicy:
    """``platform.dkim.keys`` (schema-valid) as a :class:`KeyPolicy`."""
    base: PathKey = ("platform", "dkim", "keys")
    d = schema.default

    def duration(name: str) -> Any:
        text = spec.get(name, d("platform", "platform", "dkim", "keys", name))
        return None if text is None else parse_duration(str(text))

    algorithm = spec.get("algorithm", "rsa")
    store = spec.get("store") or {"type": "local"}
    directory = store.get("directory")
    if directory is not None:
        where = Path(directory).expanduser()
        if not where.is_absolute():
            where = root / where
        directory = str(where)
        if _inside_repository(where, root):
            problems.append(Problem(
                "keys.store-in-repository",
                f"the key store {directory} is inside the repository: private keys would be "
                "one 'git add' from being published",
                doc.where((*base, "store", "directory")),
                "use a directory outside the checkout, or leave it out for the default"))
    return KeyPolicy(
        spec=KeySpec.of(algorithm, spec.get("bits")),
        rotation_interval=duration("rotation_interval"),
        propagation_gate=duration("propagation_gate"),
        grace=duration("grace"),
        retention=duration("retention"),
        store=StoreConfig(
            kind=store["type"], directory=directory,
            prefix=store.get("prefix", "mailauth-provisioner/"),
            region=store.get("region"), kms_key_id=store.get("kms_key_id")),
    )


def _inside_repository(path: Path, root: Path) -> bool:
    """Whether ``path`` lies in the git work tree holding ``root`` (or ``root`` itself)."""
    top = root.resolve()
    for parent in (top, *top.parents):
        if (parent / ".git").exists():
            top = parent
            break
    try:
        path.resolve().relative_to(top)
    except ValueError:
        return False
    return True


# --- institutions ----------------------------------------------------------------------------


def _load_institution(
    path: Path, file: str, platform: Platform, problems: list[Problem],
    root: Path | None = None,
) -> Institution | None:
    try:
        doc = load(path, file, root)
    except InvalidInput as exc:
        problems.extend(exc.problems)
        return None
    found = schema.check("institution", doc)
    if found:
        problems.extend(found)
        return None
    return build_institution(
        doc, path.stem if path.suffix == ".yaml" else path.name, platform, problems
    )


def build_institution(
    doc: Document, stem: str, platform: Platform, problems: list[Problem]
) -> Institution:
    """An :class:`Institution` from a schema-valid document, with its per-file problems."""
    data = doc.data
    code = data["institution"]
    if code != stem:
        problems.append(
            Problem(
                "institution.file-name",
                f"institution code {code!r} differs from the file name {stem!r}",
                doc.where(("institution",)),
                f"rename the file to zones/{code}.yaml or the code to {stem!r}",
            )
        )
    domains: list[Domain] = []
    seen: dict[str, Origin] = {}
    for key, spec in data["domains"].items():
        key_origin = doc.where_key(("domains", key))
        try:
            name = normalize(key)
        except NameError_ as exc:
            problems.append(
                Problem(
                    "domain.invalid",
                    f"domain {key!r}: {exc}",
                    key_origin,
                    "write the sender domain, such as mosamuseum.com",
                )
            )
            continue
        if name in seen:
            problems.append(
                Problem(
                    "domain.duplicate",
                    f"domain {name} is declared twice (first at line {seen[name].line})",
                    key_origin,
                    "keep one",
                )
            )
            continue
        seen[name] = key_origin
        domains.append(_build_domain(doc, key, name, spec or {}, platform, problems))
    override = data.get("dkim_keys")
    key_spec = None
    if override:
        key_spec = KeySpec.of(override.get("algorithm", platform.keys.spec.algorithm),
                              override.get("bits", platform.keys.spec.bits
                                           if platform.keys.spec.algorithm == "rsa" else None))
        if key_spec.algorithm == "ed25519" and platform.keys.spec.algorithm != "ed25519":
            problems.append(_ed25519_warning(doc.where(("dkim_keys", "algorithm"))))
    return Institution(code, data["name"], data.get("contact"), tuple(domains), doc.where(()),
                       key_spec)


def _build_domain(
    doc: Document,
    key: str,
    name: str,
    spec: dict[str, Any],
    platform: Platform,
    problems: list[Problem],
) -> Domain:
    base: PathKey = ("domains", key)
    origin = doc.where_key(base)
    d = schema.default
    mode = DnsMode(spec.get("dns", d("institution", "domains", "x", "dns")))
    zone = name
    if "zone" in spec:
        zone = _name(doc, (*base, "zone"), problems, "domain.zone")
        if not is_within(name, zone):
            problems.append(
                Problem(
                    "domain.zone",
                    f"domain {name} is not inside zone {zone}",
                    doc.where((*base, "zone")),
                    f"use {name} or one of its parents as the zone",
                )
            )
            zone = name
    target: str | None = None
    if mode is DnsMode.EXTERNAL:
        if "target" in spec:
            problems.append(
                Problem(
                    "domain.target-external",
                    "an external domain has no target: its DNS administrator publishes the records",
                    doc.where_key((*base, "target")),
                    "remove 'target:' or set 'dns: managed'",
                )
            )
    else:
        target = spec.get("target", platform.default_target)
        if platform.targets and target not in platform.targets:
            problems.append(
                Problem(
                    "target.unknown",
                    f"target {target!r} is not in provisioner.yaml",
                    doc.where((*base, "target")) if "target" in spec else origin,
                    f"use one of: {', '.join(sorted(platform.targets))}",
                )
            )
    spf_spec = spec.get("spf") or {}
    includes: list[str] = []
    for i, inc in enumerate(spf_spec.get("include", [])):
        try:
            host = normalize(inc, allow_underscore=True)
        except NameError_ as exc:
            problems.append(
                Problem(
                    "spf.include-invalid",
                    f"SPF include {inc!r}: {exc}",
                    doc.where((*base, "spf", "include", i)),
                    "write the host name only, such as _spf.google.com",
                )
            )
            continue
        if host == platform.spf_include:
            problems.append(
                Problem(
                    "spf.include-platform",
                    f"{host} is the platform's own include; it is always added",
                    doc.where((*base, "spf", "include", i)),
                    "remove it",
                    Severity.WARNING,
                )
            )
            continue
        includes.append(host)
    spf = SpfPolicy(
        tuple(includes), spf_spec.get("all", d("institution", "domains", "x", "spf", "all"))
    )
    lookups = len(includes) + 1
    if lookups > MAX_SPF_LOOKUPS:
        problems.append(
            Problem(
                "spf.lookup-limit",
                f"the SPF record would need at least {lookups} DNS lookups, more "
                f"than RFC 7208's {MAX_SPF_LOOKUPS}",
                doc.where((*base, "spf", "include")),
                "drop includes the domain no longer sends through, or flatten "
                "them into ip4:/ip6: terms at the provider",
            )
        )
    dmarc = _build_dmarc(doc, (*base, "dmarc"), spec.get("dmarc") or {}, problems)
    return_path = spec.get("return_path")
    rp_text = str(return_path).rstrip(".").lower() if return_path is not None else ""
    if rp_text and (rp_text == name or rp_text.endswith("." + name)):
        # "bounce.example.org" under example.org would become bounce.example.org.example.org.
        label = rp_text[: -len(name)].rstrip(".") or "bounce"
        problems.append(Problem(
            "domain.return-path-repeats-domain",
            f"return_path {return_path!r} repeats the domain: it is a label under {name}, "
            f"so this would publish {rp_text}.{name}",
            doc.where((*base, "return_path")),
            f"write return_path: {label}"))
    elif return_path is not None:
        try:
            normalize(f"{return_path}.{name}")
        except NameError_ as exc:
            problems.append(
                Problem(
                    "domain.return-path",
                    f"return_path: {exc}",
                    doc.where((*base, "return_path")),
                    "use a shorter label",
                )
            )
        if dmarc.aspf == "s":
            problems.append(
                Problem(
                    "dmarc.alignment-never-passes",
                    f"strict SPF alignment (aspf=s) never passes: mail leaves "
                    f"with envelope-from {return_path}.{name}, not {name}",
                    doc.where((*base, "dmarc", "alignment", "spf")),
                    "use relaxed SPF alignment, or rely on DKIM alignment",
                    Severity.WARNING,
                )
            )
    ttl = int(spec.get("ttl", d("institution", "domains", "x", "ttl")))
    dkim = bool(spec.get("dkim", d("institution", "domains", "x", "dkim")))
    origins = {part: doc.where_key((*base, part)) for part in spec}
    return Domain(
        name,
        zone,
        mode,
        target,
        ttl,
        spf,
        dkim,
        dmarc,
        return_path,
        origin,
        MappingProxyType(origins),
    )


def _build_dmarc(
    doc: Document, base: PathKey, spec: dict[str, Any], problems: list[Problem]
) -> DmarcPolicy:
    def uris(kind: str) -> tuple[str, ...]:
        found: list[str] = []
        for i, uri in enumerate(spec.get(kind, [])):
            address = uri[len("mailto:") :]
            local, _, host = address.partition("@")
            host, bang, size = host.partition("!")
            try:
                host = normalize(host)
            except NameError_ as exc:
                problems.append(
                    Problem(
                        "dmarc.uri",
                        f"{kind} {uri!r}: {exc}",
                        doc.where((*base, kind, i)),
                        "write mailto:reports@example.com",
                    )
                )
                continue
            found.append(f"mailto:{local}@{host}{bang}{size}")
        return tuple(found)

    align = spec.get("alignment") or {}
    letter = {"relaxed": "r", "strict": "s"}
    return DmarcPolicy(
        policy=spec.get("policy", schema.default("institution", "domains", "x", "dmarc", "policy")),
        rua=uris("rua"),
        ruf=uris("ruf"),
        subdomain_policy=spec.get("subdomain_policy"),
        adkim=letter[align["dkim"]] if "dkim" in align else None,
        aspf=letter[align["spf"]] if "spf" in align else None,
        percentage=_obsolete_percentage(doc, base, spec, problems),
        failure_reporting=spec.get("failure_reporting"),
        non_existent_subdomain_policy=spec.get("non_existent_subdomain_policy"),
        explained_sources=_explained(doc, base, spec, problems),
        testing=bool(spec.get("testing", False)),
        psd=spec.get("psd"),
    )


def _explained(doc: Document, base: PathKey, spec: dict[str, Any],
               problems: list[Problem]) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    for i, entry in enumerate(spec.get("explained_sources") or ()):
        source = str(entry["source"]).strip().lower()
        if not source.startswith("."):
            try:
                source = str(ipaddress.ip_network(source, strict=False))
            except ValueError:
                problems.append(Problem(
                    "dmarc.explained-source", f"{source!r} is not an IP address or network",
                    doc.where((*base, "explained_sources", i, "source")),
                    "write 192.0.2.7, 198.51.100.0/24, or a host suffix such as .example.net"))
                continue
        found.append((source, str(entry["reason"])))
    return tuple(found)


def _obsolete_percentage(doc: Document, base: PathKey, spec: dict[str, Any],
                         problems: list[Problem]) -> int | None:
    """``percentage`` (pct=) is obsolete: RFC 9989 removed it and receivers ignore it."""
    pct = spec.get("percentage")
    if pct is not None:
        problems.append(Problem(
            "dmarc.percentage-obsolete",
            f"percentage: {pct} (pct=) is obsolete since RFC 9989, which receivers follow: it "
            "is no longer published, and the policy applies to all mail",
            doc.where_key((*base, "percentage")),
            "remove it; to try a policy first, write testing: true (t=y), the ramp's "
            "'quarantine; t=y' rung", Severity.WARNING))
    return pct
