"""Benchmark: ``plan`` of N managed institutions against PowerDNS, beside plain ``octodns-sync``.

Both run in this process, against the same PowerDNS (started here on 127.0.0.1), with the same
worker count, on the same records: the peer reads them from octoDNS YAML files written by our
own ``local`` target (so both sides want byte-identical records), through octoDNS's Manager
exactly as ``octodns-sync`` (dry run) does. Two states are timed: a fresh server (every record
to create) and after an apply (nothing to do, the usual merge-request case). Memory: peak
Python allocations (tracemalloc) of our plan at growing N, per zone; flat means it does not
grow with N.

    .venv/bin/python benchmarks/bench_plan.py [--institutions 1000] [--workers 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402
from octodns.manager import Manager  # type: ignore[import-untyped]  # noqa: E402

from provisioner.config import load_project  # noqa: E402
from provisioner.octodns import engine  # noqa: E402
from tests.octodns_project import write_project  # noqa: E402
from tests.servers import API_KEY, PdnsServer  # noqa: E402


def make_project(root: Path, server: PdnsServer, n: int) -> None:
    write_project(root, {
        "powerdns": server.target_options(),
        "files": {"class": "octodns.provider.yaml.YamlProvider", "directory": "./peer"},
    }, default="powerdns")
    for i in range(n):
        (root / "zones" / f"inst{i:04d}.yaml").write_text(
            f"institution: inst{i:04d}\nname: Institution {i}\ndomains:\n"
            f"  inst{i:04d}.example:\n    dns: managed\n    return_path: mail\n"
            "    spf: {include: [_spf.google.com]}\n"
            "    dmarc: {policy: quarantine, rua: [mailto:dmarc@example.net]}\n")


def peer_files(root: Path) -> int:
    """octoDNS YAML files holding exactly the records our engine wants on an empty server."""
    project = load_project(root / "provisioner.yaml")
    records = project.records()
    platform = project.platform
    files = platform.targets["files"]
    # Our own local target writes them: the same desired records the engine sends PowerDNS.
    retarget = dataclasses.replace(platform, targets={**platform.targets, "powerdns": files})
    planned = engine.plan(records, retarget, project.root)
    assert planned.ok, [str(p) for p in planned.problems]
    engine.apply(planned, force=True)
    return len(list((root / "peer").glob("*.yaml")))


def peer_config(root: Path, server: PdnsServer, workers: int) -> Path:
    config = {
        "manager": {"max_workers": workers, "enable_checksum": True,
                    "plan_outputs": {"quiet": {"class": "octodns.provider.plan.PlanLogger",
                                               "level": "debug"}}},
        "providers": {
            "files": {"class": "octodns.provider.yaml.YamlProvider",
                      "directory": str(root / "peer"), "escaped_semicolons": False,
                      "enforce_order": False},
            "powerdns": {"class": "octodns_powerdns.PowerDnsProvider", "host": "127.0.0.1",
                         "port": server.api_port, "api_key": API_KEY, "enable_dynamic": False,
                         "root_ns_warnings": False},
        },
        "zones": {"*": {"sources": ["files"], "targets": ["powerdns"]}},
    }
    path = root / "octodns.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def ours(root: Path, workers: int) -> Callable[[], int]:
    def run() -> int:
        project = load_project(root / "provisioner.yaml")
        planned = engine.plan(project.records(), project.platform, project.root,
                              only_target="powerdns", workers=workers)
        assert planned.ok, [str(p) for p in planned.problems][:3]
        return sum(len(z.changes) for z in planned.zones)
    return run


def peer(config: Path) -> Callable[[], int]:
    def run() -> int:
        manager = Manager(str(config))
        return int(manager.sync(dry_run=True, plan_output_fh=io.StringIO()))
    return run


def timed(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def create_zones(server: PdnsServer, names: list[str]) -> None:
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda z: server.create_zone(z), names))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--institutions", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = PdnsServer(root / "pdns").start()
        try:
            import os

            os.environ["PDNS_API_KEY"] = API_KEY
            n = args.institutions
            make_project(root, server, n)
            t0 = time.perf_counter()
            create_zones(server, [f"inst{i:04d}.example" for i in range(n)])
            print(f"setup: {n} zones created on PowerDNS in {time.perf_counter() - t0:.1f} s; "
                  f"{peer_files(root)} octoDNS YAML files for the peer")
            config = peer_config(root, server, args.workers)
            rows = []
            for state in ("fresh", "applied"):
                if state == "applied":
                    project = load_project(root / "provisioner.yaml")
                    done = engine.apply(engine.plan(project.records(), project.platform,
                                                    project.root, only_target="powerdns"))
                    assert done.ok, [str(p) for p in done.problems][:3]
                ours_s, ours_changes = timed(ours(root, args.workers), args.repeat)
                peer_s, _ = timed(peer(config), args.repeat)
                rows.append((state, ours_s, ours_changes, peer_s))
            print(f"\nplan of {n} institutions ({n + 1} zones) against PowerDNS, "
                  f"{args.workers} workers, median of {args.repeat}:")
            print(f"{'state':<8} {'provisioner plan':>17} {'octodns-sync dry':>17} "
                  f"{'ratio ours/peer':>16} {'changes':>8}")
            for state, o, c, p in rows:
                print(f"{state:<8} {o:>16.2f}s {p:>16.2f}s {o / p:>16.2f} {c:>8}")
            print("\nmemory of our plan (tracemalloc peak), 'applied' state:")
            for size in sorted({max(n // 4, 1), max(n // 2, 1), n}):
                sub = root / f"mem{size}"
                write_project(sub, {"powerdns": server.target_options()}, default="powerdns")
                for f in sorted((root / "zones").glob("*.yaml"))[:size]:
                    (sub / "zones" / f.name).write_text(f.read_text())
                tracemalloc.start()
                project = load_project(sub / "provisioner.yaml")
                engine.plan(project.records(), project.platform, project.root,
                            only_zones={r.zone for r in project.records()},
                            workers=args.workers)
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                print(f"  {size:>5} institutions: peak {peak / 2**20:7.1f} MiB, "
                      f"{peak / size / 1024:6.1f} KiB per institution")
            print(json.dumps({"institutions": n, "workers": args.workers,
                              "results": [{"state": s, "ours_s": round(o, 3),
                                           "peer_s": round(p, 3), "ratio": round(o / p, 3)}
                                          for s, o, _, p in rows]}))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
