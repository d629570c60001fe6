"""One authoritative server's view of the names a check needs, read from the run's cache.

Checks are pure functions of a :class:`View`. When a check needs an answer the run has not
fetched yet, the view raises :class:`Miss`; the runner collects the misses of every check,
fetches them in one batch and runs the checks again. So the checks stay plain sequential code
(including the SPF evaluator, which takes the view as its resolver, RFC 7208 §4) while the I/O
is batched across thousands of domains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from provisioner.dnsclient import NOERROR, NXDOMAIN, Answer, Query, Server, fqdn
from provisioner.spf import NXDomain, TempError

MAX_CNAME_HOPS = 8
_NOWHERE = Server("0.0.0.0", 0, "no authoritative server")


class Miss(Exception):  # control flow between a view and the runner; never escapes
    """The answer to ``query`` is needed and not fetched yet."""

    def __init__(self, query: Query) -> None:
        super().__init__(query)
        self.query = query


Route = Callable[[str], "tuple[Server, ...] | str"]  # servers to try, or why there are none
Lookup = Callable[[Query], "Answer | None"]


class View:
    """Answers as ``label`` (a server of the domain's zone) gives them.

    ``route(name)`` says which server to ask for ``name``; ``lookup`` reads the run's cache.
    It also implements the SPF evaluator's resolver protocol (:meth:`query`).
    """

    def __init__(self, label: str, route: Route, lookup: Lookup) -> None:
        self.label = label
        self._route = route
        self._lookup = lookup
        # Checks run again from the start each round (the runner's Miss protocol): answers
        # already found are kept here so a re-run does not route and look them up again.
        self._memo: dict[tuple[str, str], Answer] = {}
        self._routes: dict[str, tuple[Server, ...] | str] = {}  # route() of each name asked

    def _servers(self, name: str) -> tuple[Server, ...] | str:
        servers = self._routes.get(name)
        if servers is None:
            servers = self._routes[name] = self._route(name)
        return servers

    def first_query(self, name: str, rdtype: str) -> Query | None:
        """The query :meth:`answer` would send first for ``name`` (None: nowhere to ask)."""
        name = fqdn(name)
        servers = self._servers(name)
        return None if isinstance(servers, str) else Query(servers[0], name, rdtype)

    def answer(self, name: str, rdtype: str) -> Answer:
        """The answer to ``name``/``rdtype`` (no CNAME chasing beyond the answer section)."""
        memo = self._memo.get((name, rdtype))
        if memo is not None:
            return memo
        found = self._answer(fqdn(name), rdtype)
        self._memo[(name, rdtype)] = found
        return found

    def _answer(self, name: str, rdtype: str) -> Answer:
        servers = self._servers(name)
        if isinstance(servers, str):
            return Answer(Query(_NOWHERE, name, rdtype), servers)
        found: Answer | None = None
        for server in servers:
            query = Query(server, name, rdtype)
            found = self._lookup(query)
            if found is None:
                raise Miss(query)
            if not found.temporary:
                break
        assert found is not None  # a route has at least one server
        return found

    def follow(self, name: str, rdtype: str) -> tuple[Answer, tuple[str, ...]]:
        """The answer at the end of the CNAME chain (RFC 1034 §3.6.2), and the chain."""
        answer = self.answer(name, rdtype)
        chain = answer.cnames
        while (answer.status == NOERROR and not answer.values and chain
               and rdtype != "CNAME" and len(chain) <= MAX_CNAME_HOPS):
            answer = self.answer(chain[-1], rdtype)
            more = tuple(c for c in answer.cnames if c not in chain)
            if not more and answer.cnames:
                break  # a loop
            chain += more
        return answer, chain

    def query(self, name: str, rdtype: str) -> list[Any]:
        """The SPF evaluator's resolver (provisioner.spf.Resolver)."""
        answer, _ = self.follow(name, rdtype)
        if answer.status == NXDOMAIN:
            raise NXDomain()
        if answer.status != NOERROR:
            raise TempError()
        return list(answer.values)
