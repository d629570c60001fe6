"""Key stores: where private keys and the key state live (DESIGN §9), behind one small interface.

- :class:`LocalStore`, the embedded default: a directory outside the repository
  (``$MAILAUTH_KEYS_DIR``, else ``$XDG_DATA_HOME/mailauth-provisioner/<dkim zone>``), directories
  0700, files 0600, every file written whole or not at all (a temporary file, fsync, then a
  hard link or rename).
- :class:`~provisioner.keys.secretsmanager.SecretsManagerStore`: AWS Secrets Manager.

Two rules hold in every store:

- a private key is written once, under its id (``sel1-mosa.2``), and never replaced: a run that
  dies after generating a key and before recording it finds the key there next time and uses
  it, and two runs racing for one selector end with the one key that was stored first;
- a state is written over the version it was read at (compare and swap): the loser of a race
  gets :class:`Conflict` and starts again from what the winner wrote.

Private keys are bytes handed to the caller; no message, log line or exception of a store
carries one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from provisioner.errors import ProvisionerError
from provisioner.keys.policy import StoreConfig
from provisioner.keys.state import InstitutionKeys, StateError, from_json

log = logging.getLogger(__name__)
ENV_DIR = "MAILAUTH_KEYS_DIR"
_ID = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


class StoreError(ProvisionerError):
    """The store cannot be read or written; the message names the store, never a key."""


class Conflict(StoreError):
    """Another run wrote this institution's state since it was read."""


class KeyStore(Protocol):
    location: str  # for messages: "local directory /...", "secretsmanager prefix ..."

    def read_states(self, codes: Collection[str] | None = None) -> dict[str, InstitutionKeys]:
        """The stored states of ``codes`` (None: every institution); absent ones are left out."""
        ...

    def write_state(self, state: InstitutionKeys) -> InstitutionKeys:
        """Store ``state`` over ``state.version``; returns it with the new version."""
        ...

    def create_private(self, code: str, key_id: str, pem: bytes) -> bool:
        """Store a private key under a new id; False (nothing written) when the id exists."""
        ...

    def read_private(self, code: str, key_id: str) -> bytes: ...

    def reference(self, code: str, key_id: str) -> str:
        """Where the mail platform finds the private key: a file path, a secret ARN."""
        ...


def check_id(*parts: str) -> None:
    for part in parts:
        if not _ID.match(part) or ".." in part:
            raise StoreError(f"{part!r} is not a key or institution name the store accepts")


def default_directory(dkim_zone: str) -> Path:
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailauth-provisioner" / dkim_zone


def open_store(config: StoreConfig, dkim_zone: str) -> KeyStore:
    if config.kind == "secretsmanager":
        from provisioner.keys.secretsmanager import SecretsManagerStore

        return SecretsManagerStore(config.prefix, config.region, config.kms_key_id)
    directory = Path(config.directory) if config.directory else default_directory(dkim_zone)
    return LocalStore(directory)


class LocalStore:
    """``<dir>/state/<code>.json`` and ``<dir>/private/<code>/<key id>.pem``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.expanduser().absolute()
        self.location = f"local directory {self.directory}"

    # --- files ------------------------------------------------------------------------------

    def _dir(self, *parts: str, create: bool) -> Path:
        path = self.directory.joinpath(*parts)
        if create:
            try:  # its parents (~/.local/share/...) as the user's umask makes them
                self.directory.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{self.location}: cannot create {self.directory.parent}: "
                                 f"{exc.strerror}") from None
            for p in (self.directory, *(self.directory.joinpath(*parts[:i + 1])
                                        for i in range(len(parts)))):
                try:
                    p.mkdir(mode=0o700)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise StoreError(f"{self.location}: cannot create {p}: "
                                     f"{exc.strerror}") from None
                if p.is_symlink() or not p.is_dir():
                    raise StoreError(f"{self.location}: {p} is not a directory")
                if p.stat().st_mode & 0o077:
                    os.chmod(p, 0o700)
        return path

    @staticmethod
    def _temporary(directory: Path, data: bytes) -> str:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")  # mode 0600
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

    @staticmethod
    def _sync_dir(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextmanager
    def _locked(self, code: str) -> Iterator[None]:
        lock = self._dir("state", create=True) / f".{code}.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # --- state ------------------------------------------------------------------------------

    def _read_state_file(self, path: Path) -> InstitutionKeys:
        try:
            return from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, StateError) as exc:
            raise StoreError(f"{self.location}: {path.name}: {exc}") from None

    def read_states(self, codes: Collection[str] | None = None) -> dict[str, InstitutionKeys]:
        directory = self.directory / "state"
        if not directory.is_dir():
            return {}
        if codes is None:
            paths = sorted(directory.glob("*.json"))
        else:
            paths = [directory / f"{c}.json" for c in codes]
        out: dict[str, InstitutionKeys] = {}
        for path in paths:
            if not path.exists():
                continue
            state = self._read_state_file(path)
            out[state.institution] = state
        return out

    def write_state(self, state: InstitutionKeys) -> InstitutionKeys:
        check_id(state.institution)
        code = state.institution
        with self._locked(code):
            directory = self._dir("state", create=True)
            path = directory / f"{code}.json"
            stored = self._read_state_file(path).version if path.exists() else 0
            if stored != state.version:
                raise Conflict(f"{self.location}: the key state of {code} changed while this "
                               f"run worked (version {stored}, read at {state.version})")
            from dataclasses import replace

            new = replace(state, version=state.version + 1)
            data = json.dumps(new.to_json(), indent=1, sort_keys=True).encode("utf-8") + b"\n"
            tmp = self._temporary(directory, data)
            os.replace(tmp, path)
            self._sync_dir(directory)
        return new

    # --- private keys -----------------------------------------------------------------------

    def _private_path(self, code: str, key_id: str) -> Path:
        check_id(code, key_id)
        return self.directory / "private" / code / f"{key_id}.pem"

    def create_private(self, code: str, key_id: str, pem: bytes) -> bool:
        path = self._private_path(code, key_id)
        directory = self._dir("private", code, create=True)
        tmp = self._temporary(directory, pem)
        try:
            os.link(tmp, path)  # fails when the id exists: a key is never replaced
        except FileExistsError:
            return False
        except OSError as exc:
            raise StoreError(f"{self.location}: cannot store key {key_id}: "
                             f"{exc.strerror}") from None
        finally:
            os.unlink(tmp)
        self._sync_dir(directory)
        return True

    def read_private(self, code: str, key_id: str) -> bytes:
        path = self._private_path(code, key_id)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise StoreError(f"{self.location}: no private key {key_id}") from None
            raise StoreError(f"{self.location}: cannot read key {key_id}: "
                             f"{exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def reference(self, code: str, key_id: str) -> str:
        return str(self._private_path(code, key_id))
