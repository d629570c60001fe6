"""Key records behind the product's back: drift names the TXT in the platform's DKIM zone,
verify calls a key that is not the stored one ``key-mismatch``; and the keys round-trip on
Route53 (moto) as on PowerDNS, the DKIM zone created there when missing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import dns.rdata
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from provisioner.keys import crypto
from tests.keys_project import MOSA, Clock, write_keyed_project
from tests.octodns_project import CUSTOMER, declare, run
from tests.servers import (  # noqa: F401
    MOTO_RATE,
    MotoRoute53,
    PdnsServer,
    pdns,
    pdns_server,
    route53,
    route53_server,
)
from tests.test_keys_powerdns import KEY1, KEY2, served, stored_key


def other_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return base64.b64encode(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
                            ).decode()


def test_a_key_record_changed_or_removed_at_the_host_is_drift(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Clock(monkeypatch)
    root = served(tmp_path, pdns)
    assert run(root, capsys, "apply").code == 0
    ns = f"127.0.0.1:{pdns.dns_port}"
    pdns.request("PATCH", "zones/dkim.secutix.com.", {"rrsets": [
        {"name": KEY1 + ".", "type": "TXT", "ttl": 300, "changetype": "REPLACE",
         "records": [{"content": f'"v=DKIM1; k=rsa; p={other_key()}"', "disabled": False}]},
        {"name": KEY2 + ".", "type": "TXT", "changetype": "DELETE"}]})

    verified = run(root, capsys, "verify", "--nameserver", ns, "--format", "json")
    assert verified.code == 2
    checks = {c["name"]: (c["status"], c["reason"]) for d in verified.json()["domains"]
              for c in d["checks"] if c["check"] == "dkim"}
    assert checks["stxsel1._domainkey.mosamuseum.com"] == ("failed", "key-mismatch")
    assert checks[KEY1] == ("failed", "key-mismatch")
    assert checks[KEY2][0] == "pending"

    drift = run(root, capsys, "drift", "--nameserver", ns, "--format", "json")
    assert drift.code == 2, drift.err
    found = {(f["record"], f["type"]): f["class"] for f in drift.json()["findings"]}
    assert found[(KEY1, "TXT")] == "changed"
    assert found[(KEY2, "TXT")] == "missing"
    assert all(t == "TXT" for r, t in found if r.endswith("dkim.secutix.com"))

    # The next apply puts the stored keys back; drift is gone.
    assert run(root, capsys, "apply").code == 0
    assert run(root, capsys, "drift", "--nameserver", ns).code == 0


def route53_served(values: tuple[str, ...]) -> list[str]:
    return sorted(b"".join(dns.rdata.from_text("IN", "TXT", v).strings).decode()
                  for v in values)


@pytest.mark.parametrize("bits", [2048, 4096])
def test_keys_round_trip_on_route53(
    tmp_path: Path, route53: MotoRoute53, key_store: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str], bits: int,
) -> None:
    write_keyed_project(tmp_path, {"route53": {"class": "octodns_route53.Route53Provider",
                                               **MOTO_RATE}},
                        "route53", keys=f"bits: {bits}")
    declare(tmp_path, "mosa", MOSA)
    route53.create_zone("mosamuseum.com", CUSTOMER)
    planned = run(tmp_path, capsys, "plan", "--format", "json")
    assert planned.code == 0, planned.err
    assert planned.json()["keys_to_generate"] == [{"institution": "mosa", "keys": [
        {"selector": "sel1-mosa", "id": "sel1-mosa.1", "spec": f"rsa-{bits}"},
        {"selector": "sel2-mosa", "id": "sel2-mosa.1", "spec": f"rsa-{bits}"}]}]
    applied = run(tmp_path, capsys, "apply", "--checksum", planned.json()["checksum"])
    assert applied.code == 0, applied.err
    zones = {z["Name"] for z in route53.client().list_hosted_zones()["HostedZones"]}
    assert "dkim.secutix.com." in zones  # created on its target
    rrsets = route53.rrsets("dkim.secutix.com")
    for label in ("sel1-mosa", "sel2-mosa"):
        public = crypto.public_of(stored_key(key_store, f"{label}.1"))
        _ttl, values = rrsets[(f"{label}._domainkey", "TXT")]
        assert route53_served(values) == [f"v=DKIM1; k=rsa; p={public}"]
        strings = dns.rdata.from_text("IN", "TXT", values[0]).strings
        assert all(len(s) <= 255 for s in strings) and len(strings) == (2 if bits == 2048 else 3)
    again = run(tmp_path, capsys, "plan", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    state = json.loads((key_store / "state" / "mosa.json").read_text())
    assert state["selectors"]["sel1-mosa"]["key"]["bits"] == bits


def test_a_lost_key_store_never_replaces_live_keys(
    tmp_path: Path, pdns: PdnsServer, key_store: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = served(tmp_path, pdns)
    assert run(root, capsys, "apply").code == 0
    live = pdns.rrsets("dkim.secutix.com")[("sel1-mosa._domainkey", "TXT")]
    # Another store (a wrong MAILAUTH_KEYS_DIR, a lost disk): it knows no key of mosa's.
    monkeypatch.setenv("MAILAUTH_KEYS_DIR", str(tmp_path / "elsewhere"))
    planned = run(root, capsys, "plan")
    assert planned.code == 1
    assert "error[keys.state-lost]" in planned.err and "sel1-mosa._domainkey" in planned.err
    applied = run(root, capsys, "apply")
    assert applied.code == 1
    assert pdns.rrsets("dkim.secutix.com")[("sel1-mosa._domainkey", "TXT")] == live
    assert not (tmp_path / "elsewhere" / "private").exists()  # no key made either
