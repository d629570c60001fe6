"""Merging the product's SPF mechanisms into a customer's live SPF value (DESIGN §5).

Pure text work, no octoDNS: the ownership processor calls it for every name where the product
shares the TXT set with the customer. Both values go through the project's RFC 7208 parser
(:mod:`provisioner.spf`), so a term is what the grammar says it is, not what a split on spaces
happens to give: ``include:`` with no domain, ``ip4:999.1.1.1`` or ``redirect`` written without
``=`` are syntax errors, not terms to carry along.

A live value that does not parse is never merged into: whatever we wrote into it, receivers
would still answer ``permerror`` (RFC 7208 §4.6) and the customer's mail would fail SPF as
before, while the plan would look as if it fixed something. :class:`LiveSpfError` says so, and
the caller refuses the zone.

Two SPF values at one name are a ``permerror`` too (§4.5), but one that the product can repair
without guessing (DESIGN §5: one record, every customer mechanism stays): when every value
parses, :func:`combine` makes them one value holding the mechanisms of all, in order, each once,
and the merge proceeds from that. It is refused only when the result would exceed §4.6.4's
lookup limit, since publishing it would trade one permerror for another.

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
    """The live SPF at a name cannot be merged into.

    ``values`` are the live SPF values concerned; ``syntax`` the parser's error for a malformed
    value (None otherwise); ``fix`` what the operator does about it. ``str()`` is one line naming
    the value(s), what is wrong and where; the caller adds the zone.
    """

    DEFAULT_FIX = ("repair the record at the DNS host (one valid v=spf1 value) or remove it, "
                   "then plan again")

    def __init__(
        self,
        values: Sequence[str],
        syntax: SpfSyntaxError | None = None,
        *,
        reason: str | None = None,
        fix: str = DEFAULT_FIX,
    ) -> None:
        self.values = tuple(values)
        self.syntax = syntax
        self.fix = fix
        if reason is not None:
            message = reason
        elif syntax is not None:
            where = f"column {syntax.position + 1}"
            if syntax.term:
                where = f"term {syntax.term!r} at {where}"
            message = (f"the live SPF value {self.values[0]!r} does not parse: {syntax.what} "
                       f"({where}); receivers answer permerror for it (RFC 7208 §4.6)")
        else:
            listed = ", ".join(repr(v) for v in self.values)
            message = (f"{len(self.values)} live SPF values ({listed}) cannot be merged into "
                       "one")
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

    Raises :class:`LiveSpfError` when there are several SPF values (see :func:`live_spf` for
    combining them) or the one does not parse.
    """
    found = [v for v in values if is_spf(v)]
    if len(found) > 1:
        raise LiveSpfError(found, reason=(
            f"{len(found)} live SPF values ({', '.join(repr(v) for v in found)}): more than "
            "one SPF record at a name is a permerror (RFC 7208 §4.5)"))
    if not found:
        return None
    try:
        parse(found[0])
    except SpfSyntaxError as exc:
        raise LiveSpfError(found, exc) from None
    return found[0]


_STRICTNESS = {"-": 0, "~": 1, "?": 2, "+": 3}


def combine(values: Sequence[str], ours: str | None = None) -> str:
    """Several live SPF values made one (RFC 7208 §4.5 allows one per name).

    Every value must parse (:class:`LiveSpfError` names the first that does not). The result
    holds the mechanisms of all values in order, each once (compared by :func:`key`), then one
    ``all`` term, then the modifiers, each once. When the values' ``all`` terms disagree, the
    declared one (``ours``) wins; without one, the strictest. Two different ``redirect=`` or
    ``exp=`` cannot be one value: that is a :class:`LiveSpfError` too.
    """
    records = []
    for value in values:
        try:
            records.append(parse(value))
        except SpfSyntaxError as exc:
            raise LiveSpfError([value], exc) from None
    mechanisms: list[Term] = []
    modifiers: list[Term] = []
    alls: list[Term] = []
    seen: set[TermKey] = set()
    for record in records:
        for term in record.terms:
            k = key(term)
            if k in seen:
                continue
            seen.add(k)
            (alls if _is_all(term) else modifiers if term.kind == "modifier"
             else mechanisms).append(term)
    if len(alls) > 1:
        declared = next((t for t in parse(ours).terms if _is_all(t)), None) if ours else None
        alls = [declared or min(alls, key=lambda t: _STRICTNESS.get(t.qualifier, 3))]
    text = _text([*mechanisms, *alls, *modifiers])
    try:
        parse(text)
    except SpfSyntaxError as exc:
        raise LiveSpfError(values, exc, reason=(
            f"{len(values)} live SPF values ({', '.join(repr(v) for v in values)}) cannot be "
            f"merged into one: {exc.what} in {text!r}"),
            fix="keep one v=spf1 value at the DNS host (one redirect=, one exp=), then plan "
                "again") from None
    return text


@dataclass(frozen=True, slots=True)
class LiveSpf:
    """The live SPF at a name as one value: ``value`` (None: there is none) and ``values``,
    the live SPF values it stands for (several when :func:`combine` merged them)."""

    value: str | None
    values: tuple[str, ...]

    @property
    def combined(self) -> bool:
        return len(self.values) > 1


def live_spf(values: Iterable[str], ours: str | None = None) -> LiveSpf:
    """The live SPF among a TXT set's values, several combined into one (:func:`combine`).

    Raises :class:`LiveSpfError` when a value does not parse.
    """
    found = tuple(v for v in values if is_spf(v))
    if len(found) > 1:
        return LiveSpf(combine(found, ours), found)
    return LiveSpf(parse_live(found), found)


def check_lookups(merged: SpfMerge, live: LiveSpf) -> None:
    """Refuse a merge of several live values whose result is over the lookup limit.

    A single live value over the limit is only noted (the customer's record was already so);
    a value we made from several must not be published broken.
    """
    if not live.combined or merged.value is None:
        return
    lookups = count_lookup_terms(parse(merged.value))
    if lookups > MAX_LOOKUPS:
        listed = ", ".join(repr(v) for v in live.values)
        raise LiveSpfError(live.values, reason=(
            f"{len(live.values)} live SPF values ({listed}) merged into one "
            f"({merged.value!r}) have {lookups} DNS-lookup terms, over RFC 7208 §4.6.4's "
            f"{MAX_LOOKUPS}: receivers would answer permerror"),
            fix="flatten or drop some includes so that one v=spf1 value stays within "
                f"{MAX_LOOKUPS} lookup terms, keep only that value at the DNS host, then plan "
                "again")


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


__all__ = [
    "LiveSpf", "LiveSpfError", "SpfMerge", "check_lookups", "combine", "is_spf", "key",
    "live_spf", "mechanism_keys", "merge", "parse_live",
]
