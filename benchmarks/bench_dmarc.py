"""Benchmark: ingest 10,000 aggregate reports (generated, about 100 MB of XML, plain, gzip and
zip mixed) into SQLite and into PostgreSQL, beside parsedmarc's own command line on the same
files in the same run (``parsedmarc --offline --silent -o DIR``: the peer parses the same
reports with the same library and writes its JSON and CSV). Memory: the peak RSS of each run
at a quarter of the reports and at all of them (flat means about the same).

Goal (issue 12): the product's throughput at least the peer's.

    .venv/bin/python benchmarks/bench_dmarc.py [--reports 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests import dmarcgen as g  # noqa: E402

BIN = Path(sys.executable).parent
INSTITUTIONS = 200


def make_project(root: Path) -> None:
    shutil.copy(REPO / "provisioner.yaml", root / "provisioner.yaml")
    (root / "zones").mkdir()
    for i in range(INSTITUTIONS):
        (root / "zones" / f"inst{i:04d}.yaml").write_text(
            f"institution: inst{i:04d}\nname: Institution {i}\ndomains:\n"
            f"  inst{i:04d}.example:\n    dns: external\n    dmarc: {{policy: none}}\n")


def make_reports(out: Path, n: int, seed: int = 7) -> int:
    """``n`` reports of about 10 KB of XML each; returns the XML bytes made."""
    rnd = random.Random(seed)
    out.mkdir(parents=True)
    total = 0
    today = date(2026, 12, 2)
    for k in range(n):
        domain = f"inst{k % INSTITUTIONS:04d}.example"
        org = ("google.com", "yahoo.com", "outlook.com", "mail.ru")[k % 4]
        day = today - timedelta(days=(k // (INSTITUTIONS * 4)) % 60)
        rows = [g.platform_row(domain, rnd.randint(50, 5000))]
        rows += [g.other_row(domain, rnd.randint(1, 40), f"198.51.{rnd.randint(0, 255)}."
                             f"{rnd.randint(1, 254)}", passing=rnd.random() < 0.5)
                 for _ in range(22)]
        xml = g.aggregate(domain, org, f"{org}-{k}", day, rows)
        total += len(xml)
        name = g.file_name(org, domain, day, str(k))
        if k % 3 == 0:
            (out / name).write_bytes(xml)
        elif k % 3 == 1:
            (out / (name + ".gz")).write_bytes(g.gzipped(xml))
        else:
            (out / (name[:-4] + ".zip")).write_bytes(g.zipped(xml, name))
    return total


_MEASURE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(r.returncode)")


def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall time and the peak RSS (MiB) of the largest process of this run alone (measured
    by a wrapper process: its children's peak covers the ingest's workers too)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURE, *argv], capture_output=True,
                          text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 2):  # 2: some reports quarantined (none are, here)
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, int(done.stderr.strip().splitlines()[-1]) // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=10000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-dmarc-"))
    try:
        make_project(work)
        size = make_reports(work / "all", args.reports)
        quarter = work / "quarter"
        quarter.mkdir()
        for p in sorted((work / "all").iterdir())[: args.reports // 4]:
            os.link(p, quarter / p.name)
        on_disk = sum(p.stat().st_size for p in (work / "all").iterdir())
        print(f"{args.reports} reports: {size / 1e6:.1f} MB of XML, {on_disk / 1e6:.1f} MB on "
              f"disk (plain, gzip and zip), for {INSTITUTIONS} institutions; "
              f"{os.cpu_count()} cores")
        results: dict[str, tuple[float, int]] = {}
        peer = [str(BIN / "parsedmarc"), "--offline", "--silent", "-o"]
        results["peer-quarter"] = run([*peer, str(work / "peer-q"), str(quarter)])
        results["peer"] = run([*peer, str(work / "peer"), str(work / "all")])
        ours = [str(BIN / "provisioner"), "dmarc", "ingest", "--config",
                str(work / "provisioner.yaml")]
        results["sqlite-quarter"] = run([*ours, "--database",
                                         f"sqlite:///{work}/q.sqlite3", str(quarter)])
        results["sqlite"] = run([*ours, "--database", f"sqlite:///{work}/all.sqlite3",
                                 str(work / "all")])
        # One parsing process, as the peer has by default: the same work on one core.
        results["sqlite-1"] = run([*ours, "--jobs", "1", "--database",
                                   f"sqlite:///{work}/one.sqlite3", str(work / "all")])
        from tests.mailservers import PG_DATABASE, PG_PASSWORD, PG_USER, PostgresServer

        server = PostgresServer().start()
        try:
            env = {**os.environ, "PGPASSWORD": PG_PASSWORD}
            url = f"postgresql://{PG_USER}@127.0.0.1:{server.port}/{PG_DATABASE}"
            results["postgresql"] = run([*ours, "--database", url, str(work / "all")], env)
        finally:
            server.close()
        peer_rate = args.reports / results["peer"][0]
        print(f"{'run':<28}{'seconds':>9}{'reports/s':>11}{'peak RSS':>10}")
        rows = [("parsedmarc CLI (peer)", "peer"), ("ours, SQLite", "sqlite"),
                ("ours, PostgreSQL", "postgresql"), ("ours, SQLite, --jobs 1", "sqlite-1")]
        for label, key in rows:
            t, rss = results[key]
            print(f"{label:<28}{t:>9.1f}{args.reports / t:>11.0f}{rss:>8} MiB")
        for label, key in rows[1:]:
            print(f"ratio, {label} / peer: {args.reports / results[key][0] / peer_rate:.2f}x "
                  "(goal: at least 1.00)")
        print(f"memory, ours SQLite: {results['sqlite-quarter'][1]} MiB at "
              f"{args.reports // 4} reports, {results['sqlite'][1]} MiB at {args.reports} "
              f"(peer: {results['peer-quarter'][1]} MiB, then {results['peer'][1]} MiB; it keeps "
              "every report until it writes)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
