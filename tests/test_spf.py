"""The SPF library's own contract: parsing, messages, lookup counting and check_host() details
that the RFC 7208 suite does not pin down (counters, HELO identity, %{t} and %{r}, caching)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioner.spf import (
    NXDomain,
    SpfRecord,
    SpfSyntaxError,
    TempError,
    Term,
    check_host,
    count_lookup_terms,
    is_spf,
    parse,
)
from provisioner.spf.parse import compile_record


class DictResolver:
    """A zone as {(name, rdtype): answers}; a name absent under every type is NXDOMAIN."""

    def __init__(
        self, zone: dict[tuple[str, str], list[Any]], timeout: frozenset[str] = frozenset()
    ) -> None:
        self.zone = {(n.lower(), t): v for (n, t), v in zone.items()}
        self.timeout = timeout
        self.queries: list[tuple[str, str]] = []

    def query(self, name: str, rdtype: str) -> list[Any]:
        self.queries.append((name, rdtype))
        key = name.lower()
        if key in self.timeout:
            raise TempError(name)
        if (key, rdtype) in self.zone:
            return list(self.zone[(key, rdtype)])
        if any(n == key for n, _ in self.zone):
            return []
        raise NXDomain(name)


# -- is_spf (§4.5) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("txt", ["v=spf1", "v=spf1 -all", "V=SPF1 a", "v=Spf1  ", "v=spf1 "])
def test_is_spf_accepts_the_version_then_space_or_end(txt: str) -> None:
    assert is_spf(txt)


@pytest.mark.parametrize("txt", ["v=spf10", "v=spf1mx", "v=spf1\t-all", " v=spf1", "spf1", "",
                                 "v=spf2.0/pra", "v=DMARC1; p=none"])
def test_is_spf_rejects_anything_else(txt: str) -> None:
    assert not is_spf(txt)


# -- parse: values ---------------------------------------------------------------------------------

def test_parse_gives_terms_as_written() -> None:
    record = parse("v=spf1 a/24 -mx:Mail.Example.com/24//64 ~IP4:192.0.2.0/24 include:_spf.x.com "
                   "?all redirect=_spf.example.com exp=why.%{d} Custom.Mod=x")
    assert record.terms == (
        Term("mechanism", "+", "a", "/24", "a/24"),
        Term("mechanism", "-", "mx", "Mail.Example.com/24//64", "-mx:Mail.Example.com/24//64"),
        Term("mechanism", "~", "ip4", "192.0.2.0/24", "~IP4:192.0.2.0/24"),
        Term("mechanism", "+", "include", "_spf.x.com", "include:_spf.x.com"),
        Term("mechanism", "?", "all", None, "?all"),
        Term("modifier", "", "redirect", "_spf.example.com", "redirect=_spf.example.com"),
        Term("modifier", "", "exp", "why.%{d}", "exp=why.%{d}"),
        Term("modifier", "", "custom.mod", "x", "Custom.Mod=x"),
    )


def test_str_is_canonical_spacing_and_version() -> None:
    record = parse("V=SPF1   a  -all   ")
    assert str(record) == "v=spf1 a -all"
    assert str(parse("v=spf1")) == "v=spf1"
    assert parse(str(record)) == record


def test_records_are_frozen() -> None:
    record = parse("v=spf1 -all")
    with pytest.raises(AttributeError):
        record.terms = ()  # type: ignore[misc]


@pytest.mark.parametrize(("txt", "count"), [
    ("v=spf1 -all", 0),
    ("v=spf1 ip4:192.0.2.1 ip6:2001:db8::/32 -all", 0),
    ("v=spf1 a mx ptr exists:%{i}.x.example include:a.example -all", 5),
    ("v=spf1 include:a.example redirect=b.example", 2),
    ("v=spf1 exp=explain.example a=not-a-mechanism -all", 0),
])
def test_count_lookup_terms_counts_dns_terms_of_the_record_itself(txt: str, count: int) -> None:
    assert count_lookup_terms(parse(txt)) == count


# -- parse: errors say what and where ----------------------------------------------------------

@pytest.mark.parametrize(("txt", "what", "term", "position"), [
    ("v=spf1 -all moo", "unknown mechanism 'moo'", "moo", 12),
    ("v=spf1 redirect:x.example.com", "redirect is a modifier", "redirect:x.example.com", 7),
    ("v=spf1 a/33", "bad ip4 cidr length /33", "a/33", 9),
    ("v=spf1 ip4:192.0.2.1/032", "bad ip4 cidr length /032", "ip4:192.0.2.1/032", 21),
    ("v=spf1 ip6:2001:db8::/129", "bad ip6 cidr length /129", "ip6:2001:db8::/129", 22),
    ("v=spf1 ip4:192.0.2", "bad ip4-network '192.0.2'", "ip4:192.0.2", 11),
    ("v=spf1 ip6:fe80::1%eth0", "bad ip6-network", "ip6:fe80::1%eth0", 11),
    ("v=spf1 a:111.222.33.44", "valid top label", "a:111.222.33.44", 9),
    ("v=spf1 include:", "empty domain-spec", "include:", 15),
    ("v=spf1 include", "include needs ':'", "include", 14),
    ("v=spf1 exists:%{x}.example.com", "macro letter 'x' not allowed", "exists:%{x}.example.com",
     14),
    ("v=spf1 a:%{c}.example.com", "macro letter 'c' not allowed", "a:%{c}.example.com", 9),
    ("v=spf1 a:foo%(ir).example.com", "invalid macro '%(i'", "a:foo%(ir).example.com", 12),
    ("v=spf1 exists:%{d0}.example.com", "must be nonzero", "exists:%{d0}.example.com", 14),
    ("v=spf1 -all exp=a.example exp=b.example", "exp= appears more than once", "exp=b.example",
     26),
    ("v=spf1 redirect=a.example redirect=a.example", "redirect= appears more than once",
     "redirect=a.example", 26),
    ("v=spf1 1up=foo", "not a mechanism or modifier", "1up=foo", 7),
    ("v=spf1 all:x", "'all' takes no argument", "all:x", 10),
    ("v=spf1 ptr/24", "ptr takes no cidr length", "ptr/24", 10),
    ("v=spf1 foo=%", "bad macro-string in modifier foo=", "foo=%", 11),
])
def test_parse_errors_say_what_and_where(txt: str, what: str, term: str, position: int) -> None:
    with pytest.raises(SpfSyntaxError) as caught:
        parse(txt)
    error = caught.value
    assert what in str(error)
    assert error.term == term
    assert error.position == position
    assert f"column {position + 1}" in str(error)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(("txt", "what", "position"), [
    ("v=spf1 a:mail.example.com\r-all", "U+000D", 25),
    ("v=spf1 a:\u00e9.example.com", "U+00E9", 9),
    ("v=spf10 a", "not an SPF record", 0),
    ("", "not an SPF record", 0),
])
def test_record_level_errors(txt: str, what: str, position: int) -> None:
    with pytest.raises(SpfSyntaxError) as caught:
        parse(txt)
    assert what in str(caught.value)
    assert caught.value.position == position


# -- hypothesis: round trip and robustness ------------------------------------------------------

_label = st.from_regex(r"[a-z0-9_][a-z0-9_-]{0,9}", fullmatch=True)
_toplabel = st.from_regex(r"[a-z]{2,6}|xn--[a-z0-9]{2,6}", fullmatch=True)
_macro = st.sampled_from(["%{d}", "%{i}", "%{ir}.%{v}", "%{l2r-}", "%{D2}", "%{s}", "%{h}",
                          "%{o}", "%{p}", "%%", "%_", "%-"])
_domain = st.one_of(
    st.builds(lambda ls, top, dot: ".".join([*ls, top]) + dot,
              st.lists(_label, min_size=1, max_size=3), _toplabel, st.sampled_from(["", "."])),
    st.builds(lambda m, ls, top: ".".join([m, *ls, top]), _macro, st.lists(_label, max_size=2),
              _toplabel),
    _macro.filter(lambda m: m.startswith("%{")),
)
_qualifier = st.sampled_from(["", "+", "-", "~", "?"])
_cidr4 = st.one_of(st.just(""), st.integers(0, 32).map(lambda n: f"/{n}"))
_cidr6 = st.one_of(st.just(""), st.integers(0, 128).map(lambda n: f"//{n}"))
_ip4 = st.ip_addresses(v=4).map(str)
_ip6 = st.ip_addresses(v=6).map(str)


def _mechanism(name: str) -> st.SearchStrategy[str]:
    if name == "all":
        return st.just("all")
    if name in ("include", "exists"):
        return _domain.map(lambda d: f"{name}:{d}")
    if name == "ptr":
        return st.one_of(st.just("ptr"), _domain.map(lambda d: f"ptr:{d}"))
    if name == "ip4":
        return st.builds(lambda a, c: f"ip4:{a}{c}", _ip4, _cidr4)
    if name == "ip6":
        return st.builds(lambda a, c: f"ip6:{a}{c.replace('//', '/')}", _ip6, _cidr6)
    bare = st.builds(lambda c4, c6: f"{name}{c4}{c6}", _cidr4, _cidr6)
    full = st.builds(lambda d, c4, c6: f"{name}:{d}{c4}{c6}", _domain, _cidr4, _cidr6)
    return st.one_of(bare, full)


_LOOKUP = frozenset({"include", "a", "mx", "ptr", "exists"})
_directive = st.sampled_from(sorted(_LOOKUP | {"all", "ip4", "ip6"})).flatmap(
    lambda name: st.builds(
        lambda q, m, upper: ((q + m.upper()) if upper else q + m, name in _LOOKUP),
        _qualifier, _mechanism(name), st.booleans(),
    )
)
_unknown_modifier = st.builds(
    lambda n, v: (f"{n}={v}", False),
    st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,8}", fullmatch=True).filter(
        lambda n: n.lower() not in ("redirect", "exp")),
    st.from_regex(r"[\x21-\x24\x26-\x7e]{0,8}", fullmatch=True),
)


@st.composite
def valid_records(draw: st.DrawFn) -> tuple[str, int]:
    """A valid record's text, written loosely, and how many of its terms cost a lookup."""
    terms = draw(st.lists(st.one_of(_directive, _unknown_modifier), max_size=8))
    for modifier in ("redirect", "exp"):
        if draw(st.booleans()):
            at = draw(st.integers(0, len(terms)))
            terms.insert(at, (f"{modifier}={draw(_domain)}", modifier == "redirect"))
    spaces = st.sampled_from([" ", "  ", "   "])
    text = draw(st.sampled_from(["v=spf1", "V=SPF1", "v=Spf1"]))
    for term, _ in terms:
        text += draw(spaces) + term
    return text + draw(st.sampled_from(["", " ", "  "])), sum(cost for _, cost in terms)


@settings(max_examples=400)
@given(valid_records())
def test_valid_records_round_trip_through_their_canonical_text(case: tuple[str, int]) -> None:
    record = parse(case[0])
    assert isinstance(record, SpfRecord)
    assert parse(str(record)) == record
    assert str(parse(str(record))) == str(record)


@settings(max_examples=300)
@given(valid_records())
def test_count_lookup_terms_matches_the_terms(case: tuple[str, int]) -> None:
    txt, lookups = case
    assert count_lookup_terms(parse(txt)) == lookups


_fragments = st.sampled_from(["v=spf1", " ", "a", "mx", "ptr", "ip4", "ip6", "include", "exists",
                              "all", "redirect", "exp", ":", "/", "//", "=", "%", "%{", "}", "d",
                              "l2r-", ".", "example", "com", "1", "33", "::", "-", "+", "~", "?",
                              "\x00", "\t", "\u00e9", "192.0.2.1", "0" * 5000])


@settings(max_examples=500)
@given(st.one_of(
    st.text(),
    st.text().map(lambda t: "v=spf1 " + t),
    st.lists(_fragments, max_size=30).map("".join),
    st.lists(_fragments, max_size=30).map(lambda f: "v=spf1 " + "".join(f)),
))
def test_parse_raises_only_spf_syntax_error(txt: str) -> None:
    try:
        record = parse(txt)
    except SpfSyntaxError:
        return
    assert parse(str(record)) == record


# -- check_host: details the suite leaves open -------------------------------------------------

def test_helo_identity_is_postmaster_at_helo() -> None:
    resolver = DictResolver({
        ("mail.example.com", "TXT"): ["v=spf1 -all exp=why.example.com"],
        ("why.example.com", "TXT"): ["%{s} via %{h} from %{c}, checked by %{r} at %{t}"],
    })
    got = check_host("192.0.2.1", "mail.example.com", "", helo="mail.example.com",
                     resolver=resolver, receiver="mx.receiver.example", now=1700000000.7)
    assert got.result == "fail"
    assert got.explanation == ("postmaster@mail.example.com via mail.example.com from 192.0.2.1, "
                               "checked by mx.receiver.example at 1700000000")


def test_counters_span_includes_and_redirects() -> None:
    resolver = DictResolver({
        ("example.com", "TXT"): ["v=spf1 a:gone1.example.com include:inc.example.com "
                                 "redirect=last.example.com"],
        ("inc.example.com", "TXT"): ["v=spf1 mx a:gone2.example.com"],
        ("inc.example.com", "MX"): [(10, "mx.example.com")],
        ("mx.example.com", "A"): ["198.51.100.1"],
        ("last.example.com", "TXT"): ["v=spf1 ip4:192.0.2.0/24 -all"],
    })
    got = check_host("192.0.2.9", "example.com", "a@example.com", resolver=resolver)
    assert (got.result, got.lookups, got.void_lookups) == ("pass", 5, 2)
    assert "ip4:192.0.2.0/24" in got.reason


def test_ipv4_mapped_client_is_ipv4_and_invalid_ip_raises() -> None:
    resolver = DictResolver({("example.com", "TXT"): ["v=spf1 ip4:192.0.2.0/24 -all"]})
    assert check_host("::ffff:192.0.2.7", "example.com", "x@example.com",
                      resolver=resolver).result == "pass"
    with pytest.raises(ValueError):
        check_host("not-an-ip", "example.com", "x@example.com", resolver=resolver)


def test_temperror_and_none_carry_reasons() -> None:
    resolver = DictResolver({}, timeout=frozenset({"slow.example.com"}))
    slow = check_host("192.0.2.1", "slow.example.com", "x@slow.example.com", resolver=resolver)
    assert slow.result == "temperror" and "slow.example.com" in slow.reason
    missing = check_host("192.0.2.1", "gone.example.com", "x@gone.example.com", resolver=resolver)
    assert missing.result == "none" and missing.explanation == ""


def test_a_shared_include_is_parsed_once() -> None:
    platform = "v=spf1 ip4:203.0.113.0/24 -all"
    compile_record.cache_clear()
    for n in range(50):
        resolver = DictResolver({
            (f"c{n}.example.com", "TXT"): ["v=spf1 include:spf.platform.example ~all"],
            ("spf.platform.example", "TXT"): [platform],
        })
        got = check_host("203.0.113.5", f"c{n}.example.com", "", helo=f"c{n}.example.com",
                         resolver=resolver)
        assert got.result == "pass"
    info = compile_record.cache_info()
    # Two distinct texts (the customers' records are identical, and the platform's): two parses.
    assert (info.misses, info.hits) == (2, 98)
