"""check_host() (RFC 7208 §4): evaluate a sender's SPF policy through an injected resolver.

The evaluator never touches the network itself: a :class:`Resolver` answers its queries, so
tests serve fixture data and production wraps a real DNS client. Counters for the §4.6.4 limits
live in one :class:`_Evaluation` per check_host() call and are shared by includes and redirects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from provisioner.spf.macro import EXP_LETTERS, MacroError, MacroString, expand, parse_macro_string
from provisioner.spf.parse import (
    TOPLABEL,
    CompiledRecord,
    Directive,
    SpfSyntaxError,
    compile_record,
    is_spf,
)
from provisioner.spf.resolver import NXDomain, Resolver, TempError

#: §4.6.4 limits.
MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX_NAMES = 10
MAX_PTR_NAMES = 10

_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


@dataclass(frozen=True, slots=True)
class SpfResult:
    """The outcome of check_host() (§2.6).

    ``result`` is one of pass, fail, softfail, neutral, none, permerror, temperror;
    ``explanation`` the expanded exp= text for a fail (§6.2), "" when there is none; ``reason``
    says which term matched or why evaluation stopped; ``lookups`` and ``void_lookups`` are the
    §4.6.4 counters across every include and redirect.
    """

    result: str
    explanation: str
    reason: str
    lookups: int
    void_lookups: int


def check_host(
    ip: str,
    domain: str,
    sender: str,
    *,
    helo: str = "",
    resolver: Resolver,
    receiver: str = "unknown",
    now: float | None = None,
) -> SpfResult:
    """Evaluate the SPF policy of ``domain`` for a client at ``ip`` (§4).

    ``sender`` is the MAIL FROM address; when it is empty the HELO identity is checked as
    "postmaster@<helo>" (§2.3), and a sender without local-part gets "postmaster" (§4.3).
    ``receiver`` is %{r} and ``now`` (seconds since the epoch, default the clock) %{t} (§7.3).
    An IPv4-mapped IPv6 ``ip`` is treated as IPv4 (§5). Raises ValueError if ``ip`` is not an
    IP address; every DNS or policy problem is a result, never an exception.
    """
    client = _Client.of(ip)
    if not sender:
        sender = f"postmaster@{helo}"
    local, _, sender_domain = sender.rpartition("@")
    local = local or "postmaster"
    ev = _Evaluation(
        resolver=resolver,
        client=client,
        sender=f"{local}@{sender_domain}",
        local=local,
        sender_domain=sender_domain,
        helo=helo,
        receiver=receiver,
        timestamp=str(int(time.time() if now is None else now)),
    )
    try:
        result, explanation, reason = ev.check(domain, want_exp=True)
    except _Abort as abort:
        result, explanation, reason = abort.result, "", abort.reason
    return SpfResult(result, explanation, reason, ev.lookups, ev.void_lookups)


class _Abort(Exception):
    """permerror or temperror: ends the whole check_host(), through includes (§5.2, §6.1)."""

    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Client:
    """The client address with what macros and matching need, computed once."""

    address: IPv4Address | IPv6Address
    value: int
    bits: int
    rdtype: str
    i: str  # %{i}: dotted quad, or dot-separated upper-case nibbles for IPv6 (§7.3)
    v: str  # %{v}

    @classmethod
    @lru_cache(maxsize=256)  # the platform's few sending IPs, once per check_host() each
    def of(cls, ip: str) -> _Client:
        address = ip_address(ip.strip())
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # §5: IPv4-mapped IPv6 is IPv4
        if isinstance(address, IPv4Address):
            return cls(address, int(address), 32, "A", str(address), "in-addr")
        nibbles = ".".join(f"{int(address):032X}")
        return cls(address, int(address), 128, "AAAA", nibbles, "ip6")

    def in_prefix(self, answers: list[Any], cidr: int) -> bool:
        """Whether any address among ``answers`` is in the client's /cidr network (§5.3)."""
        shift = self.bits - cidr
        want = self.value >> shift
        kind = type(self.address)
        for answer in answers:
            try:
                if int(kind(str(answer))) >> shift == want:
                    return True
            except ValueError:
                continue  # a resolver's odd answer is no match, not a crash
        return False


def _domain_name(name: str) -> str | None:
    """A queryable name from an expanded domain-spec, or None (§4.3, §7.3).

    One trailing dot is dropped; over 253 octets, labels are removed from the left until it
    fits (§7.3); an empty label or a label over 63 octets makes it unusable. RFC 7208 leaves
    the result for such names undefined: callers treat it like a name that does not exist.
    """
    if name.endswith("."):
        name = name[:-1]
    while len(name) > 253:
        name = name.partition(".")[2]
    if not name or any(not label or len(label) > 63 for label in name.split(".")):
        return None
    return name


def _check_domain(domain: str) -> str | None:
    """The <domain> to evaluate, or None if malformed: not multi-label, bad labels (§4.3)."""
    name = _domain_name(domain)
    if name is None or len(name) != len(domain.rstrip(".")):
        return None
    dot = name.rfind(".")
    if dot < 0 or TOPLABEL.fullmatch(name, dot + 1) is None:
        return None
    return name


class _Evaluation:
    """The mutable state of one check_host() call: counters and per-call caches."""

    def __init__(
        self,
        *,
        resolver: Resolver,
        client: _Client,
        sender: str,
        local: str,
        sender_domain: str,
        helo: str,
        receiver: str,
        timestamp: str,
    ) -> None:
        self.resolver = resolver
        self.client = client
        self.sender = sender
        self.local = local
        self.sender_domain = sender_domain
        self.helo = helo
        self.receiver = receiver
        self.timestamp = timestamp
        self.lookups = 0
        self.void_lookups = 0
        self._ptr_names: list[str] | None = None
        self._validated: dict[str, bool] = {}

    # -- record selection and the evaluation loop (§4.4 - §4.7) --------------------------------

    def check(self, domain: str, *, want_exp: bool) -> tuple[str, str, str]:
        """(result, explanation, reason) for ``domain``; raises _Abort for errors."""
        name = _check_domain(domain)
        if name is None:
            return "none", "", f"{domain!r} is not a valid domain name (§4.3)"
        compiled = self._select(name)
        if compiled is None:
            return "none", "", f"no SPF record at {name} (§4.5)"
        for directive in compiled.directives:
            if self._matches(directive, name):
                result = _QUALIFIERS[directive.term.qualifier]
                explanation = ""
                if result == "fail" and want_exp and compiled.exp is not None:
                    explanation = self._explain(compiled.exp, name)
                return result, explanation, f"{directive.term.text} matched in {name}"
        if compiled.redirect is not None:
            return self._redirect(compiled.redirect, name, want_exp)
        return "neutral", "", f"no mechanism matched in {name}: default neutral (§4.7)"

    def _select(self, name: str) -> CompiledRecord | None:
        try:
            answers = self.resolver.query(name, "TXT")
        except NXDomain:
            return None
        except TempError:
            raise _Abort("temperror", f"DNS error looking up TXT of {name} (§4.4)") from None
        records = [txt for txt in answers if is_spf(txt)]
        if not records:
            return None
        if len(records) > 1:
            raise _Abort("permerror", f"{len(records)} SPF records at {name} (§4.5)")
        try:
            return compile_record(records[0])
        except SpfSyntaxError as e:
            raise _Abort("permerror", f"{name}: {e}") from None

    def _redirect(self, spec: MacroString, name: str, want_exp: bool) -> tuple[str, str, str]:
        self._count_lookup("redirect")
        target = _domain_name(self._expand(spec, name))
        if target is None:
            raise _Abort("permerror", f"redirect= target in {name} is not a valid name (§6.1)")
        try:
            result, explanation, reason = self.check(target, want_exp=want_exp)
        except _Abort as e:
            raise _Abort(e.result, f"redirect={target}: {e.reason}") from None
        if result == "none":
            raise _Abort("permerror", f"redirect={target}: no SPF record there (§6.1)")
        return result, explanation, f"redirect={target}: {reason}"

    # -- mechanisms (§5) --------------------------------------------------------------------------

    def _matches(self, d: Directive, domain: str) -> bool:
        name = d.term.name
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            network = d.network
            return network is not None and self.client.address in network
        self._count_lookup(d.term.text)
        target = domain if d.domain is None else _domain_name(self._expand(d.domain, domain))
        if name == "include":
            return self._include(d, target)
        if target is None:
            self._void(d.term.text)  # an unqueryable name is treated as non-existent (§4.3)
            return False
        cidr = d.cidr4 if self.client.bits == 32 else d.cidr6
        if name == "a":
            return self.client.in_prefix(self._query(target, self.client.rdtype, d), cidr)
        if name == "mx":
            return self._mx(d, target, cidr)
        if name == "ptr":
            return self._ptr(target)
        return bool(self._query(target, "A", d))  # exists: always an A query (§5.7)

    def _include(self, d: Directive, target: str | None) -> bool:
        """§5.2: pass matches; fail, softfail, neutral do not; none is permerror."""
        if target is None:
            raise _Abort("permerror", f"{d.term.text}: not a valid domain name (§5.2)")
        try:
            result, _, reason = self.check(target, want_exp=False)
        except _Abort as e:
            raise _Abort(e.result, f"{d.term.text}: {e.reason}") from None
        if result == "none":
            raise _Abort("permerror", f"{d.term.text}: {reason}; include needs one (§5.2)")
        return result == "pass"

    def _mx(self, d: Directive, target: str, cidr: int) -> bool:
        """§5.4: more than 10 MX names is permerror (§4.6.4); a null MX (".") has no address."""
        answers = self._query(target, "MX", d)
        if len(answers) > MAX_MX_NAMES:
            raise _Abort("permerror", f"{d.term.text}: {len(answers)} MX names, more than "
                         f"{MAX_MX_NAMES} (§4.6.4)")
        for answer in answers:
            exchange = _domain_name(str(answer[1]))
            if exchange is None:
                continue
            addresses = self._query(exchange, self.client.rdtype, None)
            if self.client.in_prefix(addresses, cidr):
                return True
        return False

    def _ptr(self, target: str) -> bool:
        """§5.5: a validated PTR name equal to or under ``target``; DNS errors do not match."""
        suffix = "." + target.lower()
        for name in self._client_names():
            lower = name.lower()
            if (lower == suffix[1:] or lower.endswith(suffix)) and self._is_validated(name):
                return True
        return False

    def _client_names(self) -> list[str]:
        """The first 10 PTR names of the client (§4.6.4); a DNS error gives none (§5.5)."""
        if self._ptr_names is None:
            reverse = self.client.address.reverse_pointer
            try:
                answers = self.resolver.query(reverse, "PTR")
            except (NXDomain, TempError):
                answers = []
            names = (_domain_name(str(a)) for a in answers[:MAX_PTR_NAMES])
            self._ptr_names = [n for n in names if n is not None]
        return self._ptr_names

    def _is_validated(self, name: str) -> bool:
        """Whether ``name`` has an address equal to the client's; errors skip it (§5.5)."""
        key = name.lower()
        if key not in self._validated:
            try:
                answers = self.resolver.query(name, self.client.rdtype)
            except (NXDomain, TempError):
                answers = []
            self._validated[key] = self.client.in_prefix(answers, self.client.bits)
        return self._validated[key]

    # -- DNS with the §4.6.4 limits ---------------------------------------------------------------

    def _count_lookup(self, what: str) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _Abort("permerror", f"{what}: more than {MAX_LOOKUPS} DNS-querying terms "
                         "(§4.6.4)")

    def _void(self, what: str) -> None:
        self.void_lookups += 1
        if self.void_lookups > MAX_VOID_LOOKUPS:
            raise _Abort("permerror", f"{what}: more than {MAX_VOID_LOOKUPS} void lookups "
                         "(§4.6.4)")

    def _query(self, name: str, rdtype: str, d: Directive | None) -> list[Any]:
        """Query for a mechanism: errors are temperror (§5); for ``d``'s own query, an empty
        answer or NXDOMAIN is a void lookup (§4.6.4)."""
        try:
            answers = self.resolver.query(name, rdtype)
        except NXDomain:
            answers = []
        except TempError:
            raise _Abort("temperror", f"DNS error looking up {rdtype} of {name} (§5)") from None
        if not answers and d is not None:
            self._void(d.term.text)
        return answers

    # -- macros and explanations (§6.2, §7) -------------------------------------------------------

    def _expand(self, spec: MacroString, domain: str) -> str:
        if spec.literal is not None:
            return spec.literal
        return expand(spec, lambda letter: self._value(letter, domain))

    def _value(self, letter: str, domain: str) -> str:
        match letter:
            case "s":
                return self.sender
            case "l":
                return self.local
            case "o":
                return self.sender_domain
            case "d":
                return domain
            case "i":
                return self.client.i
            case "p":
                return self._validated_name(domain)
            case "v":
                return self.client.v
            case "h":
                return self.helo
            case "c":
                return str(self.client.address)
            case "r":
                return self.receiver
            case _:
                return self.timestamp

    def _validated_name(self, domain: str) -> str:
        """%{p} (§7.3): ``domain`` itself if validated, else a validated subdomain of it, else
        any validated name, else "unknown"."""
        validated = [n for n in self._client_names() if self._is_validated(n)]
        lower = domain.lower()
        for name in validated:
            if name.lower() == lower:
                return name
        for name in validated:
            if name.lower().endswith("." + lower):
                return name
        return validated[0] if validated else "unknown"

    def _explain(self, spec: MacroString, domain: str) -> str:
        """§6.2: one TXT record at the expanded name, macro-expanded; any problem gives ""."""
        target = _domain_name(self._expand(spec, domain))
        if target is None:
            return ""
        try:
            answers = self.resolver.query(target, "TXT")  # not counted: §4.6.4 covers terms
        except (NXDomain, TempError):
            return ""
        if len(answers) != 1:
            return ""
        try:
            text = parse_macro_string(str(answers[0]), EXP_LETTERS, explain=True)
        except MacroError:
            return ""
        return self._expand(text, domain)
