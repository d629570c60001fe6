"""Signed synchronous apply URLs (Domain Connect spec, "Digitally Sign Requests").

The signature is RS256 (RSA PKCS#1 v1.5 over SHA-256) of exactly the query string that is
sent, every value percent-encoded (a space as ``%20``: ``urlencode``'s default writes ``+``,
which hosts decode differently), ``sig`` and ``key`` excluded and appended last. The key pair
lives in the key store (private half, never printed) and its public half is published as
``p=N,a=RS256,d=...`` TXT fragments at ``<key_host>.<syncPubKeyDomain>``
(``DomainConnect.key_fragments``, expanded with the platform's records).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

#: The key store's name for the platform's signing key: not an institution code (codes have
#: no dot), so it never collides with one.
STORE_CODE = "platform.domainconnect"


def new_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_base64(pem: bytes) -> str:
    key = serialization.load_pem_private_key(pem, password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def query_string(params: Mapping[str, str]) -> str:
    """``params`` in order, each value percent-encoded with ``%20`` for a space."""
    return urlencode(list(params.items()), quote_via=quote, safe="")


def sign(pem: bytes, query: str) -> str:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signature = key.sign(query.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def apply_url(url_sync_ux: str, provider_id: str, service_id: str, params: Mapping[str, str],
              pem: bytes, key_host: str) -> str:
    """The synchronous apply URL, signed: what the administrator clicks."""
    query = query_string(params)
    signature = quote(sign(pem, query), safe="")
    base = url_sync_ux.rstrip("/")
    return (f"{base}/v2/domainTemplates/providers/{quote(provider_id, safe='')}/services/"
            f"{quote(service_id, safe='')}/apply?{query}&sig={signature}&key={key_host}")
