"""Domain names as the product stores them: lower-case A-labels, no trailing dot.

RFC 1035 §2.3.4 limits a label to 63 octets and a name to 255 octets on the wire, which is 253
characters in text form without the trailing dot. Internationalised names are converted with
IDNA 2008 and UTS #46 mapping (RFC 5891), as registrars and browsers do.
"""

from __future__ import annotations

import re

import idna

_LDH = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_SERVICE = re.compile(r"^_?[a-z0-9]([a-z0-9_-]*[a-z0-9])?$")  # allows _spf, _domainkey-style


class NameError_(ValueError):
    """A name that cannot be a DNS host name; the message says why."""


def normalize(name: str, *, allow_underscore: bool = False) -> str:
    """The A-label, lower-case form of ``name``; raises :class:`NameError_` with the reason."""
    text = name.strip()
    if text != name or not text:
        raise NameError_("a domain name has no spaces and is not empty")
    text = text.removesuffix(".")
    if not text.isascii():
        try:
            text = idna.encode(text, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise NameError_(f"not a valid internationalised name: {exc}") from None
    text = text.lower()
    if len(text) > 253:
        raise NameError_(f"{len(text)} characters long; a name has at most 253")
    labels = text.split(".")
    if len(labels) < 2:
        raise NameError_("a domain has at least two labels, like example.com")
    pattern = _SERVICE if allow_underscore else _LDH
    for label in labels:
        if not label:
            raise NameError_("empty label (two dots in a row)")
        if len(label) > 63:
            raise NameError_(f"label {label[:20]}... is {len(label)} characters; at most 63")
        if not pattern.match(label):
            raise NameError_(f"label {label!r} may hold only letters, digits and inner hyphens")
    if labels[-1].isdigit():
        raise NameError_("the top-level label cannot be all digits")
    if text.startswith("xn--") or ".xn--" in text:
        try:
            idna.decode(text)
        except idna.IDNAError as exc:
            raise NameError_(f"invalid A-label: {exc}") from None
    return text


def to_unicode(name: str) -> str:
    """The U-label form, for display; the name itself when it does not decode."""
    try:
        return str(idna.decode(name))
    except idna.IDNAError:
        return name
