"""Many DNS queries at once over UDP, each server with its own window, deadlines and retries.

One connected, non-blocking UDP socket per server is reused for all its queries (RFC 1035
§4.2.1); up to ``window`` queries are in flight per server, matched by ID and question. A query
unanswered after ``timeout`` is sent again after ``timeout * backoff**attempt``; a server that
never answered and let one query exhaust its attempts is declared down and its queued queries
fail at once, so a dead server costs one timeout series, and never delays the other servers,
whose queries share the same loop. Truncated answers are asked again over TCP (RFC 7766 §5).
"""

from __future__ import annotations

import heapq
import logging
import random
import selectors
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from provisioner.dnsclient.types import Answer, Query, Server
from provisioner.dnsclient.wire import WireError, make_query, parse_response, question

log = logging.getLogger(__name__)
_Finish = Callable[[Query, Answer], None]


@dataclass(slots=True)
class _Flight:
    query: Query
    qsection: bytes
    attempt: int
    deadline: float


@dataclass(slots=True)
class _Channel:
    server: Server
    sock: socket.socket
    pending: deque[tuple[Query, int]] = field(default_factory=deque)
    inflight: dict[int, _Flight] = field(default_factory=dict)
    next_id: int = field(default_factory=lambda: random.randrange(65536))
    answered: int = 0
    down: str = ""  # "", "timeout" or "unreachable"

    def new_id(self) -> int:
        while True:
            self.next_id = (self.next_id + 1) & 0xFFFF
            if self.next_id not in self.inflight:
                return self.next_id


class Engine:
    """Sends queries, collects :class:`Answer` values. Not thread-safe; close it when done."""

    def __init__(
        self,
        *,
        timeout: float = 1.0,
        attempts: int = 3,
        backoff: float = 2.0,
        window: int = 256,
        recursive: frozenset[Server] = frozenset(),
    ) -> None:
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.window = max(1, window)
        self.recursive = recursive
        self._channels: dict[Server, _Channel] = {}
        self._qsections: dict[tuple[str, str], bytes] = {}
        self.sent = 0

    def close(self) -> None:
        for channel in self._channels.values():
            channel.sock.close()
        self._channels.clear()

    def _channel(self, server: Server) -> _Channel:
        channel = self._channels.get(server)
        if channel is None:
            family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
            sock.connect((server.host, server.port))
            channel = self._channels[server] = _Channel(server, sock)
        # A server declared down in one batch gets a new chance in the next.
        channel.down = ""
        return channel

    def _qsection(self, name: str, rdtype: str) -> bytes:
        key = (name, rdtype)
        qsection = self._qsections.get(key)
        if qsection is None:
            qsection = self._qsections[key] = question(name, rdtype)
        return qsection

    def run(self, queries: Iterable[Query]) -> dict[Query, Answer]:
        """Answer every query (deduplicated); failures are answers with a failure status."""
        results: dict[Query, Answer] = {}
        channels: dict[Server, _Channel] = {}
        for query in dict.fromkeys(queries):
            channel = channels.get(query.server) or channels.setdefault(
                query.server, self._channel(query.server)
            )
            channel.pending.append((query, 0))
        if not channels:
            return results
        remaining = sum(len(c.pending) for c in channels.values())
        selector = selectors.DefaultSelector()
        for channel in channels.values():
            selector.register(channel.sock, selectors.EVENT_READ, channel)
        heap: list[tuple[float, int, Server, int]] = []
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
                while heap and heap[0][0] <= now:
                    deadline, _, server, qid = heapq.heappop(heap)
                    channel = channels[server]
                    flight = channel.inflight.get(qid)
                    if flight is None or flight.deadline != deadline:
                        continue
                    del channel.inflight[qid]
                    if flight.attempt + 1 < self.attempts:
                        channel.pending.appendleft((flight.query, flight.attempt + 1))
                        continue
                    finish(flight.query, Answer.failure(flight.query, "timeout"))
                    if channel.answered == 0:
                        log.warning("%s does not answer: giving up on its queries", server)
                        self._drop(channel, "timeout", finish)
                if not remaining:
                    break
                wait = max(0.0, heap[0][0] - time.monotonic()) if heap else 0.0
                for key, _ in selector.select(wait):
                    self._receive(key.data, finish, truncated)
        finally:
            selector.close()
        for query, qsection in truncated:
            results[query] = self._tcp(query, qsection)
        return results

    def _fill(self, channel: _Channel, heap: list[tuple[float, int, Server, int]],
              now: float) -> None:
        while channel.pending and len(channel.inflight) < self.window:
            query, attempt = channel.pending.popleft()
            qsection = self._qsection(query.name, query.rdtype)
            qid = channel.new_id()
            wire = make_query(qid, qsection, recursion=query.server in self.recursive)
            try:
                channel.sock.send(wire)
            except BlockingIOError:
                channel.pending.appendleft((query, attempt))
                return
            except OSError:
                pass  # reported as a timeout or refusal below, like a lost packet
            self.sent += 1
            deadline = now + self.timeout * self.backoff**attempt
            channel.inflight[qid] = _Flight(query, qsection, attempt, deadline)
            heapq.heappush(heap, (deadline, qid, channel.server, qid))

    def _drop(self, channel: _Channel, status: str, finish: _Finish) -> None:
        channel.down = status
        for flight in channel.inflight.values():
            finish(flight.query, Answer.failure(flight.query, status))
        channel.inflight.clear()
        while channel.pending:
            query, _ = channel.pending.popleft()
            finish(query, Answer.failure(query, status))

    def _receive(self, channel: _Channel, finish: _Finish,
                 truncated: list[tuple[Query, bytes]]) -> None:
        while True:
            try:
                wire = channel.sock.recv(65535)
            except BlockingIOError:
                return
            except ConnectionRefusedError:
                # ICMP port unreachable (RFC 1122 §4.1.3.3): nobody listens there.
                self._drop(channel, "unreachable", finish)
                return
            if len(wire) < 12:
                continue
            qid = struct.unpack_from("!H", wire)[0]
            flight = channel.inflight.get(qid)
            if flight is None:
                continue
            end = 12 + len(flight.qsection)
            if wire[12:end].lower() != flight.qsection.lower():
                continue  # not the answer to this question: keep waiting (RFC 5452 §4.2)
            del channel.inflight[qid]
            channel.answered += 1
            try:
                message = parse_response(wire)
            except WireError as exc:
                log.info("%s: unreadable answer for %s: %s", channel.server, flight.query, exc)
                finish(flight.query, Answer.failure(flight.query, "FORMERR"))
                continue
            if message.truncated:
                truncated.append((flight.query, flight.qsection))
                finish(flight.query, Answer.failure(flight.query, "timeout"))
                continue
            finish(flight.query, Answer.from_message(flight.query, message))

    def _tcp(self, query: Query, qsection: bytes) -> Answer:
        """Ask again over TCP: RFC 7766 §5 after a truncated UDP answer."""
        wire = make_query(random.randrange(65536), qsection,
                          recursion=query.server in self.recursive)
        deadline = time.monotonic() + self.timeout * self.attempts
        try:
            with socket.create_connection((query.server.host, query.server.port),
                                          timeout=self.timeout * self.attempts) as sock:
                sock.sendall(struct.pack("!H", len(wire)) + wire)
                data = b""
                while len(data) < 2 or len(data) < 2 + struct.unpack_from("!H", data)[0]:
                    if time.monotonic() > deadline:
                        raise TimeoutError
                    chunk = sock.recv(65535)
                    if not chunk:
                        raise ConnectionError("closed")
                    data += chunk
            return Answer.from_message(query, parse_response(data[2:]))
        except (OSError, WireError) as exc:
            log.info("%s: TCP query for %s failed: %s", query.server, query.name, exc)
            return Answer.failure(query, "timeout")

