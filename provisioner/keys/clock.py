"""The time the key lifecycle reads: the one place to move it in tests (never a sleep)."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
