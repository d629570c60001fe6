"""Benchmark: a merge request's validate + plan for a one-institution change, in a fleet.

N institutions (default 10,000) are applied to a local PowerDNS and committed to a git
repository; then one declaration changes (its DMARC policy). Timed, as the pipeline runs them
(fresh processes, interpreter start included): ``provisioner validate`` then ``provisioner
plan --changed-since BASE --output-dir`` (one run, every format). Beside it, in the same run, the
peer: a plain ``octodns-sync`` dry run of the same repository, the same records written as
octoDNS YAML files, which plans every zone (octoDNS has no notion of what a merge request
changed). Both plan against the same PowerDNS, with the same worker count.

    .venv/bin/python benchmarks/bench_mr.py [--institutions 10000] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_plan import (  # noqa: E402
    create_zones,
    make_project,
    peer,
    peer_config,
    peer_files,
)
from provisioner.config import load_project  # noqa: E402
from provisioner.octodns import engine  # noqa: E402
from provisioner.octodns.ratelimit import PREFETCH_AT  # noqa: E402
from tests.octodns_project import dkim_public_key, publish_platform_dns  # noqa: E402
from tests.servers import API_KEY, PdnsServer  # noqa: E402

BIN = Path(sys.executable).parent


def route53_requests(read: int, account: int) -> int:
    """The Route53 requests of reading ``read`` zones of an account of ``account`` zones:
    a lookup by name and a read each, or, from ratelimit.PREFETCH_AT zones, the account's
    listing (100 zones a page) and a read each (tests/test_route53_budget.py counts both)."""
    if read < PREFETCH_AT:
        return 2 * read
    return min(2 * read, -(-account // 100) + read)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), "-c", "user.email=b@example.org", "-c",
                           "user.name=bench", *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def timed_cli(root: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run([str(BIN / "provisioner"), *args, "--config",
                           str(root / "provisioner.yaml")], capture_output=True, text=True,
                          cwd=root, env={**os.environ, "CI": "true"})
    return time.perf_counter() - start, done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--institutions", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    n = args.institutions
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = PdnsServer(root / "pdns").start()
        try:
            os.environ["PDNS_API_KEY"] = API_KEY
            make_project(root, server, n)
            t0 = time.perf_counter()
            create_zones(server, [f"inst{i:04d}.example" for i in range(n)])
            files = peer_files(root)
            project = load_project(root / "provisioner.yaml")
            done = engine.apply(engine.plan(project.records(), project.platform, project.root,
                                            only_target="powerdns", workers=args.workers))
            assert done.ok, [str(p) for p in done.problems][:3]
            # what the platform and the report destination publish, so that verify passes
            publish_platform_dns(server, [])  # the SPF includes; the 2n keys below, in parts
            key = dkim_public_key()
            names = [f"sel{s}-inst{i:04d}._domainkey.dkim.secutix.com." for i in range(n)
                     for s in (1, 2)]
            for start in range(0, len(names), 1000):  # PowerDNS's request body limit
                server.request("PATCH", "zones/dkim.secutix.com.", {"rrsets": [
                    {"name": name, "type": "TXT", "ttl": 3600, "changetype": "REPLACE",
                     "records": [{"content": f'"v=DKIM1; k=rsa; p={key}"', "disabled": False}]}
                    for name in names[start:start + 1000]]})
            server.request("PATCH", "zones/secutix.com.", {"rrsets": [
                {"name": "bounce.secutix.com.", "type": "A", "ttl": 3600,
                 "changetype": "REPLACE",
                 "records": [{"content": "192.28.148.112", "disabled": False}]}]})
            server.create_zone("example.net", [("*._report._dmarc", "TXT", 3600,
                                                ['"v=DMARC1"'])])
            (root / ".gitignore").write_text("peer/\npdns/\nbuild/\noctodns.yaml\n")
            git(root, "init", "-q", "-b", "main")
            git(root, "add", ".")
            git(root, "commit", "-qm", "fleet")
            base = git(root, "rev-parse", "HEAD")
            print(f"setup: {n} institutions applied to PowerDNS, {files} octoDNS YAML files "
                  f"for the peer, committed ({time.perf_counter() - t0:.0f} s)")
            changed = root / "zones" / "inst0042.yaml"
            changed.write_text(changed.read_text().replace("policy: quarantine",
                                                           "policy: reject"))
            # the peer sees the same change in its files
            peer_zone = root / "peer" / "inst0042.example.yaml"
            peer_zone.write_text(peer_zone.read_text().replace("p=quarantine", "p=reject"))
            validate_s, v = timed_cli(root, "validate")
            assert v.returncode == 0, v.stderr[-500:]
            plan_s, p = timed_cli(root, "plan", "--changed-since", base, "--output-dir",
                                  str(root / "build" / "ci"), "--target", "powerdns",
                                  "--format", "json")
            assert p.returncode == 0, p.stderr[-500:]
            planned = json.loads(p.stdout)
            changes = sum(len(z["changes"]) for z in planned["zones"])
            config = peer_config(root, server, args.workers)
            t1 = time.perf_counter()
            peer(config)()
            peer_s = time.perf_counter() - t1
            # the nightly drift of the same fleet, DNS first: the zones it reads through the
            # API (the Route53 requests it would make: a lookup and a read per zone, or from
            # ratelimit.PREFETCH_AT zones a listing of the account first), beside the full cycle
            drift_s, dr = timed_cli(root, "drift", "--nameserver", f"127.0.0.1:{server.dns_port}",
                                    "--format", "json", "--timeout", "1")
            drifted = json.loads(dr.stdout) if dr.stdout.strip() else {}
            full_s, fr = timed_cli(root, "drift", "--nameserver", f"127.0.0.1:{server.dns_port}",
                                   "--format", "json", "--api", "always", "--timeout", "1")
            full = json.loads(fr.stdout) if fr.stdout.strip() else {}
            # a full plan (a platform change) in one job, and in the pipeline's two shards
            # merged by plan-merge: the same plan, the planning split between two jobs
            whole_s, wp = timed_cli(root, "plan", "--target", "powerdns", "--format", "json")
            assert wp.returncode == 0, wp.stderr[-500:]
            shard_s = []
            for i in (1, 2):
                took, sp = timed_cli(root, "plan", "--target", "powerdns", "--shard", f"{i}/2",
                                     "--output-dir", str(root / "build" / "ci" / f"plan-{i}"),
                                     "--format", "json")
                assert sp.returncode == 0, sp.stderr[-500:]
                shard_s.append(took)
            merge_s, mp = timed_cli(root, "plan-merge", str(root / "build" / "ci" / "plan-1"),
                                    str(root / "build" / "ci" / "plan-2"), "--format", "json")
            assert mp.returncode == 0, mp.stderr[-500:]
            whole, merged = json.loads(wp.stdout), json.loads(mp.stdout)
            assert [(z["zone"], z["changes"]) for z in whole["zones"]] == \
                [(z["zone"], z["changes"]) for z in merged["zones"]], "shards != full plan"
            ours = validate_s + plan_s
            print(f"\nmerge request changing 1 of {n} institutions, {args.workers} workers:")
            print(f"  provisioner validate                    {validate_s:7.2f} s")
            print(f"  provisioner plan --changed-since        {plan_s:7.2f} s  "
                  f"({len(planned['zones'])} zones read, {changes} change(s))")
            print(f"  both                                    {ours:7.2f} s")
            print(f"  octodns-sync dry run (plans every zone) {peer_s:7.2f} s  ({files} zones)")
            print(f"  ratio ours/peer                         {ours / peer_s:7.3f}")
            read = len(drifted.get("api_zones", []))
            total = drifted.get("managed_zones", 0) or 1
            print(f"\nnightly drift of {n} institutions (1 drifted: the unapplied change):")
            full_read = len(full.get("api_zones", []))
            print(f"  DNS first   {drift_s:7.2f} s, {read} of {total} zones read through the API "
                  f"({100 * read / total:.2f} %), {route53_requests(read, total)} Route53 "
                  "requests")
            print(f"  full cycle  {full_s:7.2f} s, {full_read} zones read, "
                  f"{route53_requests(full_read, total)} Route53 requests "
                  f"({route53_requests(full_read, total) / 5 / 60:.0f} min at 5 requests/s)")
            print(f"\nfull plan of {n} institutions ({len(whole['zones'])} zones in the plan):")
            print(f"  one job                                 {whole_s:7.2f} s")
            print(f"  shard 1/2, shard 2/2                    {shard_s[0]:7.2f} s, "
                  f"{shard_s[1]:.2f} s (in parallel jobs: {max(shard_s):.2f} s)")
            print(f"  plan-merge of the two                   {merge_s:7.2f} s  (the same plan)")
            print(json.dumps({"institutions": n, "validate_s": round(validate_s, 2),
                              "plan_s": round(plan_s, 2), "peer_s": round(peer_s, 2),
                              "zones_read": len(planned["zones"]), "changes": changes,
                              "drift_s": round(drift_s, 2), "drift_api_zones": read,
                              "full_drift_s": round(full_s, 2),
                              "full_plan_s": round(whole_s, 2),
                              "shard_plan_s": [round(t, 2) for t in shard_s],
                              "plan_merge_s": round(merge_s, 2)}))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
