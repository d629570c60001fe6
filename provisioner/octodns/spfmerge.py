"""Merging the product's SPF mechanisms into a customer's live SPF value (DESIGN §5).

Pure text work, no octoDNS: the ownership processor calls it for every name where the product
shares the TXT set with the customer. Both values go through the project's RFC 7208 parser
(:mod:`provisioner.spf`), so a term is what the grammar says it is, not what a split on spaces
happens to give: ``include:`` with no domain, ``ip4:999.1.1.1`` or ``redirect`` written without
``=`` are syntax errors, not terms to carry along.

A live value that does not parse is never merged into: whatever we wrote into it, receivers
would still answer ``permerror`` (RFC 7208 §4.6) and the customer's mail would fail SPF as
before, while the plan would look as if it fixed something. :class:`LiveSpfError` says so, and
the caller refuses the zone. Two SPF values at one name are the same kind of error (§4.5:
``permerror``): picking one to merge into would be a guess about which one the customer meant.

Terms compare by their parsed parts: the qualifier (absent means ``+``, §4.6.2), the name
(case-insensitive) and the argument (domain names are case-insensitive; an argument holding a
macro keeps its case, since ``%{S}`` and ``%{s}`` expand differently, §7.3).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from provisioner.errors import ProvisionerError
from provisioner.spf import MAX_LOOKUPS, SpfSyntaxError, Term, count_lookup_terms, is_spf, parse

SPF_PREFIX = "v=spf1"

TermKey = tuple[str, str, str, str | None]  # kind, qualifier, name, argument


class LiveSpfError(ProvisionerError):
    """The live SPF at a name cannot be merged into: it does not parse, or there are several.

    ``values`` are the live SPF values (one when it does not parse); ``syntax`` the parser's
    error for a single malformed value, None for several values. ``str()`` is one line naming
    the value(s), what is wrong and where; the caller adds the zone and the fix.
    """

    def __init__(self, values: Sequence[str], syntax: SpfSyntaxError | None = None) -> None:
        self.values = tuple(values)
        self.syntax = syntax
        if syntax is not None:
            where = f"column {syntax.position + 1}"
            if syntax.term:
                where = f"term {syntax.term!r} at {where}"
            message = (f"the live SPF value {self.values[0]!r} does not parse: {syntax.what} "
                       f"({where}); receivers answer permerror for it (RFC 7208 §4.6)")
        else:
            listed = ", ".join(repr(v) for v in self.values)
            message = (f"{len(self.values)} live SPF values ({listed}): more than one SPF "
                       "record at a name is a permerror (RFC 7208 §4.5), and the provisioner "
                       "will not guess which one to merge into")
        super().__init__(message)


def key(term: Term) -> TermKey:
    """What makes two terms the same term: ``include:X`` equals ``+INCLUDE:x``."""
    value = term.value
    if value is not None and "%" not in value:
        value = value.lower()
    return (term.kind, term.qualifier, term.name, value)


def _is_all(term: Term) -> bool:
    return term.kind == "mechanism" and term.name == "all"


def mechanism_keys(texts: Iterable[str]) -> set[TermKey]:
    """Keys of mechanisms given as text (the marker's ``spf`` lines, our own terms).

    A text that does not parse matches nothing: the marker is ours, so that only happens if it
    was edited by hand, and an edited entry must not make us remove a customer's term.
    """
    keys: set[TermKey] = set()
    for text in texts:
        try:
            keys |= {key(t) for t in parse(f"{SPF_PREFIX} {text}").terms}
        except SpfSyntaxError:
            continue
    return keys


def parse_live(values: Iterable[str]) -> str | None:
    """The one live SPF value among a TXT set's values (None: there is none).

    Raises :class:`LiveSpfError` when there are several SPF values or the one does not parse.
    """
    found = [v for v in values if is_spf(v)]
    if len(found) > 1:
        raise LiveSpfError(found)
    if not found:
        return None
    try:
        parse(found[0])
    except SpfSyntaxError as exc:
        raise LiveSpfError(found, exc) from None
    return found[0]


@dataclass(frozen=True, slots=True)
class SpfMerge:
    """The merged value (None: nothing left to publish) and notes for the operator."""

    value: str | None
    undeclared: tuple[str, ...]  # live mechanisms the declaration does not list, as written
    notes: tuple[str, ...]


def merge(
    live: str | None,
    ours: str | None,
    owned: Iterable[str] = (),
    released: Iterable[str] = (),
) -> SpfMerge:
    """Our SPF value merged into ``live``.

    - ``live`` must parse (see :func:`parse_live`); raises :class:`LiveSpfError` otherwise.
      ``ours`` is the expansion's, which always parses (a ValueError here is a product bug).
    - Every live term stays, in its place and as written, except ``released`` mechanisms (ours
      before, not now).
    - Our mechanisms that are missing go in before the ``all`` term, or, with no ``all``,
      before the first modifier, so a ``redirect=`` or ``exp=`` stays last.
    - The ``all`` term: theirs stays unless ours is stricter (``-all``, the declaration's
      ``fail``). With no ``all`` and no ``redirect=``, ours is added. With a ``redirect=`` and
      no ``all``, none is added: the redirected record's result is the customer's default
      (an ``all`` would make the redirect ignored, RFC 7208 §6.1), and a note says so when
      ours asked for ``-all``.
    - ``owned`` are the mechanisms the product brings itself (the platform include); live
      mechanisms that are neither ours nor declared come back in ``undeclared``.
    - With ``ours`` None (the declaration is gone) the released terms are removed, and the value
      is dropped when nothing but ``all`` remains of it.
    """
    if live is None:
        return SpfMerge(ours, (), ())
    try:
        live_record = parse(live)
    except SpfSyntaxError as exc:
        raise LiveSpfError([live], exc) from None
    released_keys = mechanism_keys(released)
    live_terms = [t for t in live_record.terms if key(t) not in released_keys]
    if ours is None:
        if all(_is_all(t) for t in live_terms):
            return SpfMerge(None, (), ("SPF held only the platform's mechanisms: removed",))
        return SpfMerge(_text(live_terms), (), ())
    our_terms = parse(ours).terms
    our_keys = {key(t) for t in our_terms} | mechanism_keys(owned)
    live_keys = {key(t) for t in live_terms}
    undeclared = tuple(
        t.text for t in live_terms
        if t.kind == "mechanism" and not _is_all(t) and key(t) not in our_keys
    )
    additions = [t for t in our_terms
                 if t.kind == "mechanism" and not _is_all(t) and key(t) not in live_keys]
    our_all = next((t for t in our_terms if _is_all(t)), None)
    notes: list[str] = []
    merged: list[Term] = []
    placed = False
    for term in live_terms:
        if _is_all(term):
            merged.extend(additions)
            placed = True
            if our_all is not None and our_all.qualifier == "-" and term.qualifier != "-":
                notes.append(f"{term.text} tightened to {our_all.text} as declared")
                term = our_all
            elif our_all is not None and term.qualifier in ("+", "?"):
                notes.append(f"the live SPF ends with {term.text}: it passes any sender")
        merged.append(term)
    if not placed:
        first_mod = next((i for i, t in enumerate(merged) if t.kind == "modifier"), len(merged))
        merged[first_mod:first_mod] = additions
        redirect = next((t for t in merged if t.kind == "modifier" and t.name == "redirect"),
                        None)
        if redirect is None:
            if our_all is not None:
                merged.insert(first_mod + len(additions), our_all)
        elif our_all is not None and our_all.qualifier == "-":
            notes.append(f"the live SPF ends with {redirect.text}: its default comes from "
                         f"there, so the declared {our_all.text} is not added (an all beside "
                         "redirect= would disable it, RFC 7208 §6.1)")
    value = _text(merged)
    lookups = count_lookup_terms(parse(value))  # also proves the merge kept the value valid
    if lookups > MAX_LOOKUPS:
        notes.append(f"the merged SPF has {lookups} DNS-lookup terms of its own, over RFC 7208 "
                     f"§4.6.4's {MAX_LOOKUPS}: receivers answer permerror (flatten or drop "
                     "some includes)")
    return SpfMerge(value, undeclared, tuple(notes))


def _text(terms: Iterable[Term]) -> str:
    return " ".join([SPF_PREFIX, *(t.text for t in terms)])


__all__ = ["LiveSpfError", "SpfMerge", "is_spf", "key", "mechanism_keys", "merge", "parse_live"]
