"""A PowerDNS Authoritative server on 127.0.0.1 with a sqlite backend, for verify's tests.

Zones go straight into the sqlite database (the schema Debian ships), so thousands load in a
second for the benchmark; with the caches off (the default here) a zone added while the server
runs answers at once. The server binds a free port and stops with :meth:`stop`.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

SCHEMA = Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql")
PDNS = "/usr/sbin/pdns_server"


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (5353 avoided: mDNS)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            if port == 5353:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def _content(rtype: str, value: str) -> str:
    """PowerDNS stores names without the trailing dot, TXT with its quotes."""
    if rtype in ("CNAME", "NS", "PTR"):
        return value.rstrip(".") or "."
    if rtype == "MX":
        pref, _, exchange = value.partition(" ")
        return f"{pref} {exchange.rstrip('.') or '.'}"
    if rtype == "TXT" and not value.startswith('"'):
        chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
        return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)
    return value


class PowerDNS:
    """``add_zone`` then ``start`` (or the reverse); ``stop`` when done."""

    def __init__(self, workdir: Path, *, caches: bool = False, threads: int = 1) -> None:
        self.workdir = workdir
        self.db = workdir / "pdns.sqlite3"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.db) as conn:
            conn.executescript(SCHEMA.read_text())
        cache = "" if caches else (
            "cache-ttl=0\nquery-cache-ttl=0\nnegquery-cache-ttl=0\nzone-cache-refresh-interval=0\n"
        )
        (workdir / "pdns.conf").write_text(
            "launch=gsqlite3\n"
            f"gsqlite3-database={self.db}\n"
            "local-address=127.0.0.1\n"
            f"local-port={self.port}\n"
            "default-soa-content=ns1.test. hostmaster.@ 1 10800 3600 604800 300\n"
            "security-poll-suffix=\n"
            f"receiver-threads={threads}\ndistributor-threads={threads}\n"
            "loglevel=3\n" + cache
        )

    def add_zone(self, zone: str, records: Iterable[tuple[str, str, str]], ttl: int = 300) -> None:
        """``records`` as (name relative to the zone or "" or "@", type, value) pairs."""
        self.add_zones([(zone, records)], ttl)

    def add_zones(self, zones: Iterable[tuple[str, Iterable[tuple[str, str, str]]]],
                  ttl: int = 300) -> None:
        with sqlite3.connect(self.db) as conn:
            for zone, records in zones:
                zone = zone.rstrip(".").lower()
                cur = conn.execute(
                    "INSERT INTO domains (name, type) VALUES (?, 'NATIVE')", (zone,)
                )
                domain_id = cur.lastrowid
                rows = [(domain_id, zone, "SOA",
                         "ns1.test. hostmaster.test. 1 10800 3600 604800 300", ttl)]
                for name, rtype, value in records:
                    fq = zone if name in ("", "@") else f"{name.rstrip('.')}.{zone}"
                    if name.endswith("."):
                        fq = name.rstrip(".")
                    rows.append((domain_id, fq.lower(), rtype, _content(rtype, value), ttl))
                conn.executemany(
                    "INSERT INTO records (domain_id, name, type, content, ttl, auth)"
                    " VALUES (?, ?, ?, ?, ?, 1)",
                    rows,
                )

    def start(self) -> PowerDNS:
        self.proc = subprocess.Popen(
            [PDNS, "--daemon=no", "--guardian=no", f"--config-dir={self.workdir}",
             f"--socket-dir={self.workdir}"],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "pdns.log").open("wb"),
        )
        deadline = time.monotonic() + 15
        probe = bytes.fromhex("abcd01000001000000000000") + b"\x00\x00\x06\x00\x01"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.workdir / "pdns.log").read_text())
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(0.2)
                try:
                    sock.sendto(probe, ("127.0.0.1", self.port))
                    sock.recv(512)
                    return self
                except OSError:
                    time.sleep(0.1)
        self.stop()
        raise RuntimeError("PowerDNS did not start: " + (self.workdir / "pdns.log").read_text())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def clear(server: PowerDNS) -> None:
    """Remove every zone (the caches are off: the server answers REFUSED at once)."""
    with sqlite3.connect(server.db) as conn:
        conn.execute("DELETE FROM records")
        conn.execute("DELETE FROM domains")
