"""DKIM keys end to end on a real PowerDNS: a new institution's first apply makes, publishes and
starts signing with its keys; a rotation moves through its gates with the clock moved by hand;
mail signed with the stored private key verifies at a receiver resolving through PowerDNS."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import dkim
import pytest

from provisioner.keys import crypto
from provisioner.keys.signing import probe_message
from tests.keys_project import MOSA, Clock, key_strings, receiver_txt, write_keyed_project
from tests.octodns_project import CUSTOMER, checksum_of, declare, run, txt_strings
from tests.servers import PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures

KEY1 = "sel1-mosa._domainkey.dkim.secutix.com"
KEY2 = "sel2-mosa._domainkey.dkim.secutix.com"


def served(tmp_path: Path, server: PdnsServer, keys: str = "") -> Path:
    """The customer's zone and the platform's other records on PowerDNS; no DKIM zone yet."""
    write_keyed_project(tmp_path, {"powerdns": server.target_options()}, "powerdns", keys)
    declare(tmp_path, "mosa", MOSA)
    server.create_zone("mosamuseum.com", CUSTOMER)
    server.create_zone("google.com", [("_spf", "TXT", 3600, ['"v=spf1 ip4:209.85.128.0/17 ~all"'])])
    server.create_zone("secutix.com", [("spf", "TXT", 3600, ['"v=spf1 ip4:192.28.148.112 -all"'])])
    return tmp_path


def stored_key(store: Path, key_id: str) -> bytes:
    code = key_id.split(".")[0].split("-", 1)[1]
    return (store / "private" / code / f"{key_id}.pem").read_bytes()


def signed_and_verified(port: int, pem: bytes, selector: bytes, algorithm: str = "rsa") -> bool:
    """dkimpy signs as the mail platform does and verifies as a receiver does (through
    PowerDNS: the customer's CNAME, then the platform's TXT)."""
    message = probe_message("mosamuseum.com")
    sig_alg = b"ed25519-sha256" if algorithm == "ed25519" else b"rsa-sha256"
    signature = dkim.sign(message, selector, b"mosamuseum.com", crypto.dkimpy_private(pem),
                          signature_algorithm=sig_alg)
    return bool(dkim.verify(signature + message, dnsfunc=receiver_txt(port)))


def states(store: Path) -> dict[str, dict[str, object]]:
    return json.loads((store / "state" / "mosa.json").read_text())["selectors"]


def test_first_apply_makes_publishes_and_signs(
    tmp_path: Path, pdns: PdnsServer, key_store: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    Clock(monkeypatch)
    root = served(tmp_path, pdns)
    assert "dkim.secutix.com." not in pdns.zones()
    planned = run(root, capsys, "plan", "--detailed-exitcode")
    assert planned.code == 2, planned.err
    assert "mosa: keys to generate: sel1-mosa, sel2-mosa, rsa-2048" in planned.out
    assert "BEGIN" not in planned.out + planned.err

    applied = run(root, capsys, "apply", "--checksum", checksum_of(planned.out))
    assert applied.code == 0, applied.out + applied.err
    assert "generated key sel1-mosa.1 (rsa-2048)" in applied.out
    assert "keys: mosa signs with sel1-mosa.1" in applied.out
    assert "dkim.secutix.com." in pdns.zones()  # the platform's DKIM zone was created

    # The published record is exactly the stored private key's public half, one value to a
    # resolver, split into strings of at most 255 octets on the wire.
    for label, record in (("sel1-mosa.1", KEY1), ("sel2-mosa.1", KEY2)):
        public = crypto.public_of(stored_key(key_store, label))
        assert txt_strings(pdns.dns_port, record + ".") == [f"v=DKIM1; k=rsa; p={public}"]
    selectors = states(key_store)
    assert selectors["sel1-mosa"]["status"] == "signing"
    assert selectors["sel2-mosa"]["status"] == "published"

    ns = f"127.0.0.1:{pdns.dns_port}"
    verified = run(root, capsys, "verify", "--nameserver", ns, "--format", "json")
    assert verified.code == 0, verified.out
    dkim_checks = {c["name"]: c["status"] for d in verified.json()["domains"]
                   for c in d["checks"] if c["check"] == "dkim"}
    assert dkim_checks == {"stxsel1._domainkey.mosamuseum.com": "success",
                           "stxsel2._domainkey.mosamuseum.com": "success",
                           KEY1: "success", KEY2: "success"}
    assert run(root, capsys, "drift", "--nameserver", ns).code == 0

    assert signed_and_verified(pdns.dns_port, stored_key(key_store, "sel1-mosa.1"), b"stxsel1")
    tested = run(root, capsys, "keys", "test", "mosa", "--nameserver", ns)
    assert tested.code == 0, tested.out + tested.err
    assert "pass  d=mosamuseum.com s=stxsel1 (sel1-mosa.1)" in tested.out

    again = run(root, capsys, "plan", "--detailed-exitcode")
    assert again.code == 0, again.out  # a second run changes nothing


def test_rotation_moves_through_its_gates(
    tmp_path: Path, pdns: PdnsServer, key_store: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch)
    root = served(tmp_path, pdns, keys="propagation_gate: 4h\ngrace: 96h\nretention: 7d")
    ns = f"127.0.0.1:{pdns.dns_port}"
    assert run(root, capsys, "apply").code == 0
    old = stored_key(key_store, "sel1-mosa.1")

    clock.advance(days=1)
    rotated = run(root, capsys, "keys", "rotate", "mosa", "--reason", "test rotation")
    assert rotated.code == 0, rotated.err
    assert "generated key sel2-mosa.2" in rotated.out
    new = stored_key(key_store, "sel2-mosa.2")
    assert txt_strings(pdns.dns_port, KEY2 + ".") == [
        f"v=DKIM1; k=rsa; p={crypto.public_of(new)}"]
    assert states(key_store)["sel1-mosa"]["status"] == "signing"  # never the signing selector

    # The chain does not verify (the new key record was removed at the host): refused.
    pdns.request("PATCH", "zones/dkim.secutix.com.", {"rrsets": [
        {"name": KEY2 + ".", "type": "TXT", "changetype": "DELETE"}]})
    refused = run(root, capsys, "keys", "activate", "mosa", "--nameserver", ns)
    assert refused.code == 3, refused.err
    assert "[keys.not-verified]" in refused.err and "sel2-mosa.2" in refused.err

    # Published again (apply converges); live from now, so the gate holds for 4 hours.
    assert run(root, capsys, "apply", "--no-verify").code == 0
    early = run(root, capsys, "keys", "activate", "mosa", "--nameserver", ns)
    assert early.code == 3 and "[keys.gate]" in early.err
    assert "holds from 2026-12-03T13:00:00Z" in early.err
    said = json.loads(run(root, capsys, "keys", "activate", "mosa", "--nameserver", ns,
                          "--format", "json").out)
    assert said["exit"] == 3 and [(r["code"], r["until"]) for r in said["refusals"]] == [
        ("keys.gate", "2026-12-03T13:00:00+00:00")]

    clock.advance(hours=4)
    activated = run(root, capsys, "keys", "activate", "mosa", "--nameserver", ns, "--format",
                    "json")
    assert activated.code == 0, activated.err
    assert json.loads(activated.out)["institutions"]["mosa"] == [
        {"selector": "sel1-mosa", "status": "standby", "key": "sel1-mosa.1"},
        {"selector": "sel2-mosa", "status": "signing", "key": "sel2-mosa.2"}]
    selectors = states(key_store)
    assert (selectors["sel1-mosa"]["status"], selectors["sel2-mosa"]["status"]) == (
        "standby", "signing")
    assert signed_and_verified(pdns.dns_port, new, b"stxsel2")
    assert signed_and_verified(pdns.dns_port, old, b"stxsel1")  # mail in transit still verifies
    signing = run(root, capsys, "keys", "signing", "--nameserver", ns)
    assert [(e["d"], e["s"], e["key_id"]) for e in json.loads(signing.out)["signing"]] == [
        ("mosamuseum.com", "stxsel2", "sel2-mosa.2")]

    clock.advance(hours=95)
    early = run(root, capsys, "keys", "retire", "mosa")
    assert early.code == 3 and "[keys.grace]" in early.err
    assert txt_strings(pdns.dns_port, KEY1 + ".") == [
        f"v=DKIM1; k=rsa; p={crypto.public_of(old)}"]
    clock.advance(hours=1)
    retired = run(root, capsys, "keys", "retire", "mosa")
    assert retired.code == 0, retired.err
    assert txt_strings(pdns.dns_port, KEY1 + ".") == ["v=DKIM1; k=rsa; p="]
    assert not signed_and_verified(pdns.dns_port, old, b"stxsel1")  # revoked

    verified = run(root, capsys, "verify", "--nameserver", ns)
    assert verified.code == 0, verified.out
    assert run(root, capsys, "drift", "--nameserver", ns).code == 0
    status = run(root, capsys, "keys", "status", "mosa")
    assert "sel1-mosa                retiring  p= (revoked)" in status.out
    for step in ("generate", "rotate", "observe", "activate", "retire"):
        assert f" {step} " in status.out
    assert "test rotation" in status.out

    # The revoked selector is reused only after the retention.
    clock.advance(days=6)
    assert run(root, capsys, "keys", "rotate", "mosa").code == 3
    clock.advance(days=1)
    assert run(root, capsys, "keys", "rotate", "mosa").code == 0
    assert states(key_store)["sel1-mosa"]["key"]["id"] == "sel1-mosa.2"  # type: ignore[index]


def test_ed25519_keys_sign_and_verify(
    tmp_path: Path, pdns: PdnsServer, key_store: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    Clock(monkeypatch)
    root = served(tmp_path, pdns, keys="algorithm: ed25519")
    planned = run(root, capsys, "plan")
    assert "keys to generate: sel1-mosa, sel2-mosa, ed25519" in planned.out
    assert "warning[keys.ed25519-only]" in planned.err
    assert run(root, capsys, "apply").code == 0
    pem = stored_key(key_store, "sel1-mosa.1")
    raw = base64.b64decode(crypto.public_of(pem))
    assert len(raw) == 32  # RFC 8463 §4.2: the raw key, not a DER structure
    assert txt_strings(pdns.dns_port, KEY1 + ".") == [
        f"v=DKIM1; k=ed25519; p={crypto.public_of(pem)}"]
    ns = f"127.0.0.1:{pdns.dns_port}"
    assert run(root, capsys, "verify", "--nameserver", ns).code == 0
    assert signed_and_verified(pdns.dns_port, pem, b"stxsel1", "ed25519")
    tested = run(root, capsys, "keys", "test", "mosa", "--nameserver", ns)
    assert tested.code == 0, tested.out + tested.err


def test_4096_bit_keys_round_trip(
    tmp_path: Path, pdns: PdnsServer, key_store: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = served(tmp_path, pdns, keys="bits: 4096")
    assert run(root, capsys, "apply").code == 0
    public = crypto.public_of(stored_key(key_store, "sel1-mosa.1"))
    assert len(public) > 700
    [strings] = key_strings(pdns.dns_port, KEY1 + ".")
    assert len(strings) == 3 and all(len(s) <= 255 for s in strings)  # RFC 1035 §3.3.14
    assert b"".join(strings).decode() == f"v=DKIM1; k=rsa; p={public}"
    assert run(root, capsys, "plan", "--detailed-exitcode").code == 0


def test_emergency_rotation_revokes_the_leaked_key_once_the_new_one_verifies(
    tmp_path: Path, pdns: PdnsServer, key_store: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch)
    root = served(tmp_path, pdns)
    ns = f"127.0.0.1:{pdns.dns_port}"
    assert run(root, capsys, "apply").code == 0
    leaked = stored_key(key_store, "sel1-mosa.1")
    clock.advance(minutes=5)
    done = run(root, capsys, "keys", "rotate", "mosa", "--emergency", "--reason", "leaked",
               "--nameserver", ns)
    assert done.code == 0, done.out + done.err
    selectors = states(key_store)
    assert (selectors["sel1-mosa"]["status"], selectors["sel2-mosa"]["status"]) == (
        "retiring", "signing")
    assert txt_strings(pdns.dns_port, KEY1 + ".") == ["v=DKIM1; k=rsa; p="]
    assert not signed_and_verified(pdns.dns_port, leaked, b"stxsel1")
    assert signed_and_verified(pdns.dns_port, stored_key(key_store, "sel2-mosa.2"), b"stxsel2")
    assert run(root, capsys, "verify", "--nameserver", ns).code == 0
    status = run(root, capsys, "keys", "status", "mosa")
    assert "emergency: the leaked key is revoked" in status.out
