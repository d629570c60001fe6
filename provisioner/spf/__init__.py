"""A pure SPF library (RFC 7208): parse records, count lookups, evaluate check_host().

Nothing here touches the network: :func:`check_host` asks an injected :class:`Resolver`, so the
same code runs from test fixtures and from live DNS. Only the standard library is imported.
"""

from provisioner.spf.evaluate import (
    MAX_LOOKUPS,
    MAX_MX_NAMES,
    MAX_PTR_NAMES,
    MAX_VOID_LOOKUPS,
    SpfResult,
    check_host,
)
from provisioner.spf.parse import (
    SpfRecord,
    SpfSyntaxError,
    Term,
    count_lookup_terms,
    is_spf,
    parse,
)
from provisioner.spf.resolver import NXDomain, Resolver, TempError

__all__ = [
    "MAX_LOOKUPS",
    "MAX_MX_NAMES",
    "MAX_PTR_NAMES",
    "MAX_VOID_LOOKUPS",
    "NXDomain",
    "Resolver",
    "SpfRecord",
    "SpfResult",
    "SpfSyntaxError",
    "TempError",
    "Term",
    "check_host",
    "count_lookup_terms",
    "is_spf",
    "parse",
]
