"""DKIM key records in full (issue 12, RFC 6376 §3.6.1, RFC 8301): s= service types, h=
acceptable hashes, t= flags, unknown tags; for customers' selectors and the platform's own
key records alike (one parser)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from provisioner.verify.dkimkey import DkimKeyError, parse_key_record

KEY = base64.b64encode(rsa.generate_private_key(public_exponent=65537, key_size=2048)
                       .public_key().public_bytes(Encoding.DER,
                                                  PublicFormat.SubjectPublicKeyInfo)).decode()


@pytest.mark.parametrize("extra", ["", "s=*;", "s=email;", "s=EMAIL:other;", "h=sha256;",
                                   "h=sha1:sha256;", "xfuture=1;", "n=notes here;"])
def test_email_keys(extra: str) -> None:
    key = parse_key_record(f"v=DKIM1; k=rsa; {extra} p={KEY}")
    assert key.bits == 2048 and key.notes() == ()


@pytest.mark.parametrize(("extra", "code"), [
    ("s=other;", "not-email"),
    ("s=tlsrpt:other;", "not-email"),
    ("h=sha1;", "hash"),
    ("h=md5:sha1;", "hash"),
])
def test_keys_verifiers_must_not_use_for_mail(extra: str, code: str) -> None:
    with pytest.raises(DkimKeyError) as raised:
        parse_key_record(f"v=DKIM1; k=rsa; {extra} p={KEY}")
    assert raised.value.code == code


def test_flags_are_reported() -> None:
    testing = parse_key_record(f"v=DKIM1; t=y; p={KEY}")
    assert len(testing.notes()) == 1 and "testing" in testing.notes()[0]
    both = parse_key_record(f"v=DKIM1; t=y:s; p={KEY}")
    assert {n.split(":")[0] for n in both.notes()} == {"t=y", "t=s"}
