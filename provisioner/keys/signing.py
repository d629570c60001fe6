"""What the mail platform signs with (``keys signing``) and the proof support runs
(``keys test``): dkimpy signs a message with the stored private key and verifies it the way a
receiver does, through live DNS (the customer's CNAME, then the platform's TXT).

A domain is listed for signing only when the chain of its signing selector verifies now:
unsigned mail is better than mail signed with a key that receivers cannot find.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate, make_msgid

from provisioner.config import Project
from provisioner.keys import crypto
from provisioner.keys.lifecycle import Observation
from provisioner.keys.state import InstitutionKeys
from provisioner.keys.store import KeyStore


@dataclass(frozen=True, slots=True)
class SigningEntry:
    institution: str
    domain: str  # d=
    selector: str  # s=: the customer-side selector, e.g. stxsel1
    label: str  # the key record's label in the DKIM zone
    key_id: str
    algorithm: str  # rsa-sha256 | ed25519-sha256 (RFC 8463)
    key: str  # where the private key is: a file path or a secret ARN

    def to_json(self) -> dict[str, str]:
        return {"institution": self.institution, "domain": self.domain, "d": self.domain,
                "s": self.selector, "selector_target": self.label, "key_id": self.key_id,
                "algorithm": self.algorithm, "key": self.key}


@dataclass(frozen=True, slots=True)
class LeftOut:
    institution: str
    domain: str
    reason: str

    def __str__(self) -> str:
        return f"{self.institution}: {self.domain} is not signed: {self.reason}"


def signing_entries(project: Project, states: Mapping[str, InstitutionKeys],
                    seen: Mapping[str, Mapping[str, Observation]], store: KeyStore
                    ) -> tuple[list[SigningEntry], list[LeftOut]]:
    """Per sender domain with DKIM, its signing selector and key, if its chain verifies."""
    entries: list[SigningEntry] = []
    left: list[LeftOut] = []
    for inst in project.institutions:
        state = states.get(inst.code)
        for dom in inst.domains:
            if not dom.dkim or state is None:
                continue
            slot = state.signing
            if slot is None or slot.key is None:
                left.append(LeftOut(inst.code, dom.name, "no selector signs yet"))
                continue
            selector = next((s.name for s in project.platform.selectors
                             if s.target_label(inst.code) == slot.label), slot.label)
            obs = seen.get(inst.code, {}).get(slot.label)
            verdict = next(((ok, why) for d, ok, why in (obs.domains if obs else ())
                            if d == dom.name), None)
            if obs is None or not obs.key_ok:
                left.append(LeftOut(inst.code, dom.name, obs.key_detail if obs else
                                    "the chain was not checked"))
                continue
            if verdict is None or not verdict[0]:
                left.append(LeftOut(inst.code, dom.name, verdict[1] if verdict else
                                    f"{selector}._domainkey.{dom.name} was not checked"))
                continue
            algorithm = "ed25519-sha256" if slot.key.algorithm == "ed25519" else "rsa-sha256"
            entries.append(SigningEntry(inst.code, dom.name, selector, slot.label, slot.key.id,
                                        algorithm, store.reference(inst.code, slot.key.id)))
    return entries, left


def to_json(entries: Sequence[SigningEntry], left: Sequence[LeftOut]) -> str:
    return json.dumps({"signing": [e.to_json() for e in entries],
                       "left_out": [{"institution": x.institution, "domain": x.domain,
                                     "reason": x.reason} for x in left]}, indent=2)


def opendkim_tables(entries: Sequence[SigningEntry], key_path: Callable[[SigningEntry], str]
                    ) -> tuple[str, str]:
    """OpenDKIM's KeyTable and SigningTable (``refile:``), which rspamd also loads:
    ``<s>._domainkey.<d> <d>:<s>:<private key file>`` and ``*@<d> <s>._domainkey.<d>``."""
    keys = [f"{e.selector}._domainkey.{e.domain} {e.domain}:{e.selector}:{key_path(e)}"
            for e in entries]
    table = [f"*@{e.domain} {e.selector}._domainkey.{e.domain}" for e in entries]
    return "\n".join(keys) + ("\n" if keys else ""), "\n".join(table) + ("\n" if table else "")


# --- keys test --------------------------------------------------------------------------------

TxtLookup = Callable[[str], bytes | None]


def probe_message(domain: str) -> bytes:
    return (f"From: DKIM test <dkim-test@{domain}>\r\n"
            f"To: postmaster@{domain}\r\n"
            f"Subject: mailauth-provisioner DKIM test for {domain}\r\n"
            f"Date: {formatdate(usegmt=True)}\r\n"
            f"Message-ID: {make_msgid(domain=domain)}\r\n"
            "\r\n"
            "Signed with the platform's stored key; verified through live DNS.\r\n").encode()


@dataclass(frozen=True, slots=True)
class ProbeResult:
    domain: str
    selector: str
    key_id: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        verdict = "pass" if self.ok else "FAIL"
        return f"{verdict}  d={self.domain} s={self.selector} ({self.key_id}): {self.detail}"


def sign_and_verify(domain: str, selector: str, key_id: str, pem: bytes, algorithm: str,
                    lookup: TxtLookup) -> ProbeResult:
    """dkimpy signs a test message with ``pem`` and verifies it, its key looked up through
    ``lookup`` (live DNS), as a receiver would (RFC 6376 §6)."""
    import dkim

    message = probe_message(domain)
    sig_alg = b"ed25519-sha256" if algorithm == "ed25519" else b"rsa-sha256"
    signature = dkim.sign(message, selector.encode(), domain.encode(),
                          crypto.dkimpy_private(pem), signature_algorithm=sig_alg,
                          include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    seen: list[str] = []

    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode() if isinstance(name, bytes) else name
        seen.append(text.rstrip("."))
        return lookup(text)

    try:
        ok = bool(dkim.verify(signature + message, dnsfunc=dnsfunc))
    except dkim.DKIMException as exc:
        return ProbeResult(domain, selector, key_id, False, f"dkimpy: {exc}")
    asked = seen[0] if seen else f"{selector}._domainkey.{domain}"
    detail = (f"signed and verified through {asked} (dkimpy)" if ok else
              f"the signature does not verify with the key published at {asked}")
    return ProbeResult(domain, selector, key_id, ok, detail)


def domains_to_test(project: Project, code: str, only: Iterable[str] = ()) -> list[str]:
    inst = project.institution(code)
    wanted = set(only)
    if inst is None:
        return []
    return [d.name for d in inst.domains if d.dkim and (not wanted or d.name in wanted)]
