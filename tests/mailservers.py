"""Real servers for DMARC report ingestion: PostgreSQL and Dovecot IMAP, on 127.0.0.1.

- :class:`PostgresServer`: Debian's ``postgres`` (the highest version under
  ``/usr/lib/postgresql``), a fresh cluster in a temporary directory, durability off (fsync,
  synchronous_commit, full_page_writes), TCP on 127.0.0.1 at a free port and its unix socket in
  the temporary directory. The database ``reports`` belongs to a login role with a password
  (:attr:`PostgresServer.url`); the cluster's superuser ``postgres`` is reached only through the
  unix socket (trust), for :meth:`PostgresServer.reset`.
- :class:`DovecotServer`: Debian's ``dovecot -F`` with a configuration of its own (no
  ``/etc/dovecot``), IMAP only on 127.0.0.1 at a free port, no TLS, plaintext login of one
  user (passwd-file), no delay or penalty after a failed login, a maildir in the temporary
  directory, logs in a file there (never syslog).

Tests run as root in CI, which neither server takes as it is: ``initdb``/``postgres`` refuse
root and run as Debian's ``postgres`` system user then; Dovecot's master runs as root, its
internal and login processes as its own ``dovecot``/``dovenull`` users, and the mailbox belongs
to ``nobody`` (Dovecot never reads mail as uid 0). As any other user, both run as that user.

Fixtures: ``postgres_server``/``dovecot_server`` (one per session, i.e. per xdist worker) and
``postgres``/``dovecot`` (the same, emptied for the test). Everything stops when the tests end,
at the latest at interpreter exit (atexit). Use ``from tests.mailservers import postgres,
postgres_server, dovecot, dovecot_server``.
"""

from __future__ import annotations

import atexit
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port

PG_ROOT = Path("/usr/lib/postgresql")
DOVECOT = Path("/usr/sbin/dovecot")
INSTALL_HINT = "run scripts/install-system-deps as root"

PG_USER = "dmarc"
PG_PASSWORD = "dmarc-test-password"
PG_DATABASE = "reports"
IMAP_USER = "dmarc"
IMAP_PASSWORD = "imap-test-password"


def postgres_bin() -> Path | None:
    """The bin directory of the highest PostgreSQL version installed, or None."""
    found = [p.parent for p in PG_ROOT.glob("*/bin/postgres") if p.parent.parent.name.isdigit()]
    return max(found, key=lambda p: int(p.parent.name)) if found else None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop_process(proc: subprocess.Popen[bytes] | None, first: int, grace: float) -> None:
    """Send ``first``, wait ``grace`` seconds, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(first)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class PostgresServer:
    """One PostgreSQL cluster; ``start``/``stop`` may be called repeatedly (same data)."""

    def __init__(self) -> None:
        binaries = postgres_bin()
        if binaries is None:
            raise FileNotFoundError(f"no {PG_ROOT}/*/bin/postgres")
        self.bin = binaries
        self.version = binaries.parent.name
        # Not under pytest's basetemp: that is 0700 and root's, and the postgres user must
        # reach the data directory.
        self.workdir = Path(tempfile.mkdtemp(prefix="mailauth-pg-"))
        self._owner = os.getpid()
        atexit.register(self.close)
        self.data = self.workdir / "data"
        self.sockets = self.workdir / "sock"
        self.log = self.workdir / "postgres.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")  # Debian's postgresql-common creates it
            except KeyError:
                raise RuntimeError(f"no postgres system user (initdb refuses root): "
                                   f"{INSTALL_HINT}") from None
            self._run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        self.sockets.mkdir()
        password_file = self.workdir / "superuser-password"
        password_file.write_text(PG_PASSWORD + "\n")
        if self._run_as:
            for path in (self.workdir, self.sockets, password_file):
                os.chown(path, self._run_as["user"], self._run_as["group"])
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                   f"--pwfile={password_file}", "--auth-local=trust",
                   "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"])
        self._initialized = False

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC",
                "HOME": str(self.workdir)}

    def _run(self, argv: list[str]) -> None:
        with open(self.log, "ab") as log:
            done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                  env=self._env(), check=False, **self._run_as)
        if done.returncode:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}):\n{_tail(self.log)}")

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{self.port}/{PG_DATABASE}"

    def start(self, timeout: float = 30) -> PostgresServer:
        import psycopg

        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.sockets),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
            "max_connections": "30",
            "logging_collector": "off",
            "log_destination": "stderr",
        }
        argv = [str(self.bin / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.workdir, env=self._env(), **self._run_as)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited ({self.proc.returncode}):\n{_tail(self.log)}")
            try:
                self._admin("postgres").close()
                break
            except psycopg.OperationalError as error:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"postgres did not accept connections in {timeout} s "
                                       f"({error}):\n{_tail(self.log)}") from None
                time.sleep(0.05)
        if not self._initialized:
            with self._admin("postgres") as conn:
                conn.execute(f"CREATE ROLE {PG_USER} LOGIN PASSWORD '{PG_PASSWORD}'")
                conn.execute(f"CREATE DATABASE {PG_DATABASE} OWNER {PG_USER}")
            self._initialized = True
        return self

    def _admin(self, database: str) -> Any:
        """The superuser, through the unix socket (trust), autocommit."""
        import psycopg

        return psycopg.connect(host=str(self.sockets), port=self.port, user="postgres",
                               dbname=database, autocommit=True, connect_timeout=5)

    def connect(self, **kwargs: Any) -> Any:
        """A psycopg connection to ``reports`` as the report user, over TCP with the password."""
        import psycopg

        kwargs.setdefault("connect_timeout", 5)
        return psycopg.connect(self.url, **kwargs)

    def reset(self) -> None:
        """``reports`` empty: other sessions ended, the public schema dropped and recreated
        (owned by the database owner, as a new database's is)."""
        with self._admin(PG_DATABASE) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (PG_DATABASE,))
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public AUTHORIZATION pg_database_owner")
            conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL after 10 s."""
        _stop_process(self.proc, signal.SIGINT, 10)
        self.proc = None

    def close(self) -> None:
        """Stop and delete the cluster; idempotent (the fixture and atexit both call it), and
        a no-op in a forked child (its atexit must not stop the parent's server)."""
        if os.getpid() != self._owner:
            return
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def dovecot_version() -> tuple[int, int]:
    out = subprocess.run([str(DOVECOT), "--version"], capture_output=True, text=True,
                         check=True).stdout
    match = re.match(r"(\d+)\.(\d+)", out)
    if not match:
        raise RuntimeError(f"unexpected dovecot --version: {out!r}")
    return int(match[1]), int(match[2])


#: LIST flags (lower case) of a folder that holds no messages of its own, only children
_PLACEHOLDER = {b"\\noselect", b"\\nonexistent"}


def _placeholder(flags: Any) -> bool:
    return bool(_PLACEHOLDER & {flag.lower() for flag in flags})


class DovecotServer:
    """One Dovecot with one IMAP user; ``start``/``stop`` may be called repeatedly."""

    user = IMAP_USER
    password = IMAP_PASSWORD
    host = "127.0.0.1"

    def __init__(self) -> None:
        self.version = dovecot_version()
        # Not under pytest's basetemp (0700): Dovecot's unprivileged processes connect to
        # sockets in base_dir.
        self.workdir = Path(tempfile.mkdtemp(prefix="mailauth-dovecot-"))
        self.workdir.chmod(0o755)
        self.config = self.workdir / "dovecot.conf"
        self.log = self.workdir / "dovecot.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._owner = os.getpid()
        atexit.register(self.close)

    @property
    def url(self) -> str:
        return f"imap://{self.user}@{self.host}:{self.port}/INBOX"

    def _write_config(self) -> None:
        work = self.workdir
        if os.geteuid() == 0:
            # Dovecot's own unprivileged users for its internal and login processes (their
            # default). The mail cannot be root's: imap refuses "userdb returned 0 as uid"
            # whatever first_valid_uid says, so it belongs to nobody.
            nobody = pwd.getpwnam("nobody")
            uid, gid = nobody.pw_uid, nobody.pw_gid
            for directory in (work / "mail", work / "home"):
                directory.mkdir(exist_ok=True)
                os.chown(directory, uid, gid)
            users = "default_internal_user = dovecot\ndefault_login_user = dovenull\n"
            chroots = ""
        else:
            me = pwd.getpwuid(os.getuid())
            uid, gid = me.pw_uid, me.pw_gid
            users = (f"default_internal_user = {me.pw_name}\n"
                     f"default_login_user = {me.pw_name}\n"
                     f"default_internal_group = {grp.getgrgid(gid).gr_name}\n")
            # chroot needs root
            chroots = "".join(f"service {s} {{\n  chroot =\n}}\n"
                              for s in ("imap-login", "anvil", "ipc", "stats"))
        # Only this user logs in (a static passdb would take any name with the password); the
        # auth process reads the file as default_internal_user.
        users_file = work / "users"
        users_file.write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        users_file.chmod(0o644)
        common = f"""\
listen = {self.host}
base_dir = {work}/run
state_dir = {work}/state
log_path = {self.log}
info_log_path = {self.log}
{users}first_valid_uid = {uid}
first_valid_gid = {gid}
ssl = no
auth_mechanisms = plain login
# A failed login answers at once (auth_failure_delay, 2 s by default)
auth_failure_delay = 0
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
# No auth penalty: anvil would delay every login from 127.0.0.1 by 2, 4, 8... s after failed
# ones (a test of a wrong password slowing the next tests). auth finds no socket at the path
# it asks for, so it turns the penalty off, silently (ENOENT).
service anvil {{
  unix_listener anvil-auth-penalty {{
    path = anvil-auth-penalty-disabled
  }}
}}
{chroots}"""
        if self.version >= (2, 4):
            text = f"""\
dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
protocols = imap
{common}auth_allow_cleartext = yes
mail_driver = maildir
mail_path = {work}/mail
mail_home = {work}/home
passdb passwd-file {{
  passwd_file_path = {users_file}
}}
userdb static {{
  fields {{
    uid = {uid}
    gid = {gid}
    home = {work}/home
  }}
}}
"""
        else:
            text = f"""\
protocols = imap
{common}disable_plaintext_auth = no
mail_location = maildir:{work}/mail
passdb {{
  driver = passwd-file
  args = {users_file}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={work}/home
}}
"""
        self.config.write_text(text)

    def start(self, timeout: float = 15) -> DovecotServer:
        self._write_config()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(DOVECOT), "-F", "-c", str(self.config)],
                                         stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited ({self.proc.returncode}):\n{_tail(self.log)}")
            try:
                with socket.create_connection((self.host, self.port), timeout=2) as conn:
                    greeting = conn.makefile("rb").readline()
                if greeting.startswith(b"* OK"):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dovecot gave no IMAP greeting in {timeout} s:\n"
                                   f"{_tail(self.log)}")
            time.sleep(0.05)

    def client(self) -> Any:
        """An IMAPClient logged in as the user (the caller logs out)."""
        from imapclient import IMAPClient

        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        return client

    def append(self, folder: str, message: bytes) -> None:
        """Deliver ``message`` into ``folder`` (created if missing)."""
        client = self.client()
        try:
            # a parent only implied by its children is listed \Noselect: not there yet
            listed = client.list_folders("", folder)
            if folder.upper() != "INBOX" and all(_placeholder(f) for f, _s, _n in listed):
                client.create_folder(folder)
            client.append(folder, message)
        finally:
            client.logout()

    def messages(self, folder: str = "INBOX") -> int:
        client = self.client()
        try:
            return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])
        finally:
            client.logout()

    def folders(self) -> list[str]:
        client = self.client()
        try:
            return sorted(name for _flags, _sep, name in client.list_folders())
        finally:
            client.logout()

    def reset(self) -> None:
        """INBOX empty, every other folder deleted."""
        client = self.client()
        try:
            # Children before parents; a parent only implied by its children (maildir++ lists
            # it \Noselect) goes with its last child.
            for flags, _sep, name in sorted(client.list_folders(), key=lambda f: -len(f[2])):
                if name.upper() != "INBOX" and not _placeholder(flags):
                    client.delete_folder(name)
            left = [name for _f, _s, name in client.list_folders() if name.upper() != "INBOX"]
            if left:
                raise RuntimeError(f"Dovecot kept folders after reset: {left}")
            client.select_folder("INBOX")
            uids = client.search("ALL")
            if uids:
                client.delete_messages(uids)
                client.expunge()
            client.close_folder()
        finally:
            client.logout()

    def stop(self) -> None:
        """SIGTERM (the master stops its processes), SIGKILL after 10 s."""
        _stop_process(self.proc, signal.SIGTERM, 10)
        self.proc = None

    def close(self) -> None:
        """Stop and delete everything; idempotent, a no-op in a forked child."""
        if os.getpid() != self._owner:
            return
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if postgres_bin() is None:
        pytest.fail(f"PostgreSQL not installed ({PG_ROOT}/*/bin/postgres): {INSTALL_HINT}",
                    pytrace=False)
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """The session's PostgreSQL, ``reports`` empty for this test."""
    if postgres_server.proc is None:
        postgres_server.start()
    postgres_server.reset()
    yield postgres_server


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    if not DOVECOT.exists():
        pytest.fail(f"Dovecot not installed ({DOVECOT}): {INSTALL_HINT}", pytrace=False)
    server = DovecotServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def dovecot(dovecot_server: DovecotServer) -> Iterator[DovecotServer]:
    """The session's Dovecot, its mailbox empty for this test."""
    if dovecot_server.proc is None:
        dovecot_server.start()
    dovecot_server.reset()
    yield dovecot_server


__all__ = ["DovecotServer", "PostgresServer", "dovecot", "dovecot_server", "postgres",
           "postgres_bin", "postgres_server"]
