"""The DNS client against hostile or broken servers on 127.0.0.1 (issue 10, DESIGN §13):
answers are accepted only as responses (QR) to the query's own ID and question on every
transport, IDs and source ports are unpredictable, and truncation followed by a silent TCP
service costs one deadline per round, not one per query."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator

import dns.flags
import dns.message
import dns.rrset
import pytest

from provisioner.dnsclient import DnsClient, Query, Server
from provisioner.dnsclient.engine import PORT_QUERIES, Engine


class Stub:
    """A UDP (and TCP) server on 127.0.0.1 that answers each query as ``reply`` says."""

    def __init__(self, reply: Callable[[bytes], bytes | None],
                 tcp: Callable[[bytes], bytes | None] | None = None) -> None:
        for _ in range(50):  # a free UDP port whose TCP twin is free too
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.tcp.listen(64)
        self.reply, self.tcp_reply = reply, tcp
        self.seen: list[tuple[int, int]] = []  # (query ID, client port)
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._serve_udp, daemon=True),
                        threading.Thread(target=self._serve_tcp, daemon=True)]
        for t in self.threads:
            t.start()

    def _serve_udp(self) -> None:
        self.udp.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                wire, peer = self.udp.recvfrom(65535)
            except OSError:
                continue
            self.seen.append((int.from_bytes(wire[:2], "big"), peer[1]))
            out = self.reply(wire)
            if out is not None:
                self.udp.sendto(out, peer)

    def _serve_tcp(self) -> None:
        self.tcp.settimeout(0.1)
        held: list[socket.socket] = []
        while not self.stopped.is_set():
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                continue
            conn.settimeout(2)
            try:
                data = conn.recv(65535)
            except OSError:
                conn.close()
                continue
            out = self.tcp_reply(data[2:]) if self.tcp_reply else None
            if out is None:
                held.append(conn)  # accept, read, never answer
                continue
            conn.sendall(len(out).to_bytes(2, "big") + out)
            conn.close()
        for c in held:
            c.close()

    def stop(self) -> None:
        self.stopped.set()
        for t in self.threads:
            t.join(2)
        self.udp.close()
        self.tcp.close()

    @property
    def server(self) -> Server:
        return Server("127.0.0.1", self.port)


def answer(wire: bytes, *, truncated: bool = False, qid: int | None = None,
           name: str | None = None) -> bytes:
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    if name is not None:
        response.question = [dns.rrset.RRset(dns.name.from_text(name), 1, 16)]  # type: ignore[attr-defined]
    response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "TXT",
                                               '"v=spf1 -all"'))
    if truncated:
        response.flags |= dns.flags.TC
        response.answer = []
    if qid is not None:
        response.id = qid
    return response.to_wire()


@pytest.fixture
def stubs() -> Iterator[list[Stub]]:
    made: list[Stub] = []
    yield made
    for s in made:
        s.stop()


def test_an_echoed_query_is_not_an_answer(stubs: list[Stub]) -> None:
    stub = Stub(lambda wire: wire)  # sends the query back: QR=0
    stubs.append(stub)
    engine = Engine(timeout=0.3, attempts=2)
    try:
        result = engine.run([Query(stub.server, "a.example.", "TXT")])
    finally:
        engine.close()
    assert result[Query(stub.server, "a.example.", "TXT")].status == "timeout"


def test_ids_and_source_ports_are_unpredictable(stubs: list[Stub]) -> None:
    stub = Stub(lambda wire: answer(wire))
    stubs.append(stub)
    # One copy per query: a retransmission (a loaded machine delaying the stub past the
    # adaptive 50 ms floor) would add IDs; what is counted here is IDs and ports, not RTO.
    engine = Engine(timeout=1.0, min_rto=1.0)
    try:
        for round_ in range(4):  # four rounds of lookups, as a verify pass makes
            engine.run([Query(stub.server, f"n{round_}-{i}.example.", "TXT")
                        for i in range(PORT_QUERIES)])
    finally:
        engine.close()
    ids = [qid for qid, _ in stub.seen]
    assert len(ids) == 4 * PORT_QUERIES
    steps = sum(1 for a, b in itertools.pairwise(ids) if (b - a) & 0xFFFF == 1)
    assert steps < len(ids) // 20  # not a counter
    assert len(set(ids)) > len(ids) * 0.9
    assert len({port for _, port in stub.seen}) >= 4  # a new source port each round


def test_a_tcp_answer_with_another_id_or_question_is_refused(stubs: list[Stub]) -> None:
    wrong_id = Stub(lambda w: answer(w, truncated=True),
                    tcp=lambda w: answer(w, qid=(int.from_bytes(w[:2], "big") + 1) & 0xFFFF))
    wrong_question = Stub(lambda w: answer(w, truncated=True),
                          tcp=lambda w: answer(w, name="other.example."))
    echo = Stub(lambda w: answer(w, truncated=True), tcp=lambda w: w)
    right = Stub(lambda w: answer(w, truncated=True), tcp=lambda w: answer(w))
    stubs.extend([wrong_id, wrong_question, echo, right])
    engine = Engine(timeout=1.0)
    try:
        got = engine.run([Query(s.server, "a.example.", "TXT") for s in stubs])
    finally:
        engine.close()
    status = {s.port: got[Query(s.server, "a.example.", "TXT")].status for s in stubs}
    assert [status[s.port] for s in stubs] == ["FORMERR", "FORMERR", "FORMERR", "NOERROR"]
    assert got[Query(right.server, "a.example.", "TXT")].values == ("v=spf1 -all",)


def test_truncation_then_a_silent_tcp_service_costs_one_deadline(stubs: list[Stub]) -> None:
    """40 domains, each with names the server truncates and then never answers over TCP."""
    stub = Stub(lambda w: answer(w, truncated=True), tcp=None)
    stubs.append(stub)
    client = DnsClient(nameservers=(stub.server,), timeout=0.5, attempts=2)
    started = time.monotonic()
    try:
        for round_ in range(3):
            got = client.lookup_many(Query(stub.server, f"d{i}-{round_}.example.", "TXT")
                                     for i in range(40))
            assert all(a.status == "timeout" for a in got.values())
    finally:
        client.close()
    # One TCP deadline (timeout x attempts = 1 s) per round at most, not 1 s per query (120 s).
    assert time.monotonic() - started < 8
