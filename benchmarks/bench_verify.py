"""Benchmark: ``verify`` on 1,000 and 10,000 domains served by a local PowerDNS.

In the same run and against the same server: checkdmarc (SPF, DMARC and MX of each domain,
no DKIM: it checks less than we do) on a sample of the domains, and dnsperf replaying the very
queries verify sent, as the ceiling of what the server answers. Prints figures and ratios.
All traffic goes to 127.0.0.1: a guard on ``socket`` refuses any other destination.

    .venv/bin/python benchmarks/bench_verify.py [--sizes 1000 10000] [--checkdmarc-sample 300]
"""

from __future__ import annotations

import argparse
import base64
import functools
import gc
import ipaddress
import logging
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from provisioner.config import load_project
from provisioner.dnsclient import DnsClient, Server
from provisioner.errors import Origin
from provisioner.expand import expand
from provisioner.model import (
    DmarcPolicy,
    DnsMode,
    Domain,
    Institution,
    Platform,
    SpfPolicy,
)
from provisioner.verify import verify_records
from tests.pdns_local import PowerDNS

REPO = Path(__file__).resolve().parent.parent


class _LocalOnly(socket.socket):
    """Every socket of this process may only talk to the loopback address."""

    @staticmethod
    def _check(address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if not ipaddress.ip_address(host).is_loopback:
            raise PermissionError(f"benchmark traffic must stay on 127.0.0.1, not {host}")

    def connect(self, address: Any) -> None:
        self._check(address)
        super().connect(address)

    def sendto(self, data: Any, *args: Any) -> int:
        self._check(args[-1])
        return super().sendto(data, *args)


socket.socket = _LocalOnly  # type: ignore[misc]


def institutions(n: int) -> list[Institution]:
    origin = Origin("bench")
    out = []
    for i in range(n):
        name = f"d{i:05d}.test"
        domain = Domain(name, name, DnsMode.MANAGED, "local", 3600, SpfPolicy(),
                        True, DmarcPolicy(rua=(f"mailto:dmarc@{name}",)), "mail", origin)
        out.append(Institution(f"i{i:05d}", f"Institution {i}", None, (domain,), origin))
    return out


def zones_for(platform: Platform, insts: list[Institution], key: str) -> dict[str, list[Any]]:
    zones: dict[str, list[Any]] = {z: [] for z in platform.platform_zones}
    zones["secutix.com"] = [("spf", "TXT", "v=spf1 ip4:192.28.148.112 -all"),
                            ("bounce", "A", "192.28.148.1")]
    for r in expand(platform, insts):
        for v in r.values:
            zones.setdefault(r.zone.rstrip("."), []).append((r.name, r.type, str(v)))
    for inst in insts:
        zones[inst.domains[0].zone].append(("", "MX", f"10 mx.{inst.domains[0].name}."))
        for sel in platform.selectors:
            zones[platform.dkim_zone].append(
                (f"{sel.target_label(inst.code)}._domainkey", "TXT", f"v=DKIM1; k=rsa; p={key}"))
    return zones


def run_ours(records: Any, platform: Platform, server: Server, jobs: int | None = None,
             record: bool = False) -> tuple[float, int, int, list[str]]:
    """One verify pass; ``record``: also collect every query asked (for dnsperf), which costs
    the worker processes a transfer the product does not pay, so timed runs do not."""
    with DnsClient(nameservers=[server], timeout=1.0, attempts=3,
                   record_asked=record) as client:
        started = time.perf_counter()
        report = verify_records(records, platform, client=client, jobs=jobs)
        elapsed = time.perf_counter() - started
        bad = [f"{d.domain} {c.check} {c.name}: {c.status.value} {c.reason}"
               for d in report.domains for c in d.checks if not c.ok]
        if bad:
            raise SystemExit("verify did not succeed everywhere:\n" + "\n".join(bad[:10]))
        return (elapsed, client.queries_sent, client.retransmits,
                [f"{q.name} {q.rdtype}" for q in client.asked()])


def run_checkdmarc(domains: list[str], port: int) -> float:
    import dns.resolver
    from checkdmarc.dmarc import check_dmarc
    from checkdmarc.smtp import get_mx_hosts
    from checkdmarc.spf import check_spf

    logging.getLogger("checkdmarc").setLevel(logging.ERROR)  # its DNSSEC notes, per domain
    from checkdmarc.utils import DNS_CACHE

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    # checkdmarc keeps every DNS answer in a module-level cache for 30 minutes: a second run
    # over the same domains asked no DNS at all (and the 10,000-domain row's sample is the
    # 1,000-domain row's). Each run starts empty, as each run of ours starts with a new client.
    DNS_CACHE.clear()
    started = time.perf_counter()
    for domain in domains:
        spf = check_spf(domain, resolver=resolver, timeout=2.0)
        dmarc = check_dmarc(domain, resolver=resolver, timeout=2.0)
        get_mx_hosts(domain, resolver=resolver, timeout=2.0)
        if not spf.get("valid") or not dmarc.get("valid"):
            raise SystemExit(f"checkdmarc found {domain} invalid: {spf} {dmarc}")
    return time.perf_counter() - started


def fresh_caches() -> None:
    """Empty our own memo caches (parsed records, keys, tags), so that every timed run of
    ours starts as a new process's would: only imports and the server's cache are warm."""
    for obj in gc.get_objects():
        if (isinstance(obj, functools._lru_cache_wrapper)
                and getattr(obj, "__module__", "").startswith("provisioner.")):
            obj.cache_clear()


def run_dnsperf(queries: list[str], port: int, workdir: Path, seconds: int = 5) -> float:
    data = workdir / "queries.txt"
    data.write_text("\n".join(queries) + "\n")
    out = subprocess.run(
        ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(data), "-l", str(seconds),
         "-c", "4", "-q", "500"],
        capture_output=True, text=True, check=True,
    ).stdout
    match = re.search(r"Queries per second:\s+([\d.]+)", out)
    if not match:
        raise SystemExit("dnsperf printed no rate:\n" + out)
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--checkdmarc-sample", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=None,
                        help="verify's processes (default: as verify chooses)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed runs of each side; the medians are compared")
    args = parser.parse_args()
    base = load_project(REPO / "provisioner.yaml").platform
    platform = Platform(**{**{f: getattr(base, f) for f in base.__dataclass_fields__},
                           "platform_zones": {**base.platform_zones}})
    key = base64.b64encode(rsa.generate_private_key(public_exponent=65537, key_size=2048)
                           .public_key().public_bytes(Encoding.DER,
                                                      PublicFormat.SubjectPublicKeyInfo)).decode()
    print(f"{'domains':>8} {'cold s':>7} {'verify s':>9} {'domains/s':>10} {'queries':>8} "
          f"{'q/s':>8} {'resent':>6} "
          f"{'checkdmarc d/s':>15} {'x checkdmarc':>13} {'dnsperf q/s':>12} {'% of dnsperf':>13}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            insts = institutions(size)
            server = PowerDNS(Path(tmp) / "pdns", caches=True)
            server.add_zones(zones_for(platform, insts, key).items())
            server.start()
            try:
                records = expand(platform, insts)
                # The first pass meets PowerDNS's cold packet cache (each answer a sqlite query,
                # ~140 µs on one distributor thread); the peers below run warm, so do we.
                address = Server.parse(server.address)
                cold, _, _, asked = run_ours(records, platform, address, args.jobs, True)
                sample = [i.domains[0].name for i in insts[: args.checkdmarc_sample]]
                # checkdmarc's first call loads what it needs once (the public suffix list):
                # like our first pass, a warm-up on a domain outside the sample.
                run_checkdmarc([insts[-1].domains[0].name], server.port)
                # Both sides are timed --repeat times, alternating, and the medians compared:
                # one run of either varies by up to ±20 % on this shared 2-vCPU machine. Each
                # run starts with empty client-side caches, ours and checkdmarc's.
                ours, peers = [], []
                for _ in range(args.repeat):
                    fresh_caches()
                    ours.append(run_ours(records, platform, address, args.jobs))
                    peers.append(len(sample) / run_checkdmarc(sample, server.port))
                elapsed, sent, resent, _ = sorted(ours)[len(ours) // 2]
                peer = statistics.median(peers)
                ceiling = run_dnsperf(asked, server.port, Path(tmp))
            finally:
                server.stop()
        rate = size / elapsed
        print(f"{size:>8} {cold:>7.2f} {elapsed:>9.2f} {rate:>10.0f} {sent:>8} "
              f"{sent / elapsed:>8.0f} {resent:>6} "
              f"{peer:>15.1f} {rate / peer:>13.1f} {ceiling:>12.0f} "
              f"{100 * sent / elapsed / ceiling:>12.0f}%")
        print(f"{'':>8} runs: verify {', '.join(f'{size / o[0]:.0f}' for o in ours)} domains/s; "
              f"checkdmarc {', '.join(f'{p:.1f}' for p in peers)} domains/s")
    print("verify: every check (SPF check_host per sending IP, DKIM CNAME+key, DMARC tags and "
          "report authorisation, return-path MX, sender MX, and the report authorisation's own "
          "check in the platform zone), all successful; checkdmarc: SPF, DMARC, MX (no DKIM) on "
          f"the first {args.checkdmarc_sample} domains; medians of {args.repeat} alternating "
          "runs each; dnsperf replays verify's queries, 4 clients, 5 s; cold = verify's first "
          "pass on a cold server cache.")


if __name__ == "__main__":
    main()
