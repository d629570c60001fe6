"""Benchmark: `validate` and `records` over 1,000 and 10,000 institutions, beside octoDNS.

The peer is `octodns-validate` over the same records written as octoDNS YAML zone files: what a
team would run if it kept the records by hand in octoDNS. Each command runs as a fresh process,
as CI runs it (interpreter start and imports included); wall time is the best of --repeat runs,
peak memory the child's maximum resident set size.

    python -m benchmarks.bench_core [--sizes 1000 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from benchmarks.generate import generate

BIN = Path(sys.executable).parent


def measure(cmd: list[str], cwd: Path, repeat: int) -> tuple[float, float]:
    """Best wall time (s) and largest peak RSS (MiB) of ``cmd`` over ``repeat`` runs."""
    best, peak = float("inf"), 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-500:]}")
        best = min(best, elapsed)
        peak = max(peak, usage.ru_maxrss / 1024)
    return best, peak


def octodns_tree(root: Path) -> Path:
    """The project's records as an octoDNS YamlProvider tree; returns the config file."""
    out = subprocess.run(
        [str(BIN / "provisioner"), "records", "--format", "json"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    zones: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for rec in json.loads(out):
        values = [
            v.replace(";", "\\;") if isinstance(v, str) and rec["type"] == "TXT" else v
            for v in rec["values"]
        ]
        entry: dict[str, Any] = {"type": rec["type"], "ttl": rec["ttl"]}
        if rec["type"] == "CNAME":
            entry["value"] = values[0]
        else:
            entry["values"] = values
        zones[rec["zone"]][rec["name"]].append(entry)
    directory = root / "octodns-zones"
    directory.mkdir()
    for zone, names in zones.items():
        data = {name: (recs[0] if len(recs) == 1 else recs) for name, recs in names.items()}
        (directory / f"{zone}yaml").write_text(yaml.safe_dump(data, sort_keys=True))
    config = root / "octodns.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "providers": {
                    "files": {
                        "class": "octodns.provider.yaml.YamlProvider",
                        "directory": str(directory),
                        "enforce_order": False,
                    }
                },
                "zones": {"*": {"sources": ["files"], "targets": ["files"]}},
            }
        )
    )
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    provisioner = str(BIN / "provisioner")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-core-") as tmp:
        for n in args.sizes:
            root = Path(tmp) / f"n{n}"
            generate(root, n)
            v = measure([provisioner, "validate"], root, args.repeat)
            r = measure([provisioner, "records", "--format", "json"], root, args.repeat)
            config = octodns_tree(root)
            peer = measure([str(BIN / "octodns-validate"), "--config-file", str(config)], root, 1)
            rows.append((n, v, r, peer))
    print(
        f"{'institutions':>12}  {'validate':>16}  {'records json':>16}  {'both':>8}  "
        f"{'octodns-validate':>18}  {'peer/both':>9}"
    )
    for n, v, r, peer in rows:
        both = v[0] + r[0]
        print(
            f"{n:>12}  {v[0]:>7.2f} s {v[1]:>5.0f} MiB  {r[0]:>7.2f} s {r[1]:>5.0f} MiB  "
            f"{both:>6.2f} s  {peer[0]:>8.2f} s {peer[1]:>5.0f} MiB  {peer[0] / both:>8.1f}x"
        )


if __name__ == "__main__":
    main()
