"""Benchmark: DKIM keys for a fleet, beside the tools an operator would otherwise run.

1. Generation: the keys of N new institutions (2N RSA-2048 keys) made, stored (local store,
   0600 files written whole) and recorded (one state per institution), as the first apply does;
   beside dkimpy's ``dknewkey`` making the same count one after the other (how the customer
   guide's manual procedure runs it), and ``openssl genrsa`` on every CPU at once (the fastest
   a shell loop gets).
2. ``plan`` of the N institutions once applied, with their 2N key records in the DKIM zone and
   the key states read, beside today's plan of the same institutions without keys (the DKIM
   zone not managed). Each a fresh process as CI runs it, best of 3, on the local file target.

    .venv/bin/python benchmarks/bench_keys.py [--institutions 1000] [--today REF]
        [--plan-only]

``--today REF`` also times the plan without keys with the code of git commit REF (a worktree,
first on PYTHONPATH): the product as it was before keys. ``--plan-only`` skips the generation
figures and records states whose public keys are 10 real RSA-2048 keys reused (the records
are as long as real ones; only their values repeat).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def best_of(argv: list[str], env: dict[str, str], repeat: int = 3,
            cwd: Path | None = None) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=cwd)
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 2):
            raise SystemExit(f"{argv}: exit {done.returncode}: {done.stderr[-2000:]}")
    return min(times)


def generation(project: Any, store: LocalStore, states: Any, base: Path, keyed: int,
               cpus: int) -> None:
    store_dir = store.directory
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



def fake_states(project: Any, store: LocalStore, states: Any) -> None:
    from provisioner.keys import lifecycle
    from provisioner.keys.policy import KeySpec
    from provisioner.keys.state import KeyInfo

    publics = [crypto.generate(KeySpec())[1] for _ in range(10)]
    now = clock.now()
    for i, state in enumerate(states.values()):
        for j, need in enumerate(lifecycle.onboard(state, KeySpec()).needs):
            key = KeyInfo(need.key_id, "rsa", 2048, publics[(2 * i + j) % 10], now)
            state = lifecycle.place(state, need, key, now)
        store.write_state(state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--institutions", type=int, default=1000)
    parser.add_argument("--today", metavar="REF", help="also time the plan without keys with "
                        "this git commit's code")
    parser.add_argument("--plan-only", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
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
        if args.plan_only:
            fake_states(project, store, states)
        else:
            generation(project, store, states, base, keyed, cpus)
        # plan with keys (applied), and without (the DKIM zone not managed), each applied.
        plain = base / "plain"
        shutil.copytree(base / "keyed", plain)
        text = (plain / "provisioner.yaml").read_text()
        text = text.replace("  dkim.secutix.com: {target: local}\n", "")
        # Without the keys: block too, which the code before keys did not know (its defaults).
        text = re.sub(r"\n    # The DKIM keys.*?store: \{type: local\}\n", "\n", text,
                      flags=re.DOTALL)
        (plain / "provisioner.yaml").write_text(text)
        env = {**os.environ, "MAILAUTH_KEYS_DIR": str(store_dir)}
        runs = [("without keys", plain, env), ("with keys", base / "keyed", env)]
        if args.today:
            tree = base / "today"
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.today],
                           cwd=REPO, check=True, capture_output=True)
            runs.append((f"without keys, at {args.today}", plain,
                         {**env, "PYTHONPATH": str(tree)}))
        try:
            for name, root, run_env in runs:
                cfg = str(root / "provisioner.yaml")
                applied = subprocess.run([sys.executable, "-m", "provisioner", "apply",
                                          "--config", cfg],
                                         env={**run_env, "PROVISIONER_AUTO_APPROVE": "yes"},
                                         capture_output=True,
                                         text=True, cwd=root)
                assert applied.returncode == 0, applied.stderr[-2000:]
                used = subprocess.run([sys.executable, "-c", "import provisioner; "
                                       "print(provisioner.__file__)"], env=run_env, cwd=root,
                                      capture_output=True, text=True).stdout.strip()
                print(f"  ({name}: {used})")
            # Interleaved, so that a busy moment of the machine hits every side alike.
            times: dict[str, list[float]] = {name: [] for name, _, _ in runs}
            for _ in range(args.repeat):
                for name, root, run_env in runs:
                    times[name].append(best_of([sys.executable, "-m", "provisioner", "plan",
                                                "--config", str(root / "provisioner.yaml"),
                                                "--detailed-exitcode"], run_env, 1, root))
            figures = {name: min(values) for name, values in times.items()}
        finally:
            if args.today:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO,
                               capture_output=True)
        records = sum(1 for _ in (base / "keyed" / "build" / "dns").glob("*.yaml"))
        ratio = figures["with keys"] / figures["without keys"]
        print(f"plan of {n} applied institutions ({records} zone files), fresh process, "
              f"best of {args.repeat}:")
        print(f"  without keys (the DKIM zone not managed)  {figures['without keys']:6.2f} s")
        print(f"  with {2 * keyed} key records and {keyed} key states  "
              f"{figures['with keys']:6.2f} s   {ratio:.2f}x")
        for name, value in figures.items():
            if name.startswith("without keys, at"):
                print(f"  {name}: {value:6.2f} s; with keys now / then: "
                      f"{figures['with keys'] / value:.2f}x (goal: at most 1.2x)")


if __name__ == "__main__":
    main()
