"""Key pairs: made with ``cryptography``, on every CPU at once for a fleet.

A private key leaves this module only as PEM bytes (PKCS#8, unencrypted: the store protects it)
bound for a key store; the public half as the DKIM ``p=`` value: base64 of the DER
SubjectPublicKeyInfo for rsa (RFC 6376 §3.6.1), base64 of the 32 raw octets for ed25519
(RFC 8463 §4.2). Nothing here logs.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from provisioner.keys.policy import KeySpec

log = logging.getLogger(__name__)

def generate(spec: KeySpec) -> tuple[bytes, str]:
    """A new key pair: (private PEM, public ``p=``)."""
    if spec.algorithm == "ed25519":
        key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey = ed25519.Ed25519PrivateKey.generate()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=spec.bits)
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return pem, _public(key)


def _public(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")
    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def _generate_one(spec: tuple[str, int]) -> tuple[bytes, str]:
    return generate(KeySpec(*spec))


def public_of(pem: bytes) -> str:
    """The DKIM ``p=`` of a private key in PEM."""
    key = load_pem_private_key(pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        return _public(key)
    raise ValueError("the stored private key is neither rsa nor ed25519")


def spec_of(pem: bytes) -> KeySpec:
    key = load_pem_private_key(pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return KeySpec("ed25519", 256)
    if isinstance(key, rsa.RSAPrivateKey):
        return KeySpec("rsa", key.key_size)
    raise ValueError("the stored private key is neither rsa nor ed25519")


def dkimpy_private(pem: bytes) -> bytes:
    """The private key as dkimpy signs with it: PEM for rsa, the base64 seed for ed25519."""
    key = load_pem_private_key(pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return base64.b64encode(raw)
    return pem


def workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def generate_many(specs: Iterable[KeySpec], jobs: int | None = None
                  ) -> Iterator[tuple[bytes, str]]:
    """Key pairs for ``specs``, in order; on ``jobs`` processes (default: every CPU) when there
    are enough keys to pay for the processes (a 2048-bit RSA key takes about 50 ms)."""
    wanted = [(s.algorithm, s.bits) for s in specs]
    jobs = workers() if jobs is None else max(1, jobs)
    slow = sum(1 for a, _ in wanted if a == "rsa")
    if jobs == 1 or slow < 4:
        for w in wanted:
            yield _generate_one(w)
        return
    try:
        pool = ProcessPoolExecutor(max_workers=min(jobs, slow))
    except OSError as exc:
        # No POSIX semaphores (a container or chroot without a writable /dev/shm): the keys
        # are the same made here, only slower.
        log.info("key generation on one process: %s", exc)
        for w in wanted:
            yield _generate_one(w)
        return
    with pool:
        yield from pool.map(_generate_one, wanted, chunksize=max(1, len(wanted) // (jobs * 8)))
