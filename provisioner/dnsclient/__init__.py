"""The DNS client: the only code importing ``dns`` (dnspython).

:class:`DnsClient` finds each zone's authoritative servers (NS through the system's recursive
resolver, RFC 1034 §4.3.2; or the ``--nameserver`` override), asks each of them directly, and
caches answers for one run. The hot path is :mod:`.engine` (UDP, windows, retries) and
:mod:`.wire`; dnspython reads the system resolver configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from provisioner.dnsclient.engine import Engine
from provisioner.dnsclient.types import (
    LAME,
    NOERROR,
    NXDOMAIN,
    REFUSED,
    SERVFAIL,
    TEMPORARY,
    TIMEOUT,
    UNREACHABLE,
    Answer,
    BadServer,
    Query,
    Server,
    fqdn,
)

__all__ = [
    "LAME", "NOERROR", "NXDOMAIN", "REFUSED", "SERVFAIL", "TEMPORARY", "TIMEOUT", "UNREACHABLE",
    "Answer", "BadServer", "Delegation", "DnsClient", "Query", "Server", "fqdn",
    "system_resolvers",
]

log = logging.getLogger(__name__)


def system_resolvers() -> tuple[Server, ...]:
    """The recursive resolvers of ``/etc/resolv.conf`` (through dnspython)."""
    import dns.resolver  # the one place dnspython is needed: the system's configuration

    try:
        resolver = dns.resolver.Resolver()
    except dns.resolver.NoResolverConfiguration:
        return ()
    return tuple(Server(str(ns), int(resolver.port)) for ns in resolver.nameservers)


@dataclass(frozen=True, slots=True)
class Delegation:
    """A zone's authoritative servers, or why none were found (``status``, as in Answer)."""

    zone: str
    servers: tuple[Server, ...]
    status: str = NOERROR


class DnsClient:
    """Authoritative lookups in batches, cached for the life of the client."""

    def __init__(
        self,
        *,
        nameservers: Sequence[Server] = (),
        resolvers: Sequence[Server] | None = None,
        timeout: float = 1.0,
        attempts: int = 3,
        window: int = 256,
        record_asked: bool = False,
    ) -> None:
        self.nameservers = tuple(nameservers)
        self.resolvers = tuple(resolvers) if resolvers is not None else ()
        if not self.nameservers and resolvers is None:
            self.resolvers = system_resolvers()
        self.engine = Engine(timeout=timeout, attempts=attempts, window=window,
                             recursive=frozenset(self.resolvers))
        self._cache: dict[Query, Answer] = {}
        self._delegations: dict[str, Delegation] = {}
        # Whether forked workers send back what they asked (for asked(); costs a transfer).
        self.record_asked = record_asked
        # Queries forked workers asked for us, as plain (server, name, rdtype) tuples: a named
        # tuple pickles through copyreg, four times slower.
        self._elsewhere: list[tuple[Server, str, str]] = []
        self._worker_sent = 0
        self._worker_retransmits = 0

    def __enter__(self) -> DnsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.close()

    def clear_cache(self) -> None:
        """Forget answers (not delegations) and which servers were down: the next pass
        (``--wait``) sees fresh data and asks every server again."""
        self._cache.clear()
        self.engine.revive()
        self._elsewhere = []

    def after_fork(self) -> None:
        """In a forked worker: drop the sockets inherited from the parent (their answers are
        the parent's) and the answers and counts, keep the delegations; new sockets open as
        needed."""
        self.engine.after_fork()
        self._cache.clear()  # the worker reports what it asks itself, nothing inherited
        self._elsewhere = []
        self._worker_sent = self._worker_retransmits = 0

    def absorb(self, sent: int, retransmits: int, asked: list[tuple[Server, str, str]]) -> None:
        """Count what a forked worker sent on this client's behalf (``asked``: its
        :meth:`asked_plain`)."""
        self._worker_sent += sent
        self._worker_retransmits += retransmits
        self._elsewhere += asked

    def asked_plain(self) -> list[tuple[Server, str, str]]:
        """The queries of :meth:`asked` as plain tuples, cheap to pickle; none unless
        ``record_asked``."""
        if not self.record_asked:
            return []
        return [(q.server, q.name, q.rdtype) for q in self._cache] + self._elsewhere

    @property
    def queries_sent(self) -> int:
        return self.engine.sent + self._worker_sent

    @property
    def retransmits(self) -> int:
        """Datagrams sent again because a copy went unanswered for the server's RTO."""
        return self.engine.retransmits + self._worker_retransmits

    def asked(self) -> tuple[Query, ...]:
        """Every query answered so far here, and by forked workers when ``record_asked``
        (benchmarks replay them)."""
        return tuple(dict.fromkeys((*self._cache, *(Query(*q) for q in self._elsewhere))))

    def cached(self, query: Query) -> Answer | None:
        return self._cache.get(query)

    def lookup_many(self, queries: Iterable[Query]) -> Mapping[Query, Answer]:
        """Answers to ``queries``, asking only for those not in the cache."""
        wanted = [q for q in dict.fromkeys(queries) if q not in self._cache]
        if wanted:
            self._cache.update(self.engine.run(wanted))
        return self._cache

    def recursive_servers(self) -> tuple[Server, ...]:
        """Where names outside every known zone are asked (the override, else resolvers)."""
        return self.nameservers or self.resolvers

    def delegations(self, zones: Iterable[str]) -> Mapping[str, Delegation]:
        """Each zone's authoritative servers: the override, or NS then A/AAAA by recursion."""
        zones = [fqdn(z) for z in zones if fqdn(z) not in self._delegations]
        if self.nameservers:
            for zone in zones:
                self._delegations[zone] = Delegation(zone, self.nameservers)
            return self._delegations
        if not self.resolvers:
            for zone in zones:
                self._delegations[zone] = Delegation(zone, (), UNREACHABLE)
            return self._delegations
        resolver = self.resolvers[0]
        answers = self.lookup_many(Query(resolver, z, "NS") for z in zones)
        hosts = {h for z in zones for h in answers[Query(resolver, z, "NS")].values}
        addresses = self.lookup_many(
            Query(resolver, h, t) for h in sorted(hosts) for t in ("A", "AAAA")
        )
        for zone in zones:
            ns = answers[Query(resolver, zone, "NS")]
            servers = tuple(
                Server(address, 53, host)
                for host in sorted(ns.values)
                for t in ("A", "AAAA")
                for address in addresses[Query(resolver, host, t)].values
            )
            status = ns.status if ns.status != NOERROR or servers else "NODATA"
            if not servers:
                log.info("no authoritative servers for %s: %s", zone, status)
            self._delegations[zone] = Delegation(zone, servers, NOERROR if servers else status)
        return self._delegations
