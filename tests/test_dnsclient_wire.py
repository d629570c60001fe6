"""The hand-written wire reader (``provisioner.dnsclient.wire``) against dnspython's.

Responses are built at random with dnspython (TXT of several strings including empty, 255-octet
and non-ASCII ones, CNAME, MX, A, AAAA, NS, an SOA or NS in authority, mixed case, compression,
every RCODE verification meets, the TC bit), written with its compressor, then read by both.
What our reader extracts must be what dnspython reads. Random bytes and every truncation of a
valid message must raise :class:`WireError` (or parse), never ``IndexError`` and friends.
"""

from __future__ import annotations

import contextlib
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.dnsclient.wire import (
    WireError,
    make_query,
    parse_response,
    question,
    read_name,
)
from tests.watchdog import no_hang

# Label bytes: letters of both cases (compression is case-insensitive, RFC 1035 §4.1.4), digits,
# '-', '_', and a few octets outside ASCII (RFC 2181 §11: any octet is legal). No '.': the
# reader's text form joins labels with dots.
_LABEL_OCTETS = st.sampled_from(b"abcXYZ09-_" + bytes([0xC0, 0xE9, 0x7F, 0x20]))
labels = st.lists(_LABEL_OCTETS, min_size=1, max_size=12).map(bytes)
# Few distinct suffixes so the compressor finds shared tails.
suffixes = st.sampled_from([(b"example", b"com"), (b"Example", b"COM"), (b"dkim", b"secutix",
                                                                         b"com"), ()])
names = st.builds(lambda head, tail: dns.name.Name((*head, *tail, b"")),
                  st.lists(labels, min_size=1, max_size=3), suffixes)
txt_strings = st.lists(st.one_of(st.just(b""), st.just(b"x" * 255),
                                 st.binary(max_size=255),
                                 st.text(max_size=60).map(lambda s: s.encode()[:255])),
                       min_size=1, max_size=5)


def _txt(strings: list[bytes]) -> dns.rdata.Rdata:
    from dns.rdtypes.ANY.TXT import TXT
    return TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)


def _rdata(kind: str, data: Any) -> dns.rdata.Rdata:
    if kind == "TXT":
        return _txt(data)
    if kind in ("CNAME", "NS"):
        return dns.rdata.from_text("IN", kind, data.to_text())
    if kind == "MX":
        pref, exchange = data
        return dns.rdata.from_text("IN", "MX", f"{pref} {exchange.to_text()}")
    return dns.rdata.from_text("IN", kind, data)


records = st.one_of(
    st.tuples(st.just("TXT"), txt_strings),
    st.tuples(st.just("CNAME"), names),
    st.tuples(st.just("NS"), names),
    st.tuples(st.just("MX"), st.tuples(st.integers(0, 65535), names)),
    st.tuples(st.just("A"), st.ip_addresses(v=4).map(str)),
    st.tuples(st.just("AAAA"), st.ip_addresses(v=6).map(str)),
)
RCODES = [dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.SERVFAIL, dns.rcode.REFUSED,
          dns.rcode.FORMERR, dns.rcode.NOTIMP]


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    qname = draw(names)
    qtype = draw(st.sampled_from(["TXT", "CNAME", "MX", "A", "AAAA", "NS"]))
    query = dns.message.make_query(qname, qtype)
    response = dns.message.make_response(query)
    response.set_rcode(draw(st.sampled_from(RCODES)))
    if draw(st.booleans()):
        response.flags |= dns.flags.TC
    if draw(st.booleans()):
        response.flags &= ~dns.flags.AA
    else:
        response.flags |= dns.flags.AA
    aliases: set[dns.name.Name] = set()
    for owner, (kind, data) in draw(st.lists(st.tuples(st.one_of(st.just(qname), names),
                                                       records), max_size=6)):
        if kind == "CNAME":
            if owner in aliases:
                continue  # one CNAME per name (RFC 2181 §10.1): dnspython keeps only the last
            aliases.add(owner)
        rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.from_text(kind))
        rrset.add(_rdata(kind, data), 300)
        response.answer.append(rrset)
    authority = draw(st.sampled_from(["none", "soa", "ns"]))
    if authority == "soa":  # NXDOMAIN/NODATA carry the zone's SOA (RFC 2308 §2)
        zone = draw(names)
        response.authority.append(dns.rrset.from_text(
            zone, 300, "IN", "SOA", f"ns1.{zone} hostmaster.{zone} 1 7200 900 1209600 300"))
    elif authority == "ns":
        response.authority.append(dns.rrset.from_text(draw(names), 300, "IN", "NS",
                                                      "ns1.example.net."))
    return response.to_wire(max_size=65535)


def _name(name: dns.name.Name) -> tuple[bytes, ...]:
    """Labels compared as DNS compares them: ASCII case folded only (RFC 4343 §3)."""
    return tuple(label.lower() for label in name.labels[:-1])


def _ours(text: str) -> tuple[bytes, ...]:
    return tuple(label.encode("latin-1") for label in text.split(".")[:-1])


def _expected_value(rdata: dns.rdata.Rdata) -> Any:
    kind = dns.rdatatype.to_text(rdata.rdtype)
    if kind == "TXT":
        return b"".join(rdata.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
    if kind in ("CNAME", "NS"):
        return _name(rdata.target)  # type: ignore[attr-defined]
    if kind == "MX":
        return (rdata.preference, _name(rdata.exchange))  # type: ignore[attr-defined]
    return rdata.address  # type: ignore[attr-defined]


def _our_value(kind: str, value: Any) -> Any:
    if kind in ("CNAME", "NS"):
        return _ours(value)
    if kind == "MX":
        return (value[0], _ours(value[1]))
    return value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses())
def test_reader_extracts_what_dnspython_reads(wire: bytes) -> None:
    theirs = dns.message.from_wire(wire)
    ours = parse_response(wire)
    # The engine's fast path (question already matched, owners at 0xC00C not re-read) reads
    # the same message.
    assert parse_response(wire, read_name(wire, 12)[0]) == ours
    assert ours.qid == theirs.id
    assert ours.rcode == dns.rcode.to_text(theirs.rcode())
    assert ours.truncated == bool(theirs.flags & dns.flags.TC)
    assert ours.authoritative == bool(theirs.flags & dns.flags.AA)
    expected = [(_name(rrset.name), dns.rdatatype.to_text(rrset.rdtype), _expected_value(rd))
                for rrset in theirs.answer for rd in rrset]
    found = [(_ours(owner), kind, _our_value(kind, value)) for owner, kind, value in ours.answer]
    # dnspython groups records into RRsets and drops duplicates (RFC 2181 §5); so do we,
    # keeping wire order.
    assert len(found) == len(expected)
    assert sorted(map(repr, found)) == sorted(map(repr, expected))
    soa = [rrset.name for rrset in theirs.authority if rrset.rdtype == dns.rdatatype.SOA]
    assert (ours.soa_owner and _ours(ours.soa_owner)) == ((soa and _name(soa[0])) or None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses(), st.data())
def test_every_truncation_raises_the_readers_error(wire: bytes, data: st.DataObject) -> None:
    """No OPT in these messages: any proper prefix cuts a section the reader reads."""
    cut = data.draw(st.integers(0, len(wire) - 1))
    try:
        with no_hang(2, wire[:cut]):
            parse_response(wire[:cut])
    except WireError:
        return
    raise AssertionError(f"a {cut}-octet prefix of a {len(wire)}-octet message was accepted")


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.binary(max_size=600),
                 st.builds(lambda head, body: head + body,
                           st.sampled_from([bytes.fromhex("abcd81800001000100000000"),
                                            bytes.fromhex("abcd81830001000000010000"),
                                            bytes.fromhex("abcd8180000100ff00ff0000")]),
                           st.binary(max_size=300))))
def test_garbage_raises_only_the_readers_error(wire: bytes) -> None:
    with contextlib.suppress(WireError), no_hang(2, wire):
        parse_response(wire)


@settings(max_examples=200, deadline=None)
@given(names, st.sampled_from(["TXT", "CNAME", "MX", "A", "AAAA", "NS"]),
       st.integers(0, 65535), st.booleans())
def test_queries_we_build_are_what_dnspython_reads(name: dns.name.Name, rdtype: str, qid: int,
                                                   recursion: bool) -> None:
    text = b".".join(name.labels[:-1]).decode("latin-1") + "."
    if any(b"." in label or not label.isascii() or b" " in label for label in name.labels):
        return
    message = dns.message.from_wire(make_query(qid, question(text, rdtype), recursion=recursion))
    assert message.id == qid
    assert message.question[0].name == name
    assert dns.rdatatype.to_text(message.question[0].rdtype) == rdtype
    assert bool(message.flags & dns.flags.RD) == recursion
    assert message.edns == 0 and message.payload == 1232
