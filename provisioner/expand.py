"""Expansion: the platform and the declarations in, the exact records out (DESIGN §4).

Pure: no I/O, no octoDNS, no DNS. The output is sorted by zone, name and type so that every
consumer (text, JSON, the octoDNS source, golden files) sees one stable order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from operator import attrgetter

from provisioner.model import (
    DmarcPolicy,
    Domain,
    Institution,
    MxValue,
    Platform,
    Record,
    Role,
    is_within,
    relative,
)


def spf_value(includes: Iterable[str], platform_include: str, all_term: str) -> str:
    """``v=spf1 include:<each> include:<platform> ~all`` (RFC 7208 §5.2 include mechanisms)."""
    terms = ["v=spf1", *(f"include:{i}" for i in includes), f"include:{platform_include}", all_term]
    return " ".join(terms)


def dmarc_value(policy: DmarcPolicy, platform_rua: str | None) -> str:
    """The DMARC record, tags in the order of DESIGN §4: ``v`` then ``p`` (RFC 7489 receivers
    read it so), then RFC 9989's tags; never the obsolete ``pct``, ``rf`` or ``ri``."""
    tags = ["v=DMARC1", f"p={policy.policy}"]
    if policy.subdomain_policy:
        tags.append(f"sp={policy.subdomain_policy}")
    if policy.non_existent_subdomain_policy:
        tags.append(f"np={policy.non_existent_subdomain_policy}")
    if policy.adkim:
        tags.append(f"adkim={policy.adkim}")
    if policy.aspf:
        tags.append(f"aspf={policy.aspf}")
    # pct= is never published: RFC 9989 removed it (testing: true publishes t=y instead)
    if policy.testing:
        tags.append("t=y")
    if policy.psd:
        tags.append(f"psd={policy.psd}")
    if policy.failure_reporting:
        tags.append(f"fo={policy.failure_reporting}")
    rua = list(policy.rua)
    if platform_rua and platform_rua not in rua:
        rua.append(platform_rua)
    if rua:
        tags.append("rua=" + ",".join(rua))
    if policy.ruf:
        tags.append("ruf=" + ",".join(policy.ruf))
    return "; ".join(tags)


def report_destinations(policy: DmarcPolicy, platform_rua: str | None) -> list[str]:
    """The host part of every rua/ruf destination (RFC 7489 §7.1 needs their authorisation)."""
    uris = [*policy.rua, *policy.ruf, *([platform_rua] if platform_rua else [])]
    hosts: list[str] = []
    for uri in uris:
        host = uri.partition("@")[2].partition("!")[0].lower()
        if host and host not in hosts:
            hosts.append(host)
    return hosts


def platform_spf_value(platform: Platform) -> str:
    terms = ["v=spf1"]
    for ip in platform.sending_ips:
        terms.append(f"ip6:{ip}" if ":" in ip else f"ip4:{ip}")
    terms.append("-all")
    return " ".join(terms)


def dkim_key_value(public_key: str, key_type: str = "rsa") -> str:
    """RFC 6376 §3.6.1 key record; the base64 key without spaces, ``p=`` empty for a revoked
    key; ``k=`` rsa or ed25519 (RFC 8463)."""
    return f"v=DKIM1; k={key_type}; p={''.join(public_key.split())}"


def _domain_records(platform: Platform, inst: Institution, dom: Domain) -> Iterator[Record]:
    zone = dom.zone + "."
    managed = dom.target is not None

    def rec(
        name: str, rtype: str, values: tuple[str | MxValue, ...], role: Role, part: str
    ) -> Record:
        return Record(
            zone,
            name,
            rtype,
            dom.ttl,
            values,
            role,
            dom.origin_of(part),
            inst.code,
            dom.name,
            dom.target,
            managed,
        )

    base = dom.relative_name

    def under(label: str) -> str:
        return f"{label}.{base}" if base else label

    yield rec(
        base,
        "TXT",
        (spf_value(dom.spf.include, platform.spf_include, dom.spf.all_term),),
        Role.SPF,
        "spf",
    )
    if dom.dkim:
        for sel in platform.selectors:
            target = f"{sel.target_label(inst.code)}._domainkey.{platform.dkim_zone}."
            yield rec(under(f"{sel.name}._domainkey"), "CNAME", (target,), Role.DKIM, "dkim")
    yield rec(
        under("_dmarc"), "TXT", (dmarc_value(dom.dmarc, platform.dmarc_rua),), Role.DMARC, "dmarc"
    )
    if dom.return_path:
        name = under(dom.return_path)
        yield rec(
            name,
            "MX",
            (MxValue(10, platform.return_path_mx + "."),),
            Role.RETURN_PATH_MX,
            "return_path",
        )
        yield rec(
            name,
            "TXT",
            (f"v=spf1 include:{platform.spf_include} -all",),
            Role.RETURN_PATH_SPF,
            "return_path",
        )


def _platform_records(platform: Platform, institutions: Iterable[Institution]) -> Iterator[Record]:
    def rec(
        fqdn: str,
        values: tuple[str, ...],
        role: Role,
        inst: Institution | None = None,
        dom: Domain | None = None,
    ) -> Record | None:
        zone = platform.platform_zone_of(fqdn)
        if zone is None:
            return None
        origin = dom.origin_of("dmarc") if dom else platform.origin
        return Record(
            zone + ".",
            relative(fqdn, zone),
            "TXT",
            platform.ttl,
            values,
            role,
            origin,
            inst.code if inst else None,
            dom.name if dom else None,
            platform.platform_zones[zone],
            True,
        )

    spf = rec(platform.spf_include, (platform_spf_value(platform),), Role.PLATFORM_SPF)
    if spf is not None and platform.sending_ips:
        yield spf
    dc = platform.domain_connect
    if dc is not None and dc.public_key:
        signing = rec(dc.key_name, dc.key_fragments(), Role.DOMAIN_CONNECT_KEY)
        if signing is not None:
            yield signing
    for inst in institutions:
        if platform.dkim_public_keys and inst.uses_dkim:
            for sel in platform.selectors:
                label = sel.target_label(inst.code)
                key = platform.dkim_public_keys.get(label)
                if key is not None:
                    kind = platform.dkim_key_types.get(label, "rsa")
                    found = rec(
                        f"{label}._domainkey.{platform.dkim_zone}",
                        (dkim_key_value(key, kind),),
                        Role.DKIM_KEY,
                        inst,
                    )
                    if found is not None:
                        yield found
        for dom in inst.domains:
            for host in report_destinations(dom.dmarc, platform.dmarc_rua):
                if is_within(host, dom.name) or is_within(dom.name, host):
                    continue  # same organisation: no authorisation needed (RFC 7489 §7.1)
                found = rec(
                    f"{dom.name}._report._dmarc.{host}",
                    ("v=DMARC1",),
                    Role.DMARC_REPORT_AUTH,
                    inst,
                    dom,
                )
                if found is not None:
                    yield found


def expand(platform: Platform, institutions: Iterable[Institution]) -> tuple[Record, ...]:
    """Every record the declarations need, sorted by (zone, name, type)."""
    institutions = tuple(institutions)
    out: list[Record] = []
    for inst in institutions:
        for dom in inst.domains:
            out.extend(_domain_records(platform, inst, dom))
    out.extend(_platform_records(platform, institutions))
    out.sort(key=attrgetter("zone", "name", "type"))
    return tuple(out)
