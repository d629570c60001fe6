"""Many DNS queries at once over UDP, each server with its own window, RTT estimate and retries.

One connected, non-blocking UDP socket per server is reused for all its queries (RFC 1035
§4.2.1); up to ``window`` queries are in flight per server, matched by ID and question
(RFC 5452 §4.2). All servers share one loop, so a slow or dead server never delays the others.

Retransmission is adaptive, after RFC 6298: each server keeps a smoothed round-trip time and
its variation (SRTT, RTTVAR, §2), and a query unanswered after the server's RTO is sent again
with a fresh ID. RTO = SRTT + 4·RTTVAR, at least :data:`MIN_RTO` (a loopback server answers in
well under a millisecond; the floor absorbs scheduling noise) and at most the caller's
``timeout``, which is also the RTO of a server never heard yet (§2.1). Because every copy has
its own ID, an answer says which copy it answers, so every answer is an unambiguous sample
(the purpose of Karn's rule, §3, met as RFC 7323 §4 meets it with timestamps), and an answer to
any copy completes the query. Each further copy waits ``backoff`` times longer (§5.5), and the
last one waits at least ``timeout``: a lost datagram costs one RTO (tens of milliseconds on a
LAN), while a query is declared timed out only after the caller's timeout. A server that never
answered and let one query exhaust its attempts is declared down and its queued queries fail
at once; it stays down, and later queries to it fail at once, until :meth:`Engine.revive`
(verify calls it before each ``--wait`` pass): a dead server costs one series of timeouts
per pass, not one per round of dependent lookups. Truncated answers are asked again over TCP
(RFC 7766 §5).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import selectors
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from provisioner.dnsclient.types import Answer, Query, Server
from provisioner.dnsclient.wire import WireError, make_query, parse_response, question

log = logging.getLogger(__name__)
_Finish = Callable[[Query, Answer], None]

MIN_RTO = 0.05  # seconds: the floor of a server's retransmission timeout
# A server's socket (its source port) serves at most this many queries, then a new one is
# opened between two rounds (RFC 5452 §9.2: source ports as unpredictable as IDs).
PORT_QUERIES = 64
_random = random.SystemRandom()
MIN_WINDOW = 8.0  # queries in flight per server, however lossy it is
_GRANULARITY = 0.001  # G of RFC 6298 §2: the clock's granularity, as a floor of 4·RTTVAR


@dataclass(slots=True, eq=False)
class _Flight:
    query: Query
    qsection: bytes
    attempt: int
    deadline: float
    copies: list[tuple[int, float]] = field(default_factory=list)  # (ID, when sent) per copy
    done: bool = False


@dataclass(slots=True)
class _Channel:
    server: Server
    sock: socket.socket
    rto: float
    pending: deque[Query] = field(default_factory=deque)
    inflight: dict[int, _Flight] = field(default_factory=dict)  # every copy's ID
    active: int = 0  # distinct queries in flight (the window counts these)
    answered: int = 0
    sent: int = 0  # datagrams sent from this socket (its source port)
    cwnd: float = 1.0  # congestion window: queries in flight at most (RFC 5681, for DNS)
    ssthresh: float = 0.0
    cut_at: float = 0.0  # when cwnd was last halved
    srtt: float | None = None
    rttvar: float = 0.0

    def new_id(self) -> int:
        """An ID no copy in flight holds, drawn from the system's random source: an off-path
        attacker must guess it with the source port (RFC 5452 §9.2)."""
        while True:
            qid = _random.getrandbits(16)
            if qid not in self.inflight:
                return qid


_Heap = list[tuple[float, int, _Channel, _Flight]]


class Engine:
    """Sends queries, collects :class:`Answer` values. Not thread-safe; close it when done.

    ``timeout`` is the ceiling of every server's RTO and the first RTO of a server not heard
    yet; ``attempts`` copies are sent at most. ``sent`` and ``retransmits`` count datagrams.
    """

    def __init__(
        self,
        *,
        timeout: float = 1.0,
        attempts: int = 3,
        backoff: float = 2.0,
        window: int = 256,
        recursive: frozenset[Server] = frozenset(),
        min_rto: float = MIN_RTO,
    ) -> None:
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.window = max(1, window)
        self.recursive = recursive
        self.min_rto = min(min_rto, timeout)
        self._channels: dict[Server, _Channel] = {}
        self._qsections: dict[tuple[str, str], bytes] = {}
        self._seq = itertools.count()
        # Servers declared down ("timeout" or "unreachable"), remembered until revive().
        self.down: dict[Server, str] = {}
        self.sent = 0
        self.retransmits = 0

    def close(self) -> None:
        for channel in self._channels.values():
            channel.sock.close()
        self._channels.clear()

    def after_fork(self) -> None:
        """In a forked child: close this process's copies of the parent's sockets (the parent
        keeps its own) and start afresh; the next query opens new ones."""
        self.close()
        self.sent = self.retransmits = 0

    @contextmanager
    def window_shared(self, processes: int) -> Iterator[None]:
        """Within the block, each of ``processes`` processes uses its share of the window."""
        full = self.window
        self.window = max(1, -(-full // processes))
        try:
            yield
        finally:
            self.window = full

    def revive(self) -> None:
        """Give every server declared down a new chance (a new pass after a pause)."""
        self.down.clear()

    def rto(self, server: Server) -> float:
        """The server's current retransmission timeout (``timeout`` until it has answered)."""
        channel = self._channels.get(server)
        return channel.rto if channel else self.timeout

    def _channel(self, server: Server) -> _Channel:
        channel = self._channels.get(server)
        if channel is not None and channel.sent >= PORT_QUERIES and not channel.inflight:
            # Between rounds nothing is in flight: a new socket, a new random source port.
            channel.sock.close()
            channel.sock = self._socket(server)
            channel.sent = 0
        if channel is None:
            sock = self._socket(server)
            channel = self._channels[server] = _Channel(server, sock, self.timeout,
                                                        cwnd=self.window,
                                                        ssthresh=self.window)
        return channel

    @staticmethod
    def _socket(server: Server) -> socket.socket:
        family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        sock.connect((server.host, server.port))
        return sock

    def _qsection(self, name: str, rdtype: str) -> bytes:
        key = (name, rdtype)
        qsection = self._qsections.get(key)
        if qsection is None:
            qsection = self._qsections[key] = question(name, rdtype)
        return qsection

    def _wait(self, channel: _Channel, attempt: int) -> float:
        """How long copy ``attempt`` (0 = the first) waits: RTO backed off (RFC 6298 §5.5);
        the last copy waits at least ``timeout`` before the query is called timed out."""
        wait = channel.rto * self.backoff**attempt
        return max(wait, self.timeout) if attempt + 1 >= self.attempts else wait

    def run(self, queries: Iterable[Query]) -> dict[Query, Answer]:
        """Answer every query (deduplicated); failures are answers with a failure status."""
        results: dict[Query, Answer] = {}
        channels: dict[Server, _Channel] = {}
        for query in dict.fromkeys(queries):
            status = self.down.get(query.server)
            if status:
                results[query] = Answer.failure(query, status)
                continue
            channel = channels.get(query.server) or channels.setdefault(
                query.server, self._channel(query.server)
            )
            channel.pending.append(query)
        if not channels:
            return results
        remaining = sum(len(c.pending) for c in channels.values())
        selector = selectors.DefaultSelector()
        for channel in channels.values():
            selector.register(channel.sock, selectors.EVENT_READ, channel)
        heap: _Heap = []
        truncated: list[tuple[Query, bytes]] = []

        def finish(query: Query, answer: Answer) -> None:
            nonlocal remaining
            results[query] = answer
            remaining -= 1

        try:
            while remaining:
                now = time.monotonic()
                for channel in channels.values():
                    self._fill(channel, heap, now)
                wait = max(0.0, heap[0][0] - now) if heap else 0.0
                for key, _ in selector.select(wait):
                    self._receive(key.data, finish, truncated, heap)
                # Deadlines are judged only after the sockets were drained: an answer waiting
                # in our buffer while the process was busy (parsing, GC) is not a loss.
                now = time.monotonic()
                while remaining and heap and heap[0][0] <= now:
                    deadline, _, channel, flight = heapq.heappop(heap)
                    if flight.done or flight.deadline != deadline:
                        continue
                    self._congestion(channel, now)
                    if flight.attempt + 1 < self.attempts:
                        self._retransmit(channel, flight, heap, now)
                        continue
                    self._land(channel, flight)
                    finish(flight.query, Answer.failure(flight.query, "timeout"))
                    if channel.answered == 0:
                        log.warning("%s does not answer: giving up on its queries",
                                    channel.server)
                        self._drop(channel, "timeout", finish)
        finally:
            selector.close()
        if truncated:
            results.update(self._tcp_all(truncated))
        return results

    def _send(self, channel: _Channel, flight: _Flight, now: float) -> bool:
        """Send one more copy of ``flight`` under a fresh ID; False if the socket is full."""
        qid = channel.new_id()
        wire = make_query(qid, flight.qsection, recursion=flight.query.server in self.recursive)
        try:
            channel.sock.send(wire)
        except BlockingIOError:
            return False
        except OSError:
            pass  # reported as a timeout or refusal below, like a lost packet
        self.sent += 1
        channel.sent += 1
        flight.copies.append((qid, now))
        channel.inflight[qid] = flight
        return True

    def _schedule(self, channel: _Channel, flight: _Flight, heap: _Heap, deadline: float) -> None:
        flight.deadline = deadline
        heapq.heappush(heap, (deadline, next(self._seq), channel, flight))

    def _fill(self, channel: _Channel, heap: _Heap, now: float) -> None:
        limit = min(channel.cwnd, self.window)
        while channel.pending and channel.active < limit:
            query = channel.pending[0]
            flight = _Flight(query, self._qsection(query.name, query.rdtype), 0, 0.0)
            if not self._send(channel, flight, now):
                return
            channel.pending.popleft()
            channel.active += 1
            self._schedule(channel, flight, heap, now + self._wait(channel, 0))

    def _retransmit(self, channel: _Channel, flight: _Flight, heap: _Heap, now: float) -> None:
        if not self._send(channel, flight, now):
            self._schedule(channel, flight, heap, now + 0.001)  # socket full: try again soon
            return
        self.retransmits += 1
        flight.attempt += 1
        # The back-off of RFC 6298 §5.5 is per query here (``_wait``), not per server: losses
        # come in bursts of a whole window, and doubling the server's RTO once per lost
        # datagram would push it to the ceiling after five of them.
        self._schedule(channel, flight, heap, now + self._wait(channel, flight.attempt))

    def _congestion(self, channel: _Channel, now: float) -> None:
        """A datagram was lost: halve the server's window, once per round trip (RFC 5681
        §3.1). Losses on a healthy loopback server are mostly its receive buffer overflowing;
        retransmitting at full window would feed the overflow."""
        if now - channel.cut_at > (channel.srtt or channel.rto):
            channel.cut_at = now
            channel.ssthresh = max(channel.cwnd / 2, MIN_WINDOW)
            channel.cwnd = channel.ssthresh

    def _land(self, channel: _Channel, flight: _Flight) -> None:
        """The query is over (answered or given up): forget its copies' IDs."""
        flight.done = True
        channel.active -= 1
        for qid, _ in flight.copies:
            channel.inflight.pop(qid, None)

    def _sample(self, channel: _Channel, rtt: float, heap: _Heap) -> None:
        """RFC 6298 §2.2-2.4 with the floor and ceiling of this engine."""
        first = channel.srtt is None
        if channel.srtt is None:
            channel.srtt, channel.rttvar = rtt, rtt / 2
        else:
            channel.rttvar = 0.75 * channel.rttvar + 0.25 * abs(channel.srtt - rtt)
            channel.srtt = 0.875 * channel.srtt + 0.125 * rtt
        rto = channel.srtt + max(_GRANULARITY, 4 * channel.rttvar)
        channel.rto = min(max(rto, self.min_rto), self.timeout)
        if first:
            # Queries sent before the server was heard wait the initial RTO (the ceiling);
            # now that it is known, a lost one among them need not wait that long.
            for flight in {id(f): f for f in channel.inflight.values()}.values():
                deadline = flight.copies[-1][1] + self._wait(channel, flight.attempt)
                if deadline < flight.deadline:
                    self._schedule(channel, flight, heap, deadline)

    def _drop(self, channel: _Channel, status: str, finish: _Finish) -> None:
        self.down[channel.server] = status
        for flight in {id(f): f for f in channel.inflight.values()}.values():
            if not flight.done:
                flight.done = True
                finish(flight.query, Answer.failure(flight.query, status))
        channel.inflight.clear()
        channel.active = 0
        while channel.pending:
            query = channel.pending.popleft()
            finish(query, Answer.failure(query, status))

    def _receive(self, channel: _Channel, finish: _Finish,
                 truncated: list[tuple[Query, bytes]], heap: _Heap) -> None:
        now = time.monotonic()
        while True:
            try:
                wire = channel.sock.recv(65535)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                # ICMP port unreachable (RFC 1122 §4.1.3.3): nobody listens there.
                self._drop(channel, "unreachable", finish)
                return
            if len(wire) < 12 or not wire[2] & 0x80:
                continue  # too short, or not a response (QR=0: an echo, a query)
            qid = struct.unpack_from("!H", wire)[0]
            flight = channel.inflight.get(qid)
            if flight is None or flight.done:
                continue
            qsection = flight.qsection
            echoed = wire[12 : 12 + len(qsection)]
            if echoed != qsection and echoed.lower() != qsection.lower():
                continue  # not the answer to this question: keep waiting (RFC 5452 §4.2)
            copies = flight.copies
            sent = copies[0][1] if len(copies) == 1 else next(t for i, t in copies if i == qid)
            self._sample(channel, now - sent, heap)
            self._land(channel, flight)
            if channel.cwnd < self.window:  # grow back: +1 per answer, then +1 per window
                step = 1.0 if channel.cwnd < channel.ssthresh else 1.0 / channel.cwnd
                channel.cwnd = min(float(self.window), channel.cwnd + step)
            channel.answered += 1
            try:
                message = parse_response(wire, flight.query.name)
            except WireError as exc:
                log.info("%s: unreadable answer for %s: %s", channel.server, flight.query, exc)
                finish(flight.query, Answer.failure(flight.query, "FORMERR"))
                continue
            if message.truncated:
                truncated.append((flight.query, flight.qsection))
                finish(flight.query, Answer.failure(flight.query, "timeout"))
                continue
            finish(flight.query, Answer.from_message(flight.query, message))

    def _tcp_all(self, truncated: list[tuple[Query, bytes]]) -> dict[Query, Answer]:
        """Ask the truncated queries again over TCP (RFC 7766 §5), several at once, all within
        one deadline (``timeout`` x ``attempts`` from now); a server that let one TCP query
        time out is given up for the rest of them, so a server that truncates and never
        answers on TCP costs one deadline per round, not one per query."""
        deadline = time.monotonic() + self.timeout * self.attempts
        dead: set[Server] = set()
        out: dict[Query, Answer] = {}

        def one(item: tuple[Query, bytes]) -> tuple[Query, Answer]:
            query, qsection = item
            if query.server in dead:
                return query, Answer.failure(query, "timeout")
            answer = self._tcp(query, qsection, deadline)
            if answer.status == "timeout":
                dead.add(query.server)
            return query, answer

        if len(truncated) == 1:
            out.update([one(truncated[0])])
            return out
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(16, len(truncated))) as pool:
            out.update(pool.map(one, truncated))
        return out

    def _tcp(self, query: Query, qsection: bytes, deadline: float) -> Answer:
        """One query over TCP, given up at ``deadline``; the answer must be a response (QR)
        with the query's ID and question, as over UDP (RFC 5452 §4.2)."""
        qid = _random.getrandbits(16)
        wire = make_query(qid, qsection, recursion=query.server in self.recursive)
        try:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            with socket.create_connection((query.server.host, query.server.port),
                                          timeout=left) as sock:
                sock.sendall(struct.pack("!H", len(wire)) + wire)
                data = b""
                while len(data) < 2 or len(data) < 2 + struct.unpack_from("!H", data)[0]:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    sock.settimeout(left)
                    chunk = sock.recv(65535)
                    if not chunk:
                        raise ConnectionError("closed")
                    data += chunk
            message = data[2:2 + struct.unpack_from("!H", data)[0]]
            if len(message) < 12 or not message[2] & 0x80 or \
                    struct.unpack_from("!H", message)[0] != qid:
                raise WireError("not the response to this query (QR or ID)")
            echoed = message[12:12 + len(qsection)]
            if echoed.lower() != qsection.lower():
                raise WireError("the response is to another question")
            return Answer.from_message(query, parse_response(message, query.name))
        except WireError as exc:
            log.info("%s: TCP answer for %s refused: %s", query.server, query.name, exc)
            return Answer.failure(query, "FORMERR")
        except OSError as exc:
            log.info("%s: TCP query for %s failed: %s", query.server, query.name, exc)
            return Answer.failure(query, "timeout")
