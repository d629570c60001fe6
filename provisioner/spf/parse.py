"""SPF record syntax (RFC 7208 §4.5, §4.6.1, §5, §6, §7.1, §12): text in, checked values out.

Parsing is pure and cached by record text: an evaluation that meets the same record through
several includes, or a verifier checking a thousand domains that all include the same platform
record, parses it once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Address, IPv6Network

from provisioner.errors import ProvisionerError
from provisioner.spf.macro import (
    DOMAIN_LETTERS,
    EXP_LETTERS,
    MacroError,
    MacroString,
    parse_macro_string,
)

MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
#: Mechanisms that cost a DNS lookup (§4.6.4); the "redirect" modifier costs one too.
LOOKUP_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})

_VERSION = "v=spf1"
_BAD_CHAR = re.compile(r"[^\x20-\x7e]")
_TERM = re.compile(r"[^ ]+")
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9._-]*)=(.*)")
_MECHANISM = re.compile(r"([-+~?]?)([A-Za-z][A-Za-z0-9]*)(.*)")
# Shortest domain-spec followed by an optional dual-cidr-length at the very end (§5.3, §5.4):
# "a:foo:bar/baz.example.com" has no cidr, "a:foo.example.com/24//64" has both.
_DUAL_CIDR = re.compile(r"(.*?)(?:/([0-9]+))?(?://([0-9]+))?")
_CIDR4 = re.compile(r"0|[1-9][0-9]?")
_CIDR6 = re.compile(r"0|[1-9][0-9]{0,2}")
_QNUM = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IP4 = re.compile(rf"{_QNUM}\.{_QNUM}\.{_QNUM}\.{_QNUM}")
_IP6_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
#: toplabel (§7.1): alphanumeric with a letter, or alphanumeric with inner dashes.
TOPLABEL = re.compile(r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9]")


class SpfSyntaxError(ProvisionerError, ValueError):
    """A record that check_host() must answer with "permerror" (§4.6, §4.6.1).

    ``position`` is the 0-based offset in ``record`` where the problem is, ``term`` the term
    holding it ("" when the problem is not inside one term). The message says what and where.
    """

    def __init__(self, what: str, *, record: str, position: int, term: str = "") -> None:
        where = f"term {term!r} at column {position + 1}" if term else f"column {position + 1}"
        super().__init__(f"{what} ({where} of {record!r})")
        self.what = what
        self.record = record
        self.position = position
        self.term = term


@dataclass(frozen=True, slots=True)
class Term:
    """One term of a record as written (§4.6.1).

    ``kind`` is "mechanism" or "modifier"; ``qualifier`` one of "+-~?" for a mechanism (an
    absent qualifier is "+", §4.6.2) and "" for a modifier; ``name`` is lower-case; ``value`` is
    the raw argument after ":" or "=", or the cidr part ("/24") of a bare "a"/"mx", and None
    when there is none; ``text`` is the term exactly as written.
    """

    kind: str
    qualifier: str
    name: str
    value: str | None
    text: str


@dataclass(frozen=True, slots=True)
class SpfRecord:
    """A syntactically valid SPF record: its terms in order (§4.6.1)."""

    terms: tuple[Term, ...]

    def __str__(self) -> str:
        """Canonical text: "v=spf1", then each term as written, separated by one space."""
        return " ".join((_VERSION, *(t.text for t in self.terms)))


@dataclass(frozen=True, slots=True)
class Directive:
    """A mechanism ready to evaluate (§5).

    ``domain`` is the parsed domain-spec, None for "the current domain" (a, mx, ptr) or when
    the mechanism takes none; ``network`` is set for ip4/ip6; ``cidr4``/``cidr6`` are the
    dual-cidr lengths for a/mx (§5.3, §5.4).
    """

    term: Term
    domain: MacroString | None = None
    network: IPv4Network | IPv6Network | None = None
    cidr4: int = 32
    cidr6: int = 128


@dataclass(frozen=True, slots=True)
class CompiledRecord:
    """A record with every term already parsed: what evaluation walks (§4.6)."""

    record: SpfRecord
    directives: tuple[Directive, ...]
    redirect: MacroString | None
    exp: MacroString | None


def is_spf(txt: str) -> bool:
    """Whether a TXT string is an SPF record: "v=spf1", case-insensitive, then SP or end (§4.5)."""
    return txt[:6].lower() == _VERSION and (len(txt) == 6 or txt[6] == " ")


def parse(txt: str) -> SpfRecord:
    """Parse a whole record, checking every term (§4.6: errors anywhere are errors).

    Raises :class:`SpfSyntaxError` for text that is not "v=spf1" (§4.5), characters outside
    printable 7-bit ASCII (§3), an unknown mechanism, a bad cidr or IP network (§5.6), a bad
    domain-spec or macro (§7.1) and a repeated redirect= or exp= (§6).
    """
    return compile_record(txt).record


def count_lookup_terms(record: SpfRecord) -> int:
    """Terms of this record itself that cost a DNS lookup (§4.6.4), not counting includes."""
    return sum(
        1
        for t in record.terms
        if (t.kind == "mechanism" and t.name in LOOKUP_MECHANISMS)
        or (t.kind == "modifier" and t.name == "redirect")
    )


@lru_cache(maxsize=4096)
def compile_record(txt: str) -> CompiledRecord:
    """Parse ``txt`` into a :class:`CompiledRecord`; cached by text, errors as :func:`parse`."""
    if not is_spf(txt):
        raise SpfSyntaxError("not an SPF record: 'v=spf1' then a space or the end expected",
                             record=txt, position=0)
    bad = _BAD_CHAR.search(txt)
    if bad is not None:
        raise SpfSyntaxError(
            f"character U+{ord(bad.group()):04X} not allowed: terms are printable 7-bit ASCII "
            "separated by spaces (§3, §4.6.1)", record=txt, position=bad.start())
    terms: list[Term] = []
    directives: list[Directive] = []
    modifiers: dict[str, MacroString] = {}
    for m in _TERM.finditer(txt, 6):
        parser = _TermParser(txt, m.group(), m.start())
        term, directive, spec = parser.parse()
        terms.append(term)
        if directive is not None:
            directives.append(directive)
        elif term.name in ("redirect", "exp"):
            if term.name in modifiers:
                raise parser.error(f"{term.name}= appears more than once (§6)")
            assert spec is not None
            modifiers[term.name] = spec
    return CompiledRecord(
        record=SpfRecord(tuple(terms)),
        directives=tuple(directives),
        redirect=modifiers.get("redirect"),
        exp=modifiers.get("exp"),
    )


class _TermParser:
    """Parses one term; knows where it is in the record so errors can say so."""

    def __init__(self, record: str, text: str, position: int) -> None:
        self.record = record
        self.text = text
        self.position = position

    def error(self, what: str, offset: int = 0) -> SpfSyntaxError:
        return SpfSyntaxError(what, record=self.record, position=self.position + offset,
                              term=self.text)

    def parse(self) -> tuple[Term, Directive | None, MacroString | None]:
        text = self.text
        mod = _MODIFIER.fullmatch(text)
        if mod is not None:
            name, value = mod.group(1).lower(), mod.group(2)
            term = Term("modifier", "", name, value, text)
            offset = mod.start(2)
            if name in ("redirect", "exp"):
                return term, None, self.domain_spec(value, offset)
            try:  # unknown-modifier = name "=" macro-string (§6, A)
                spec = parse_macro_string(value, EXP_LETTERS)
            except MacroError as e:
                raise self.error(f"bad macro-string in modifier {name}=: {e}",
                                 offset + e.offset) from None
            return term, None, spec
        mech = _MECHANISM.fullmatch(text)
        if mech is None:
            raise self.error("not a mechanism or modifier (§4.6.1)")
        qualifier, name, rest = mech.group(1) or "+", mech.group(2).lower(), mech.group(3)
        if name not in MECHANISMS:
            hint = f"; {name} is a modifier: write {name}=" if name in ("redirect", "exp") else ""
            raise self.error(f"unknown mechanism {mech.group(2)!r}{hint} (§5)")
        if rest and rest[0] not in ":/":
            raise self.error(f"unexpected {rest!r} after mechanism {name} (§5)", mech.start(3))
        value = rest[1:] if rest.startswith(":") else (rest or None)
        term = Term("mechanism", qualifier, name, value, text)
        return term, self.directive(term, rest, mech.start(3)), None

    def directive(self, term: Term, rest: str, at: int) -> Directive:
        name = term.name
        if name == "all":
            if rest:
                raise self.error("'all' takes no argument (§5.1)", at)
            return Directive(term)
        if name in ("include", "exists"):
            if not rest.startswith(":"):
                raise self.error(f"{name} needs ':' and a domain-spec (§5.2, §5.7)", at)
            return Directive(term, domain=self.domain_spec(rest[1:], at + 1))
        if name == "ptr":
            if rest.startswith("/"):
                raise self.error("ptr takes no cidr length (§5.5)", at)
            spec = self.domain_spec(rest[1:], at + 1) if rest else None
            return Directive(term, domain=spec)
        if name in ("a", "mx"):
            return self.dual_cidr(term, rest, at)
        if not rest.startswith(":"):
            raise self.error(f"{name} needs ':' and an address (§5.6)", at)
        return Directive(term, network=self.network(name, rest[1:], at + 1))

    def dual_cidr(self, term: Term, rest: str, at: int) -> Directive:
        if rest.startswith(":"):
            m = _DUAL_CIDR.fullmatch(rest, 1)
            assert m is not None  # the pattern matches any string
            spec: MacroString | None = self.domain_spec(m.group(1), at + 1)
        else:
            m = _DUAL_CIDR.fullmatch(rest)
            assert m is not None
            if m.group(1):
                raise self.error(f"bad dual-cidr-length {rest!r} (§5.3)", at)
            spec = None
        cidr4 = self.cidr(m.group(2), 4, at + m.start(2)) if m.group(2) is not None else 32
        cidr6 = self.cidr(m.group(3), 6, at + m.start(3)) if m.group(3) is not None else 128
        return Directive(term, domain=spec, cidr4=cidr4, cidr6=cidr6)

    def cidr(self, digits: str, version: int, at: int) -> int:
        pattern, top = (_CIDR4, 32) if version == 4 else (_CIDR6, 128)
        if pattern.fullmatch(digits) is None or int(digits) > top:
            raise self.error(f"bad ip{version} cidr length /{digits}: 0 to {top}, no leading "
                             "zero (§5.6)", at)
        return int(digits)

    def network(self, name: str, value: str, at: int) -> IPv4Network | IPv6Network:
        address, slash, length = value.partition("/")
        if name == "ip4":
            if _IP4.fullmatch(address) is None:
                raise self.error(f"bad ip4-network {address!r} (§5.6)", at)
            cidr = self.cidr(length, 4, at + len(address) + 1) if slash else 32
            return IPv4Network((address, cidr), strict=False)
        try:
            if _IP6_CHARS.fullmatch(address) is None:
                raise ValueError(address)
            parsed = IPv6Address(address)
        except ValueError:
            raise self.error(f"bad ip6-network {address!r} (§5.6)", at) from None
        cidr = self.cidr(length, 6, at + len(address) + 1) if slash else 128
        return IPv6Network((parsed, cidr), strict=False)

    def domain_spec(self, spec: str, at: int) -> MacroString:
        """domain-spec = macro-string domain-end; domain-end = "." toplabel ["."] / macro (§7.1)."""
        if not spec:
            raise self.error("empty domain-spec (§7.1)", at)
        try:
            ms = parse_macro_string(spec, DOMAIN_LETTERS)
        except MacroError as e:
            raise self.error(f"bad macro in domain-spec: {e} (§7.1)", at + e.offset) from None
        if not ms.ends_with_macro:
            tail = ms.tail[:-1] if ms.tail.endswith(".") else ms.tail
            dot = tail.rfind(".")
            if dot < 0 or TOPLABEL.fullmatch(tail, dot + 1) is None:
                raise self.error(f"domain-spec {spec!r} must end in a macro or '.' and a valid "
                                 "top label (not all-numeric, no leading or trailing dash) "
                                 "(§7.1)", at)
        return ms
