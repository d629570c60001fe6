"""OpenDKIM loads what ``provisioner keys signing --format opendkim`` writes: Debian's own
``opendkim-testkey`` reads the KeyTable, loads each private key it names and checks it against
the key record it resolves (libunbound, the customer's CNAME then the platform's TXT) on a real
PowerDNS on 127.0.0.1; after the live record is replaced by another key, it reports the mismatch.

libunbound is given stub zones for every zone PowerDNS serves, and for the root too, so that
no query ever leaves 127.0.0.1 (a name outside them is REFUSED at once, never a timeout on the
root servers); no trust anchor (the zones are unsigned) and the iterator only.
"""

from __future__ import annotations

import base64
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.keys_project import MOSA, Clock, write_keyed_project
from tests.octodns_project import CUSTOMER, declare, run, txt_strings
from tests.servers import PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures

TESTKEY = Path("/usr/sbin/opendkim-testkey")
if not TESTKEY.exists():
    pytest.skip("opendkim-testkey not installed (apt-get install opendkim-tools)",
                allow_module_level=True)

KEY1 = "sel1-mosa._domainkey.dkim.secutix.com"
ENTRY = "stxsel1._domainkey.mosamuseum.com"


def served(tmp_path: Path, server: PdnsServer) -> Path:
    """The customer's zone and the platform's other records on PowerDNS; no DKIM zone yet."""
    write_keyed_project(tmp_path, {"powerdns": server.target_options()}, "powerdns")
    declare(tmp_path, "mosa", MOSA)
    server.create_zone("mosamuseum.com", CUSTOMER)
    server.create_zone("google.com", [("_spf", "TXT", 3600, ['"v=spf1 ip4:209.85.128.0/17 ~all"'])])
    server.create_zone("secutix.com", [("spf", "TXT", 3600, ['"v=spf1 ip4:192.28.148.112 -all"'])])
    return tmp_path


def opendkim_conf(directory: Path, keytable: Path, server: PdnsServer) -> Path:
    """opendkim.conf for opendkim-testkey (it reads KeyTable and ResolverConfiguration), with
    an unbound.conf that asks only the PowerDNS at 127.0.0.1:port."""
    stubs = "".join(
        f"stub-zone:\n  name: \"{zone}\"\n  stub-addr: 127.0.0.1@{server.dns_port}\n"
        for zone in [*server.zones(), "."])
    unbound = directory / "unbound.conf"
    unbound.write_text(
        "server:\n"
        "  verbosity: 0\n"
        "  do-ip6: no\n"
        "  do-not-query-localhost: no\n"
        "  module-config: \"iterator\"\n"
        "  qname-minimisation: no\n"
        "  outbound-msg-retry: 1\n"
        + stubs)
    conf = directory / "opendkim.conf"
    conf.write_text(f"KeyTable file:{keytable}\nResolverConfiguration {unbound}\n")
    return conf


def opendkim_testkey(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TESTKEY), "-x", str(conf), "-vvv", *args], capture_output=True,
                          text=True, timeout=30, check=False)


def keytable_entries(path: Path) -> list[tuple[str, str, str, str]]:
    """(key name, domain, selector, key file) of each KeyTable line."""
    out = []
    for line in path.read_text().splitlines():
        name, value = line.split(None, 1)
        domain, selector, keyfile = value.split(":", 2)
        out.append((name, domain, selector, keyfile))
    return out


def other_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def test_opendkim_testkey_loads_the_keytable_and_checks_it_on_powerdns(
    tmp_path: Path, pdns: PdnsServer, key_store: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    Clock(monkeypatch)
    (tmp_path / "project").mkdir()
    root = served(tmp_path / "project", pdns)
    applied = run(root, capsys, "apply")
    assert applied.code == 0, applied.out + applied.err
    assert "keys: mosa signs with sel1-mosa.1" in applied.out

    out = tmp_path / "opendkim"
    signing = run(root, capsys, "keys", "signing", "--format", "opendkim", "--output", str(out),
                  "--nameserver", f"127.0.0.1:{pdns.dns_port}")
    assert signing.code == 0, signing.out + signing.err
    keytable = out / "KeyTable"
    entries = keytable_entries(keytable)
    assert [(n, d, s) for n, d, s, _ in entries] == [(ENTRY, "mosamuseum.com", "stxsel1")]
    keyfile = Path(entries[0][3])
    assert keyfile.is_absolute() and keyfile.is_relative_to(tmp_path / "opendkim" / "keys")
    assert keyfile.stat().st_mode & 0o077 == 0
    conf = opendkim_conf(tmp_path, keytable, pdns)

    # A name outside PowerDNS's zones fails at once (REFUSED by the root stub): nothing is
    # asked of the internet's root servers.
    started = time.monotonic()
    outside = opendkim_testkey(conf, "-d", "example.org", "-s", "x")
    assert outside.returncode != 0 and time.monotonic() - started < 5, outside.stderr

    checked = opendkim_testkey(conf)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for name, _, _, _ in entries:
        assert f"opendkim-testkey: key {name}: OK" in checked.stdout, checked.stdout
    assert f"{len(entries)} key{'s' if len(entries) != 1 else ''} checked; " \
           f"{len(entries)} pass, 0 fail" in checked.stdout, checked.stdout
    assert "unsafe permissions" not in checked.stderr  # the store's file is 0600
    assert "not secure" in checked.stderr  # resolved (unsigned zones), not a DNS failure

    # The same check, one key named on the command line: opendkim-testkey's exit status.
    for _, domain, selector, path in entries:
        single = opendkim_testkey(conf, "-d", domain, "-s", selector, "-k", path)
        assert single.returncode == 0, single.stdout + single.stderr
        assert "opendkim-testkey: key OK" in single.stdout

    # The live record now holds another (valid) key: the stored key no longer matches it.
    # With a KeyTable, opendkim-testkey exits 0 whatever it found: its report is the verdict.
    record = f"v=DKIM1; k=rsa; p={other_key()}"
    content = " ".join(f'"{record[i:i + 255]}"' for i in range(0, len(record), 255))
    pdns.request("PATCH", "zones/dkim.secutix.com.", {"rrsets": [
        {"name": KEY1 + ".", "type": "TXT", "ttl": 300, "changetype": "REPLACE",
         "records": [{"content": content, "disabled": False}]}]})
    assert txt_strings(pdns.dns_port, KEY1 + ".") == [record]
    mismatch = opendkim_testkey(conf)
    assert f"opendkim-testkey: key {ENTRY}: OK" not in mismatch.stdout
    assert "1 key checked; 0 pass, 1 fail" in mismatch.stdout, mismatch.stdout
    assert f"key {ENTRY}: keys do not match" in mismatch.stderr, mismatch.stderr
    single = opendkim_testkey(conf, "-d", "mosamuseum.com", "-s", "stxsel1", "-k", str(keyfile))
    assert single.returncode == 65, single.stdout + single.stderr  # EX_DATAERR
    assert "opendkim-testkey: keys do not match" in single.stdout
