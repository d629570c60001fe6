"""What an external domain's zone holds now, read on its authoritative servers (DESIGN §10).

For each name the instructions touch, the TXT, CNAME and MX sets as the zone's first
authoritative server answers them (``--nameserver`` replaces discovery, as for ``verify``),
and the zone's NS names, from which the DNS host is recognised. Every answer is hostile input:
values are kept as text and only ever compared, parsed by the product's parsers, or shown
escaped.

:class:`LiveResolver` answers the SPF evaluator from the same servers, with one name's TXT set
replaced: it evaluates the merged SPF value before anyone publishes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provisioner.dnsclient import NOERROR, NXDOMAIN, DnsClient, Query, Server, fqdn
from provisioner.spf import NXDomain, TempError


@dataclass(frozen=True, slots=True)
class LiveName:
    """One name as the zone serves it. ``status``: NOERROR, NXDOMAIN, or why none answered."""

    name: str
    status: str = NOERROR
    txt: tuple[str, ...] = ()
    cname: str | None = None
    mx: tuple[tuple[int, str], ...] = ()

    @property
    def answered(self) -> bool:
        return self.status in (NOERROR, NXDOMAIN)


@dataclass(frozen=True)
class LiveZone:
    zone: str
    servers: tuple[Server, ...]
    ns: tuple[str, ...]
    names: Mapping[str, LiveName] = field(default_factory=dict)
    problem: str | None = None  # no server found or none answered: nothing is known

    def at(self, name: str) -> LiveName:
        return self.names.get(fqdn(name), LiveName(fqdn(name), "unasked"))


def read_zone(client: DnsClient, zone: str, names: Iterable[str]) -> LiveZone:
    """The TXT, CNAME and MX sets at ``names`` and the NS set of ``zone``, from its first
    authoritative server (the others are verify's business)."""
    zone = fqdn(zone)
    delegation = client.delegations([zone])[zone]
    if not delegation.servers:
        return LiveZone(zone, (), (), {}, f"no authoritative server found for {zone} "
                                           f"({delegation.status})")
    server = delegation.servers[0]
    wanted = [fqdn(n) for n in dict.fromkeys(names)]
    queries = [Query(server, n, t) for n in wanted for t in ("TXT", "CNAME", "MX")]
    queries.append(Query(server, zone, "NS"))
    answers = client.lookup_many(queries)
    ns_answer = answers[Query(server, zone, "NS")]
    ns = tuple(sorted(str(v).lower() for v in ns_answer.direct)) or tuple(
        s.name for s in delegation.servers if s.name)
    found: dict[str, LiveName] = {}
    for name in wanted:
        txt, cname, mx = (answers[Query(server, name, t)] for t in ("TXT", "CNAME", "MX"))
        status = next((a.status for a in (txt, cname, mx)
                       if a.status not in (NOERROR, NXDOMAIN)), txt.status)
        found[name] = LiveName(
            name, status,
            txt=tuple(str(v) for v in txt.direct),
            cname=next((str(v).lower() for v in cname.direct), None) or (
                txt.cnames[0] if txt.cnames else None),
            mx=tuple(sorted((int(p), str(e).lower()) for p, e in mx.direct)))
    if all(not n.answered for n in found.values()) and found:
        first = next(iter(found.values()))
        return LiveZone(zone, delegation.servers, ns, found,
                        f"{server} did not answer for {zone} ({first.status})")
    return LiveZone(zone, delegation.servers, ns, found)


class LiveResolver:
    """The SPF evaluator's resolver over live DNS: names within ``zone`` from its server,
    others from the recursive servers; ``override`` replaces one name's TXT set."""

    def __init__(self, client: DnsClient, live: LiveZone,
                 override: Mapping[str, list[str]] | None = None) -> None:
        self.client = client
        self.live = live
        self.override = {fqdn(k): v for k, v in (override or {}).items()}

    def query(self, name: str, rdtype: str) -> list[Any]:
        name = fqdn(name)
        if rdtype == "TXT" and name in self.override:
            return list(self.override[name])
        inside = name == self.live.zone or name.endswith("." + self.live.zone)
        servers = self.live.servers if inside and self.live.servers else \
            self.client.recursive_servers()
        if not servers:
            raise TempError()
        query = Query(servers[0], name, rdtype)
        answer = self.client.lookup_many([query])[query]
        if answer.status == NXDOMAIN:
            raise NXDomain()
        if answer.status != NOERROR:
            raise TempError()
        return list(answer.values)
