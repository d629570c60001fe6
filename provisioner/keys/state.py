"""The key state of one institution (DESIGN §9): which key sits on each selector, which selector
signs, since when, and every transition with its time and reason.

Pure values with a JSON form (:meth:`InstitutionKeys.to_json`, :func:`from_json`); the stores
(:mod:`provisioner.keys.store`) keep that JSON. No private key is ever part of a state: a key is
named by its id, and its private half lives in the key store alone.

Each selector (its label in the DKIM zone, ``sel1-mosa``) moves through
``empty -> published -> signing -> standby -> retiring -> empty``:

- ``published``: a key is in DNS and nothing signs with it yet (a spare, or a rotation's new key);
- ``signing``: the mail platform signs with it (one selector at a time);
- ``standby``: signing moved to the other selector; the key stays published for the grace period
  so that mail signed with it and still in transit verifies;
- ``retiring``: its record says ``p=`` (revoked, RFC 6376 §3.6.1) for the retention period;
- ``empty``: no key; a selector that had one keeps publishing ``p=`` so the customer's CNAME
  never dangles.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

FORMAT = 1


class Status(StrEnum):
    EMPTY = "empty"
    PUBLISHED = "published"
    SIGNING = "signing"
    STANDBY = "standby"
    RETIRING = "retiring"


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    # fromisoformat reads the "Z" (Python 3.11) and is 20 times faster than strptime.
    when = datetime.fromisoformat(text)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key's public facts: ``public`` is the DKIM ``p=`` (base64 DER for rsa, the 32 raw
    octets for ed25519, RFC 8463)."""

    id: str  # <label>.<generation>, e.g. sel1-mosa.1: its name in the key store
    algorithm: str  # rsa | ed25519
    bits: int
    public: str
    created: datetime

    @property
    def spec(self) -> str:
        return "ed25519" if self.algorithm == "ed25519" else f"rsa-{self.bits}"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "algorithm": self.algorithm, "bits": self.bits,
                "public": self.public, "created": stamp(self.created)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyInfo:
        created = _time(data["created"])
        if created is None:
            raise StateError(f"key {data.get('id')!r} has no creation time")
        return cls(str(data["id"]), str(data["algorithm"]), int(data["bits"]),
                   str(data["public"]), created)


@dataclass(frozen=True, slots=True)
class Slot:
    """One selector's place. ``key`` is None when ``empty`` or ``retiring``."""

    label: str
    status: Status = Status.EMPTY
    since: datetime | None = None  # when it entered ``status``
    key: KeyInfo | None = None
    generation: int = 0  # keys ever put here; the next key is <label>.<generation + 1>
    live_since: datetime | None = None  # first seen verifying everywhere: the gate's start
    signed: bool = False  # whether ``key`` ever signed (a never-used spare may be replaced)
    algorithm: str = "rsa"  # of the last key here: a revoked record keeps its k=

    @property
    def published(self) -> str | None:
        """What the key record publishes: the key, ``""`` (``p=``) once a key was revoked, or
        None (no record) for a selector that never had a key."""
        if self.key is not None:
            return self.key.public
        return "" if self.generation else None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value,
                "since": stamp(self.since) if self.since else None,
                "key": self.key.to_json() if self.key else None,
                "generation": self.generation,
                "live_since": stamp(self.live_since) if self.live_since else None,
                "signed": self.signed, "algorithm": self.algorithm}


@dataclass(frozen=True, slots=True)
class Event:
    """One transition, for the audit trail (``keys status``)."""

    at: datetime
    step: str  # generate | rotate | activate | retire | release | observe
    selector: str
    before: Status
    after: Status
    key: str | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"at": stamp(self.at), "step": self.step, "selector": self.selector,
                "from": self.before.value, "to": self.after.value, "key": self.key,
                "reason": self.reason}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        at = _time(data["at"])
        if at is None:
            raise StateError("an event of the history has no time")
        return cls(at, str(data["step"]), str(data["selector"]), Status(data["from"]),
                   Status(data["to"]), data.get("key"), str(data["reason"]))

    def __str__(self) -> str:
        key = f" ({self.key})" if self.key else ""
        return (f"{stamp(self.at)}  {self.step:<9} {self.selector}{key}: {self.before.value} -> "
                f"{self.after.value}: {self.reason}")


@dataclass(frozen=True, slots=True)
class InstitutionKeys:
    """``version`` counts writes: a store accepts a write only over the version it was read at,
    so two runs never both win (:class:`~provisioner.keys.store.Conflict`)."""

    institution: str
    slots: tuple[Slot, ...]
    version: int = 0
    history: tuple[Event, ...] = ()
    rotating_to: str | None = None  # the selector a rotation in progress will activate
    emergency: str | None = None  # the leaked key's selector, while an emergency runs

    @classmethod
    def new(cls, code: str, labels: tuple[str, ...]) -> InstitutionKeys:
        return cls(code, tuple(Slot(label) for label in labels))

    def slot(self, label: str) -> Slot:
        for s in self.slots:
            if s.label == label:
                return s
        raise KeyError(label)

    @property
    def signing(self) -> Slot | None:
        return next((s for s in self.slots if s.status is Status.SIGNING), None)

    def with_labels(self, labels: tuple[str, ...]) -> InstitutionKeys:
        """The state over the platform's current selectors (new ones empty), in their order;
        slots of selectors no longer configured stay, after them, so nothing is forgotten."""
        known = {s.label: s for s in self.slots}
        slots = [known.pop(label, Slot(label)) for label in labels]
        return replace(self, slots=(*slots, *known.values()))

    def put(self, slot: Slot, event: Event) -> InstitutionKeys:
        slots = tuple(slot if s.label == slot.label else s for s in self.slots)
        return replace(self, slots=slots, history=(*self.history, event))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "institution": self.institution, "version": self.version,
                "rotating_to": self.rotating_to, "emergency": self.emergency,
                "selectors": {s.label: s.to_json() for s in self.slots},
                "history": [e.to_json() for e in self.history]}


class StateError(ValueError):
    """A stored state that does not read as one."""


def from_json(data: Any) -> InstitutionKeys:
    try:
        if data.get("format") != FORMAT:
            raise StateError(f"unknown key state format {data.get('format')!r}")
        slots = []
        for label, s in data["selectors"].items():
            slots.append(Slot(
                str(label), Status(s["status"]), _time(s.get("since")),
                KeyInfo.from_json(s["key"]) if s.get("key") else None,
                int(s.get("generation", 0)), _time(s.get("live_since")),
                bool(s.get("signed", False)), str(s.get("algorithm", "rsa"))))
        labels = {s.label for s in slots}
        for field_name in ("rotating_to", "emergency"):
            value = data.get(field_name)
            if value is not None and value not in labels:
                raise StateError(f"{field_name} names {value!r}, which is not a selector")
        return InstitutionKeys(
            str(data["institution"]), tuple(slots), int(data["version"]),
            tuple(Event.from_json(e) for e in data.get("history", ())),
            data.get("rotating_to"), data.get("emergency"))
    except StateError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise StateError(f"key state does not read: {type(exc).__name__}: {exc}") from None
