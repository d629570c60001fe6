"""Values the DNS client hands out: servers, queries and answers (immutable)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from provisioner.dnsclient.wire import Message
from provisioner.errors import ProvisionerError

# Answer statuses. The first three are what the server said; the others are failures to hear it.
NOERROR = "NOERROR"
NXDOMAIN = "NXDOMAIN"
SERVFAIL = "SERVFAIL"
REFUSED = "REFUSED"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
LAME = "lame"  # the server is not authoritative for the name (a referral, RFC 1034 §4.3.2)
TEMPORARY = frozenset({SERVFAIL, REFUSED, TIMEOUT, UNREACHABLE, LAME, "FORMERR", "NOTIMP"})


class BadServer(ProvisionerError):
    """A ``--nameserver`` value that is not ``HOST[:PORT]``."""


class Server(NamedTuple):
    """A name server by address. ``name`` is its NS host name when it was discovered.

    Server and :class:`Query` are named tuples rather than dataclasses: a query is hashed about
    ten times on its way through the cache and the engine, and a tuple's hash is computed in C
    (measured: 4x cheaper than a frozen dataclass's).
    """

    host: str
    port: int = 53
    name: str = ""

    def __str__(self) -> str:
        where = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        if self.port == 53:
            where = self.host
        return f"{self.name.rstrip('.')} ({where})" if self.name else where

    @classmethod
    def parse(cls, text: str) -> Server:
        """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a bare IPv6 address."""
        text = text.strip()
        host, port = text, "53"
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else "53"
        elif text.count(":") == 1:
            host, port = text.split(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadServer(f"--nameserver {text!r}: expected HOST[:PORT]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            # A host name: resolved once, here, so that a name that does not resolve is this
            # one-line error and not a failure deep in a pass (after the records were written).
            try:
                found = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)
            except (OSError, UnicodeError) as exc:
                raise BadServer(f"--nameserver {text!r}: {host} does not resolve "
                                f"({getattr(exc, 'strerror', None) or exc})") from None
            return cls(str(found[0][4][0]), int(port), host)
        return cls(host, int(port))


class Query(NamedTuple):
    """``name`` is lower-case and fully qualified (trailing dot)."""

    server: Server
    name: str
    rdtype: str


def fqdn(name: str) -> str:
    if name.endswith(".") and not name.endswith("..") and name.islower():
        return name  # already fully qualified and lower-case: most calls, no new string
    return name.lower().rstrip(".") + "."


@dataclass(frozen=True, slots=True)
class Answer:
    """A server's answer to one query, or why there is none.

    ``status`` is the RCODE (``NOERROR``, ``NXDOMAIN``, ``SERVFAIL``...) or ``timeout``,
    ``unreachable``, ``lame``. ``rrs`` is the answer section as ``(owner, type, value)``.
    ``cnames``, ``values`` and ``direct`` are read off ``rrs`` once, when the answer is made:
    the checks read them about three times per answer.
    """

    query: Query
    status: str
    rrs: tuple[tuple[str, str, Any], ...] = ()
    # The CNAME chain from the query name, as far as the answer section holds it.
    cnames: tuple[str, ...] = field(init=False, compare=False, repr=False)
    # Values of the query type at the end of the CNAME chain.
    values: tuple[Any, ...] = field(init=False, compare=False, repr=False)
    # Values of the query type owned by the query name itself (not through a CNAME).
    direct: tuple[Any, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        name, rdtype = self.query.name, self.query.rdtype
        rrs = self.rrs
        direct = tuple(v for o, t, v in rrs if t == rdtype and o == name)
        chain: list[str] = []
        if any(t == "CNAME" for _, t, _ in rrs):
            at = name
            while len(chain) < 16:
                target = next((v for o, t, v in rrs if o == at and t == "CNAME"), None)
                if target is None or target in chain:
                    break
                chain.append(target)
                at = target
        values = direct
        if chain and rdtype != "CNAME":
            end = chain[-1]
            values = tuple(v for o, t, v in rrs if t == rdtype and o == end)
        object.__setattr__(self, "cnames", tuple(chain))
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "direct", direct)

    @classmethod
    def failure(cls, query: Query, status: str) -> Answer:
        return cls(query, status)

    @classmethod
    def from_message(cls, query: Query, message: Message) -> Answer:
        status = message.rcode
        if status == NOERROR and message.referral:
            status = LAME
        return cls(query, status, message.answer)

    @property
    def temporary(self) -> bool:
        return self.status in TEMPORARY

    @property
    def reason(self) -> str:
        """``NXDOMAIN``, ``NODATA``, a failure status, or ``""`` when there are values."""
        if self.status == NOERROR:
            return "" if self.values else "NODATA"
        return self.status
