"""Runs that die or race: a process killed between making a key and recording it leaves no half
state (the next run converges on the same keys), and two runs at once never put two different
keys on one selector. Real processes (fork), a real SIGKILL, a real PowerDNS."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from provisioner.cli import main
from provisioner.keys import crypto
from provisioner.keys.store import LocalStore
from tests.keys_project import key_strings
from tests.servers import PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures
from tests.test_keys_powerdns import KEY1, KEY2, served, states, stored_key

FORK = multiprocessing.get_context("fork")


def in_child(target: Callable[[], int]) -> int:
    """Run ``target`` in a forked process; its exit code (negative: killed by that signal)."""
    def body() -> None:
        code = 1
        try:
            code = target()
        finally:
            os._exit(code)

    proc = FORK.Process(target=body)
    proc.start()
    proc.join(120)
    assert proc.exitcode is not None, "the child hung"
    return proc.exitcode


def published(port: int, name: str) -> str | None:
    found = key_strings(port, name + ".")
    return b"".join(found[0]).decode() if found else None


def test_killed_between_generation_and_publication_converges_on_the_same_keys(
    tmp_path: Path, pdns: PdnsServer, key_store: Path,  # noqa: F811
) -> None:
    root = served(tmp_path, pdns)
    config = str(root / "provisioner.yaml")

    def die_before_recording() -> int:
        def killed(self: LocalStore, state: object) -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        LocalStore.write_state = killed  # type: ignore[assignment,method-assign]
        return main(["apply", "--config", config])

    assert in_child(die_before_recording) == -signal.SIGKILL
    made = {p.name: p.read_bytes() for p in key_store.glob("private/mosa/*.pem")}
    assert sorted(made) == ["sel1-mosa.1.pem", "sel2-mosa.1.pem"]  # made, then killed
    assert not (key_store / "state" / "mosa.json").exists()  # nothing recorded
    assert published(pdns.dns_port, KEY1) is None  # nothing published

    assert main(["apply", "--config", config]) == 0
    assert {p.name: p.read_bytes() for p in key_store.glob("private/mosa/*.pem")} == made
    for record, key_id in ((KEY1, "sel1-mosa.1"), (KEY2, "sel2-mosa.1")):
        public = crypto.public_of(made[f"{key_id}.pem"])
        assert published(pdns.dns_port, record) == f"v=DKIM1; k=rsa; p={public}"
    selectors = states(key_store)
    assert selectors["sel1-mosa"]["key"]["public"] == crypto.public_of(  # type: ignore[index]
        made["sel1-mosa.1.pem"])
    assert main(["plan", "--detailed-exitcode", "--config", config]) == 0


def test_two_runs_at_once_put_one_key_on_each_selector(
    tmp_path: Path, pdns: PdnsServer, key_store: Path,  # noqa: F811
) -> None:
    root = served(tmp_path, pdns)
    config = str(root / "provisioner.yaml")
    # Both runs have generated their keys before either stores one: the worst interleaving.
    barrier = FORK.Barrier(2, timeout=60)
    original = LocalStore.create_private

    def racing() -> int:
        def create(self: LocalStore, code: str, key_id: str, pem: bytes) -> bool:
            if key_id == "sel1-mosa.1":
                barrier.wait()
            return original(self, code, key_id, pem)

        LocalStore.create_private = create  # type: ignore[method-assign]
        return main(["apply", "--no-verify", "--config", config])

    procs = [FORK.Process(target=lambda: os._exit(racing())) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    # Both wrote the zone at once; a DNS host may refuse one of two simultaneous writes
    # (exit 1), never two different keys. One more run converges.
    assert sorted(p.exitcode for p in procs) in ([0, 0], [0, 1]), [p.exitcode for p in procs]
    assert main(["apply", "--no-verify", "--config", config]) == 0
    keys = sorted(p.name for p in key_store.glob("private/mosa/*.pem"))
    assert keys == ["sel1-mosa.1.pem", "sel2-mosa.1.pem"]
    for record, key_id in ((KEY1, "sel1-mosa.1"), (KEY2, "sel2-mosa.1")):
        public = crypto.public_of(stored_key(key_store, key_id))
        assert published(pdns.dns_port, record) == f"v=DKIM1; k=rsa; p={public}"
        label = key_id.split(".")[0]
        assert states(key_store)[label]["key"]["public"] == public  # type: ignore[index]
    assert main(["plan", "--detailed-exitcode", "--config", config]) == 0


@pytest.fixture(autouse=True)
def _no_stray_children() -> None:
    assert not multiprocessing.active_children()


def test_the_default_store_is_created_with_its_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fresh machine has no ~/.local/share/mailauth-provisioner: the store makes it."""
    from provisioner.keys.policy import StoreConfig
    from provisioner.keys.store import open_store

    monkeypatch.delenv("MAILAUTH_KEYS_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    store = open_store(StoreConfig(), "dkim.secutix.com")
    assert store.create_private("mosa", "sel1-mosa.1", b"pem")
    made = tmp_path / "home" / ".local" / "share" / "mailauth-provisioner" / "dkim.secutix.com"
    assert (made / "private" / "mosa" / "sel1-mosa.1.pem").read_bytes() == b"pem"
    assert made.stat().st_mode & 0o777 == 0o700
    assert (made / "private" / "mosa" / "sel1-mosa.1.pem").stat().st_mode & 0o777 == 0o600
