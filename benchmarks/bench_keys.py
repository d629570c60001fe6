"""Benchmark: DKIM keys for a fleet, beside the tools an operator would otherwise run.

1. Generation: the keys of N new institutions (2N RSA-2048 keys) made, stored (local store,
   0600 files written whole) and recorded (one state per institution), as the first apply does;
   beside dkimpy's ``dknewkey`` making the same count one after the other (how the customer
   guide's manual procedure runs it), and ``openssl genrsa`` on every CPU at once (the fastest
   a shell loop gets).
2. ``plan`` of the N institutions once applied, with their 2N key records in the DKIM zone and
   the key states read, beside today's plan of the same institutions without keys (the DKIM
   zone not managed). Each a fresh process as CI runs it, best of 3, on the local file target.

    .venv/bin/python benchmarks/bench_keys.py [--institutions 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.generate import generate  # noqa: E402
from provisioner.config import load_project  # noqa: E402
from provisioner.keys import clock, crypto, service  # noqa: E402
from provisioner.keys.store import LocalStore  # noqa: E402

BIN = Path(sys.executable).parent


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def best_of(argv: list[str], env: dict[str, str], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 2):
            raise SystemExit(f"{argv}: exit {done.returncode}: {done.stderr[-2000:]}")
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--institutions", type=int, default=1000)
    args = parser.parse_args()
    n = args.institutions
    cpus = crypto.workers()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        config = generate(base / "keyed", n)
        store_dir = base / "store"
        project = load_project(config)
        assert project.ok, [str(p) for p in project.problems if p.is_error]
        store = LocalStore(store_dir)
        states = service.read(project, store)
        keyed = len(service.pending(project, states))
        ours = timed(lambda: service.onboard_all(project, store, states, clock.now()))
        made = len(list(store_dir.glob("private/*/*.pem")))

        peer_dir = base / "dknewkey"
        peer_dir.mkdir()
        dknewkey = shutil.which("dknewkey", path=str(BIN)) or "dknewkey"

        def run_dknewkey() -> None:
            for i in range(made):
                subprocess.run([dknewkey, "--ktype", "rsa", f"k{i}"], cwd=peer_dir, check=True,
                               capture_output=True)

        peer = timed(run_dknewkey)
        openssl_dir = base / "openssl"
        openssl_dir.mkdir()

        def run_openssl() -> None:
            names = "\n".join(f"{openssl_dir}/k{i}.pem" for i in range(made))
            subprocess.run(["xargs", "-P", str(cpus), "-I{}", "openssl", "genrsa", "-out",
                            "{}", "2048"], input=names, text=True, check=True,
                           capture_output=True)

        fast_peer = timed(run_openssl)

        print(f"key generation, {keyed} institutions, {made} RSA-2048 keys, {cpus} CPU(s):")
        print(f"  ours (made, stored 0600, states recorded) {ours:7.1f} s  "
              f"{made / ours:6.1f} keys/s")
        print(f"  dknewkey, one after the other            {peer:7.1f} s  "
              f"{made / peer:6.1f} keys/s   ours: {peer / ours:.2f}x faster")
        print(f"  openssl genrsa on {cpus} CPU(s) (xargs -P)     {fast_peer:7.1f} s  "
              f"{made / fast_peer:6.1f} keys/s   ours: {fast_peer / ours:.2f}x its speed")

        # plan with keys (applied), and without (the DKIM zone not managed), each applied.
        plain = base / "plain"
        shutil.copytree(base / "keyed", plain)
        text = (plain / "provisioner.yaml").read_text()
        (plain / "provisioner.yaml").write_text(
            text.replace("  dkim.secutix.com: {target: local}\n", ""))
        env = {**os.environ, "MAILAUTH_KEYS_DIR": str(store_dir)}
        figures = {}
        for name, root in (("without keys", plain), ("with keys", base / "keyed")):
            cfg = str(root / "provisioner.yaml")
            applied = subprocess.run([str(BIN / "provisioner"), "apply", "--config", cfg],
                                     env=env, capture_output=True, text=True, cwd=root)
            assert applied.returncode == 0, applied.stderr[-2000:]
            figures[name] = best_of([str(BIN / "provisioner"), "plan", "--config", cfg,
                                     "--detailed-exitcode"], env)
        records = sum(1 for _ in (base / "keyed" / "build" / "dns").glob("*.yaml"))
        ratio = figures["with keys"] / figures["without keys"]
        print(f"plan of {n} applied institutions ({records} zone files), fresh process, "
              "best of 3:")
        print(f"  without keys (today)  {figures['without keys']:6.2f} s")
        print(f"  with {made} key records and {keyed} key states  "
              f"{figures['with keys']:6.2f} s   {ratio:.2f}x (goal: at most 1.2x)")


if __name__ == "__main__":
    main()
