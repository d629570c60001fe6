"""The DKIM key policy (DESIGN §9): which keys are made, and the timings of their rotation.

Pure values: parsed from ``provisioner.yaml`` (``platform.dkim.keys``) and an institution's
``dkim_keys`` override by :mod:`provisioner.config`; read by the lifecycle's decisions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import timedelta

RSA_SIZES = (2048, 3072, 4096)  # RFC 8301 §3.2: 1024 is refused here, under 2048 is weak
ALGORITHMS = ("rsa", "ed25519")
MIN_GATE = timedelta(hours=4)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``180d``, ``96h``, ``30m``, ``5s``; ValueError otherwise."""
    match = re.fullmatch(r"([1-9][0-9]{0,6})([smhd])", text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 180d, 96h or 30s")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling: 180d, 96h, 4h, 90s."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a new key is: ``rsa`` with ``bits``, or ``ed25519`` (bits 256)."""

    algorithm: str = "rsa"
    bits: int = 2048

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown DKIM key algorithm {self.algorithm!r}")
        if self.algorithm == "rsa" and self.bits not in RSA_SIZES:
            raise ValueError(f"RSA keys of {self.bits} bits are refused: use 2048, 3072 or 4096")

    @classmethod
    def of(cls, algorithm: str, bits: int | None = None) -> KeySpec:
        return cls(algorithm, 256 if algorithm == "ed25519" else (bits or 2048))

    def __str__(self) -> str:
        return "ed25519" if self.algorithm == "ed25519" else f"rsa-{self.bits}"


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where private keys and the key state live: ``local`` (``directory``, None for the
    default) or ``secretsmanager`` (``prefix``, ``region``, ``kms_key_id``)."""

    kind: str = "local"
    directory: str | None = None
    prefix: str = "mailauth-provisioner/"
    region: str | None = None
    kms_key_id: str | None = None


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    spec: KeySpec = field(default_factory=KeySpec)
    rotation_interval: timedelta = timedelta(days=180)
    # None: the larger of the record TTL and 4 hours (:meth:`gate`).
    propagation_gate: timedelta | None = None
    grace: timedelta = timedelta(hours=96)
    retention: timedelta = timedelta(days=7)
    store: StoreConfig = field(default_factory=StoreConfig)

    def gate(self, ttl: int) -> timedelta:
        """How long a new key must have been live before signing moves to it."""
        if self.propagation_gate is not None:
            return self.propagation_gate
        return max(timedelta(seconds=ttl), MIN_GATE)

    def for_institution(self, override: KeySpec | None) -> KeyPolicy:
        return self if override is None else replace(self, spec=override)
