"""Benchmark: start-up time of `validate` and `verify`, this checkout beside an earlier commit.

Issue 11 added colour, progress bars, completion and more commands; none of it may make the
commands people run most start slower by more than 10 %. Each command runs as a fresh process
(interpreter start, imports, the sample repository loaded), alternating between the two
checkouts so that both see the same machine load; the figure is the median of --repeat runs.

- `validate` on the repository's own samples, output to a pipe (as CI runs it);
- `verify --institution nosuch`: verify's imports and the project loaded, then exit 1
  without any DNS query, so the network does not enter the figure.

    python -m benchmarks.bench_startup [--peer REF] [--repeat 21]

The peer (default f4fb9c6, the last commit before issue 11) is checked out into a temporary
git worktree and imported from there with the same interpreter and packages.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMANDS = {
    "validate": ["validate"],
    "verify": ["verify", "--institution", "nosuch"],
}


def run_once(checkout: Path, args: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    env.pop("FORCE_COLOR", None)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "provisioner", *args, "--config",
                    str(REPO / "provisioner.yaml")], env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False, cwd=checkout)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", default="f4fb9c6")
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        peer = Path(tmp) / "peer"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(peer),
                        args.peer], check=True)
        try:
            for checkout in (REPO, peer):  # both byte-compiled, as an installed package is
                subprocess.run([sys.executable, "-m", "compileall", "-q",
                                str(checkout / "provisioner")], check=True)
            for checkout in (REPO, peer):  # both import the package they are asked for
                where = subprocess.run(
                    [sys.executable, "-c", "import provisioner; print(provisioner.__file__)"],
                    env=dict(os.environ, PYTHONPATH=str(checkout)), capture_output=True,
                    text=True, check=True, cwd=checkout).stdout.strip()
                assert where.startswith(str(checkout)), where
            print(f"start-up, median of {args.repeat} runs each, alternating "
                  f"(this checkout vs {args.peer}):")
            for name, cmd in COMMANDS.items():
                ours, theirs = [], []
                for _ in range(args.repeat):
                    ours.append(run_once(REPO, cmd))
                    theirs.append(run_once(peer, cmd))
                a, b = statistics.median(ours), statistics.median(theirs)
                print(f"  {name:9} {a * 1000:6.0f} ms vs {b * 1000:6.0f} ms  "
                      f"({(a / b - 1) * 100:+.1f} %)")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(peer)],
                           check=False)


if __name__ == "__main__":
    main()
