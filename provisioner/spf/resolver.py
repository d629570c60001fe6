"""What the SPF evaluator needs from DNS (RFC 7208 §4.4, §5): a protocol and its two failures.

Production wraps a real DNS client in a :class:`Resolver`; tests serve fixture data. This module
imports nothing outside the standard library, so the evaluator stays pure.
"""

from __future__ import annotations

from typing import Any, Protocol


class NXDomain(Exception):
    """Raised by a resolver when the queried name does not exist (RCODE 3)."""


class TempError(Exception):
    """Raised by a resolver for a timeout, SERVFAIL or any other transient DNS failure."""


class Resolver(Protocol):
    """What check_host() needs from DNS.

    ``name`` is an absolute name without the trailing dot, in any letter case. Answers: for
    "TXT" one str per RR (its strings joined with nothing between), "A"/"AAAA" address str,
    "MX" (preference, exchange) tuples, "PTR" names. Raise :class:`NXDomain` for a name that
    does not exist (an empty list means NODATA) and :class:`TempError` for a timeout or SERVFAIL.
    CNAMEs are followed by the resolver.
    """

    def query(self, name: str, rdtype: str) -> list[Any]: ...
