"""After apply: verify, on live DNS, the records of the zones apply changed (issue 4 item 7).

Which DNS answers for a target is the product's business, not octoDNS's, so it is written as
product-only options in the target's config (:data:`~provisioner.octodns.targets.PRODUCT_OPTIONS`,
never passed to the provider):

- ``nameserver: HOST[:PORT]`` (or a list): ask that server, e.g. PowerDNS's own DNS port, a
  hidden primary, or a test server on 127.0.0.1;
- ``verify: false``: never verify this target after apply (a host not delegated yet).

Without them, a target's zones are verified through their public delegation (NS lookup), except
where no DNS server can serve them: file targets (octoDNS's YamlProvider writes files), and a
Route53 target whose API endpoint is overridden (moto, a private stand-in: not AWS, so no AWS
name server holds its zones). Those are skipped with a one-line reason, never failed.

Pure planning here (:func:`verification_plan`); :func:`run` calls
:func:`provisioner.verify.verify_records` once per group of servers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from provisioner.dnsclient import BadServer, Server
from provisioner.errors import InvalidInput, Problem
from provisioner.model import Platform, Record, Target
from provisioner.octodns.targets import PRODUCT_OPTIONS
from provisioner.verify import DomainReport, Report, verify_records

FILE_PROVIDERS = frozenset({"octodns.provider.yaml.YamlProvider",
                            "octodns.provider.yaml.SplitYamlProvider"})
ROUTE53 = "octodns_route53.Route53Provider"
ROUTE53_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_ROUTE_53", "AWS_ENDPOINT_URL")


@dataclass(frozen=True, slots=True)
class LiveDns:
    """Where a target's records answer: ``servers`` to ask, () for the NS lookup; or why not.

    Exactly one of ``servers`` (with ``skip`` "") and ``skip`` (a reason) is meaningful.
    """

    servers: tuple[Server, ...] = ()
    skip: str = ""


def _bad(target: Target, message: str) -> InvalidInput:
    return InvalidInput([Problem("target.nameserver", f"target {target.name}: {message}",
                                 target.origin, "nameserver: HOST[:PORT], or a list of them")])


def live_dns(target: Target, environ: Mapping[str, str] | None = None) -> LiveDns:
    """Where ``target``'s records can be verified; raises InvalidInput for a bad option.

    ``environ`` defaults to ``os.environ`` (read for the Route53 endpoint override).
    """
    env = os.environ if environ is None else environ
    raw = target.options.get("nameserver")
    verify = target.options.get("verify", True)
    if not isinstance(verify, bool):
        raise _bad(target, f"verify must be true or false, not {verify!r}")
    names = [raw] if isinstance(raw, str) else raw
    if raw is not None and (not isinstance(names, list) or not names
                            or not all(isinstance(n, str) for n in names)):
        raise _bad(target, f"bad nameserver option {raw!r}")
    try:
        servers = tuple(Server.parse(n) for n in names or ())
    except BadServer as exc:
        raise _bad(target, str(exc).replace("--nameserver", "nameserver")) from None
    if not verify:
        return LiveDns(skip="verify: false in its target config")
    if servers:
        return LiveDns(servers)
    if target.provider_class in FILE_PROVIDERS:
        return LiveDns(skip="its records are files, which no DNS server serves here "
                            "(add nameserver: HOST[:PORT] to its config if one does)")
    if target.provider_class == ROUTE53:
        endpoint = next((env[v] for v in ROUTE53_ENDPOINT_VARIABLES if env.get(v)), None)
        if endpoint:
            return LiveDns(skip=f"its Route53 API is {endpoint}, not AWS: no AWS name server "
                                "holds its zones")
    return LiveDns()


@dataclass(frozen=True, slots=True)
class Group:
    """Domains verified together: the same servers (() = NS lookup)."""

    servers: tuple[Server, ...]
    domains: tuple[str, ...]
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class Skipped:
    target: str
    zones: tuple[str, ...]
    reason: str

    def __str__(self) -> str:
        listed = ", ".join(z.rstrip(".") for z in self.zones)
        return f"verify: skipped target {self.target} ({listed}): {self.reason}"


def verification_plan(
    records: Sequence[Record],
    platform: Platform,
    changed: Iterable[tuple[str, str]],
    environ: Mapping[str, str] | None = None,
) -> tuple[tuple[Group, ...], tuple[Skipped, ...]]:
    """What to verify after apply changed the (zone, target) pairs in ``changed``.

    A domain is verified when its own zone changed, or when a platform-zone record for it did
    (a DMARC report authorisation, a DKIM key): both change what its checks see. It is asked
    of its own zone's target's servers. Its report authorisations (records of the domain),
    its institution's DKIM keys and the platform's own SPF record go along, and verify checks
    each on its own (the DMARC check also reads which authorisations the platform publishes).
    Other domains' platform-zone records stay out: they would be checked too. A changed
    platform zone's records of no domain (DKIM keys, the platform's SPF record) are verified on
    their own, on that zone's target's servers: a key rotation changes nothing else.
    """
    changed_zones: dict[str, str] = dict(changed)
    target_of_zone = {r.zone: r.target for r in records if r.managed and r.target}
    # A domain's home is the zone of its own records (SPF, DMARC...), not a platform zone.
    home = {r.domain: r.zone for r in records
            if r.domain and r.zone.rstrip(".") not in platform.platform_zones}
    domains: dict[str, str] = {}  # domain -> the zone its checks start from
    for r in records:
        if r.managed and r.domain and r.zone in changed_zones and r.domain in home:
            domains.setdefault(r.domain, home[r.domain])
    by_target: dict[str, list[str]] = {}
    for domain, zone in domains.items():
        name = target_of_zone.get(zone)
        if name is not None:
            by_target.setdefault(name, []).append(domain)
    groups: list[Group] = []
    skipped: list[Skipped] = []
    # Records of no domain: the platform's SPF record, DKIM keys (one per institution).
    shared = tuple(r for r in records if r.domain is None and (
        r.institution is None or r.zone.rstrip(".") in platform.platform_zones))
    # Those whose own zone changed are verified for themselves (a key rotation changes only
    # the DKIM zone), on the servers of that zone's target.
    rotated: dict[str, list[Record]] = {}
    for r in shared:
        if r.managed and r.target and r.zone in changed_zones:
            rotated.setdefault(r.target, []).append(r)
    for target_name in sorted(set(by_target) | set(rotated)):
        target = platform.targets.get(target_name)
        if target is None:
            continue
        where = live_dns(target, environ)
        names = tuple(sorted(by_target.get(target_name, ())))
        own = tuple(rotated.get(target_name, ()))
        if where.skip:
            zones = tuple(sorted({domains[d] for d in names} | {r.zone for r in own}))
            skipped.append(Skipped(target_name, zones, where.skip))
            continue
        wanted = set(names)
        mine = tuple(r for r in records if r.domain in wanted and r.managed)
        institutions = {r.institution for r in mine}
        context = tuple(r for r in shared
                        if r.institution is None or r.institution in institutions)
        groups.append(Group(where.servers, names, _unique(mine + context + own)))
    # Merge groups that ask the same servers: one client, one pass over them all.
    merged: dict[tuple[Server, ...], Group] = {}
    for g in groups:
        seen = merged.get(g.servers)
        merged[g.servers] = g if seen is None else Group(
            g.servers, seen.domains + g.domains, _unique(seen.records + g.records))
    return tuple(merged.values()), tuple(skipped)


__all__ = ["PRODUCT_OPTIONS", "Group", "LiveDns", "Skipped", "live_dns", "run",
           "verification_plan"]


def _unique(records: Iterable[Record]) -> tuple[Record, ...]:
    return tuple(dict.fromkeys(records))


def run(groups: Iterable[Group], platform: Platform, *, wait: float = 0.0) -> Report:
    """Verify each group on its servers; one report, domains in group order.

    Groups run one after the other, each with the whole ``wait``: they are rare (one per
    distinct set of servers) and a propagation delay is per host, not shared.
    """
    domains: list[DomainReport] = []
    queries = 0
    seconds = 0.0
    for group in groups:
        report = verify_records(group.records, platform, nameservers=group.servers, wait=wait)
        domains.extend(report.domains)
        queries += report.queries
        seconds += report.seconds
    return Report(tuple(domains), queries, seconds)
