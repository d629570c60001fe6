"""Merging the product's SPF mechanisms into a customer's live SPF value (DESIGN §5).

Pure text work, no octoDNS: the ownership processor calls it for every name where the product
shares the TXT set with the customer. SPF terms are separated by spaces (RFC 7208 §4.6.1), so a
term's text is the unit of merging; mechanisms compare case-insensitively with the default
``+`` qualifier made explicit, since ``include:x`` and ``+include:x`` are the same term.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SPF_PREFIX = "v=spf1"


def is_spf(value: str) -> bool:
    """RFC 7208 §4.5: a record is SPF when it is exactly ``v=spf1`` or starts with ``v=spf1 ``."""
    low = value.strip().lower()
    return low == SPF_PREFIX or low.startswith(SPF_PREFIX + " ")


def _terms(value: str) -> list[str]:
    return value.split()[1:]


def _key(term: str) -> str:
    low = term.lower()
    return low[1:] if low[:1] == "+" else low


def _is_all(term: str) -> bool:
    return _key(term).lstrip("-~?") == "all"


def _is_modifier(term: str) -> bool:
    # RFC 7208 §4.6.1: modifiers are name=value; mechanisms never hold '=' before ':' or '/'.
    head = term.split(":", 1)[0].split("/", 1)[0]
    return "=" in head


@dataclass(frozen=True, slots=True)
class SpfMerge:
    """The merged value (None: nothing left to publish) and notes for the operator."""

    value: str | None
    undeclared: tuple[str, ...]  # live mechanisms the declaration does not list
    notes: tuple[str, ...]


def merge(
    live: str | None,
    ours: str | None,
    owned: Iterable[str] = (),
    released: Iterable[str] = (),
) -> SpfMerge:
    """Our SPF value merged into ``live``.

    - Every live term stays, in its place, except ``released`` mechanisms (ours before, not now).
    - Our mechanisms that are missing go in before the ``all`` term.
    - The ``all`` term: theirs stays unless ours is stricter (``-all``, the declaration's
      ``fail``); with no ``all`` and no ``redirect=`` ours is added (a ``redirect=`` would be
      ignored beside an ``all``, RFC 7208 §6.1).
    - ``owned`` are the mechanisms the product brings itself (the platform include); live
      mechanisms that are neither ours nor declared come back in ``undeclared``.
    - With ``ours`` None (the declaration is gone) the released terms are removed, and the value
      is dropped when nothing but ``all`` remains of it.
    """
    released_keys = {_key(t) for t in released}
    if live is None:
        return SpfMerge(ours, (), ())
    live_terms = [t for t in _terms(live) if _key(t) not in released_keys]
    if ours is None:
        if not any(not _is_all(t) for t in live_terms):
            return SpfMerge(None, (), ("SPF held only the platform's mechanisms: removed",))
        return SpfMerge(" ".join([SPF_PREFIX, *live_terms]), (), ())
    our_terms = _terms(ours)
    our_keys = {_key(t) for t in our_terms} | {_key(t) for t in owned}
    live_keys = {_key(t) for t in live_terms}
    undeclared = tuple(
        t for t in live_terms if not _is_all(t) and not _is_modifier(t) and _key(t) not in our_keys
    )
    additions = [t for t in our_terms if not _is_all(t) and _key(t) not in live_keys]
    our_all = next((t for t in our_terms if _is_all(t)), None)
    notes: list[str] = []
    merged: list[str] = []
    placed = False
    for term in live_terms:
        if _is_all(term):
            merged.extend(additions)
            placed = True
            if our_all is not None and _key(our_all).startswith("-") and _key(term) != "-all":
                notes.append(f"{term} tightened to {our_all} as declared")
                term = our_all
            elif our_all is not None and _key(term) in ("all", "?all"):
                notes.append(f"the live SPF ends with {term}: it passes any sender")
        merged.append(term)
    if not placed:
        # Mechanisms must precede modifiers only by convention; placing ours before the first
        # modifier keeps the customer's redirect= or exp= last, where readers expect them.
        first_mod = next((i for i, t in enumerate(merged) if _is_modifier(t)), len(merged))
        merged[first_mod:first_mod] = additions
        has_redirect = any(_key(t).startswith("redirect=") for t in merged)
        if our_all is not None and not has_redirect:
            merged.insert(first_mod + len(additions), our_all)
    return SpfMerge(" ".join([SPF_PREFIX, *merged]), undeclared, tuple(notes))
