"""DKIM key records (RFC 6376 §3.6.1) read and judged: syntax, key type, key size (RFC 8301)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from provisioner.errors import ProvisionerError

MIN_RSA_BITS = 1024  # RFC 8301 §3.2: verifiers MUST NOT consider smaller keys valid
GOOD_RSA_BITS = 2048  # RFC 8301 §3.2: signers SHOULD use at least 2048 bits


class DkimKeyError(ProvisionerError):
    """A key record that verifiers must ignore; ``code`` is stable (syntax, revoked, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class DkimKey:
    key_type: str  # rsa | ed25519
    bits: int
    public_key: str  # the p= value, whitespace removed
    tags: tuple[tuple[str, str], ...]
    flags: frozenset[str] = frozenset()  # t=: y (testing), s (no subdomains in i=)

    def notes(self) -> tuple[str, ...]:
        """What a verifier does differently because of the record's flags (RFC 6376 §3.6.1)."""
        out = []
        if "y" in self.flags:
            out.append("t=y: the domain is testing DKIM; verifiers must not treat its "
                       "signatures differently from unsigned mail, so DMARC gains nothing from "
                       "them until t=y is removed")
        if "s" in self.flags:
            out.append("t=s: a signature's i= must be in d= itself, not a subdomain of it")
        return tuple(out)


def parse_tag_list(text: str) -> list[tuple[str, str]]:
    """RFC 6376 §3.2 tag-list: ``tag=value`` separated by ``;``, whitespace around allowed."""
    tags: list[tuple[str, str]] = []
    seen: set[str] = set()
    for part in text.split(";"):
        if not part.strip():
            continue  # a trailing ";" is allowed
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq or not name or not name.replace("_", "a").isalnum() or not name[0].isalpha():
            raise DkimKeyError("syntax", f"{part.strip()!r} is not a tag=value pair")
        if name in seen:
            raise DkimKeyError("syntax", f"tag {name}= appears twice (RFC 6376 §3.2)")
        seen.add(name)
        tags.append((name, value.strip()))
    return tags


@lru_cache(maxsize=8192)
def parse_key_record(text: str) -> DkimKey:
    """Parse and judge a key record; raise :class:`DkimKeyError` when verifiers would not use it.

    ``v=`` when present must be first and ``DKIM1``; ``k=`` is ``rsa`` (default) or ``ed25519``
    (RFC 8463); ``p=`` is required, empty means revoked (§3.6.1); RSA keys under 1024 bits fail.
    """
    if text.strip().startswith('"'):
        raise DkimKeyError("quoted", "the key record holds literal quotation marks: publish the "
                           "value without them")
    tags = parse_tag_list(text)
    names = [n for n, _ in tags]
    values = dict(tags)
    if "v" in values and (names[0] != "v" or values["v"] != "DKIM1"):
        raise DkimKeyError("syntax", "v= must be the first tag and equal DKIM1 (RFC 6376 §3.6.1)")
    key_type = values.get("k", "rsa").lower()
    if key_type not in ("rsa", "ed25519"):
        raise DkimKeyError("syntax", f"unknown key type k={key_type}")
    # s= (RFC 6376 §3.6.1): the services the key is for; "*" (all, the default) or "email"
    services = {x.strip().lower() for x in values.get("s", "*").split(":") if x.strip()}
    if not services & {"*", "email"}:
        raise DkimKeyError("not-email", f"s={values['s']}: the key is not for email, so "
                           "verifiers must not use it for mail (RFC 6376 §3.6.1)")
    # h= (RFC 6376 §3.6.1, RFC 8301 §3.1): the hashes signatures may use; sha1 alone is unusable
    if "h" in values:
        hashes = {x.strip().lower() for x in values["h"].split(":") if x.strip()}
        if "sha256" not in hashes:
            raise DkimKeyError("hash", f"h={values['h']}: verifiers accept only rsa-sha256 "
                               "signatures (RFC 8301 §3.1), and the record forbids sha256")
    flags = frozenset(x.strip().lower() for x in values.get("t", "").split(":") if x.strip())
    if "p" not in values:
        raise DkimKeyError("syntax", "no p= tag: the record holds no public key")
    p = "".join(values["p"].split())
    if not p:
        raise DkimKeyError("revoked", "p= is empty: the key is revoked (RFC 6376 §3.6.1)")
    try:
        der = base64.b64decode(p, validate=True)
    except (binascii.Error, ValueError):
        raise DkimKeyError("syntax", "p= is not valid base64") from None
    if key_type == "ed25519":
        if len(der) != 32:
            raise DkimKeyError("syntax", f"an ed25519 key is 32 octets, not {len(der)} (RFC 8463)")
        return DkimKey("ed25519", 256, p, tuple(tags), flags)
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError):
        raise DkimKeyError("syntax", "p= does not hold a DER public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise DkimKeyError("syntax", "k=rsa but p= holds another kind of key")
    if key.key_size < MIN_RSA_BITS:
        raise DkimKeyError("weak-key", f"RSA key of {key.key_size} bits: verifiers reject keys "
                           f"under {MIN_RSA_BITS} bits (RFC 8301 §3.2)")
    return DkimKey("rsa", key.key_size, p, tuple(tags), flags)
