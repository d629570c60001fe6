"""SPF macros (RFC 7208 §7): parse a macro-string once, expand it once per evaluation.

A macro-string is parsed into a tuple of pieces when its record is parsed; evaluation only walks
the pieces, so a record cached by text never has its macros re-read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

#: Letters allowed in a domain-spec (§7.2); "c", "r" and "t" are for exp= text only (§7.3).
DOMAIN_LETTERS = frozenset("slodiphv")
#: Letters allowed in explanation text (§6.2, §7.3).
EXP_LETTERS = DOMAIN_LETTERS | frozenset("crt")

# macro-expand / escapes / a run of macro-literal (§7.1). Explanation text also allows SP (§6.2).
_MACRO = r"%\{(?P<letter>[A-Za-z])(?P<digits>[0-9]*)(?P<rev>[rR]?)(?P<delims>[-.+,/_=]*)\}"
_ESCAPE = r"%(?P<esc>[%_-])"
_TOKEN = re.compile(rf"{_MACRO}|{_ESCAPE}|(?P<lit>[\x21-\x24\x26-\x7e]+)")
_EXPLAIN_TOKEN = re.compile(rf"{_MACRO}|{_ESCAPE}|(?P<lit>[\x20-\x24\x26-\x7e]+)")
_ESCAPES = {"%": "%", "_": " ", "-": "%20"}
# Any transformer digit count at or above this keeps every part; a name has at most 127 labels.
_ALL_PARTS = 1000


class MacroError(ValueError):
    """A macro-string that breaks the §7.1 grammar; ``offset`` is where, 0-based, in the string."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Macro:
    """One ``%{...}`` expansion (§7.1, §7.3).

    ``digits`` 0 keeps every part; ``delimiters`` "" means ".". ``escape`` is set for an
    upper-case letter, whose value is URL-encoded after transformation (§7.3).
    """

    letter: str
    digits: int
    reverse: bool
    delimiters: str
    escape: bool


@dataclass(frozen=True, slots=True)
class MacroString:
    """A parsed macro-string: literal text and :class:`Macro` pieces, in order.

    ``literal`` is the whole expansion when there is no macro letter in it (escapes such as
    ``%%`` already applied), so constant domain-specs cost nothing at evaluation time.
    ``ends_with_macro`` and ``tail`` (the raw text after the last macro-expand) let the parser
    check ``domain-end`` (§7.1) without re-reading the string.
    """

    pieces: tuple[str | Macro, ...]
    literal: str | None
    ends_with_macro: bool
    tail: str


def parse_macro_string(
    text: str, letters: frozenset[str] = DOMAIN_LETTERS, *, explain: bool = False
) -> MacroString:
    """Parse ``text`` as a macro-string (§7.1), or as an explain-string if ``explain`` (§6.2).

    Raises :class:`MacroError` for a ``%`` not followed by ``{``, ``%``, ``_`` or ``-``
    (§7.1), a malformed ``%{...}``, a letter outside ``letters`` (§7.3), a zero digit
    transformer (§7.3) or a character outside the grammar.
    """
    token = _EXPLAIN_TOKEN if explain else _TOKEN
    pieces: list[str | Macro] = []
    literal: list[str] = []
    has_macro = False
    ends_with_macro = False
    tail_start = 0
    pos = 0
    while pos < len(text):
        m = token.match(text, pos)
        if m is None:
            if text[pos] == "%":
                raise MacroError(f"invalid macro {text[pos:pos + 3]!r}", pos)
            raise MacroError(f"character {text[pos]!r} not allowed", pos)
        lit, esc, letter = m.group("lit"), m.group("esc"), m.group("letter")
        if lit is not None:
            _append(pieces, lit)
            literal.append(lit)
            ends_with_macro = False
        elif esc is not None:
            _append(pieces, _ESCAPES[esc])
            literal.append(_ESCAPES[esc])
            ends_with_macro, tail_start = True, m.end()
        else:
            pieces.append(_macro(m, letter, letters, pos))
            has_macro = True
            ends_with_macro, tail_start = True, m.end()
        pos = m.end()
    return MacroString(
        pieces=tuple(pieces),
        literal=None if has_macro else "".join(literal),
        ends_with_macro=ends_with_macro,
        tail=text[tail_start:],
    )


def _append(pieces: list[str | Macro], text: str) -> None:
    if pieces and isinstance(pieces[-1], str):
        pieces[-1] += text
    else:
        pieces.append(text)


def _macro(m: re.Match[str], letter: str, letters: frozenset[str], pos: int) -> Macro:
    lower = letter.lower()
    if lower not in letters:
        raise MacroError(f"macro letter {letter!r} not allowed here", pos)
    raw = m.group("digits")
    significant = raw.lstrip("0")
    if raw and not significant:
        raise MacroError("macro digit transformer must be nonzero", pos)
    digits = int(significant) if 0 < len(significant) < 4 else (_ALL_PARTS if raw else 0)
    return Macro(
        letter=lower,
        digits=digits,
        reverse=bool(m.group("rev")),
        delimiters=m.group("delims"),
        escape=letter.isupper(),
    )


def expand(ms: MacroString, value: Callable[[str], str]) -> str:
    """Expand ``ms``; ``value(letter)`` gives the raw value of a lower-case macro letter (§7.3).

    Transformers split on the delimiters (default "."), optionally reverse, keep the right-most
    ``digits`` parts and join with "."; upper-case letters are then URL-encoded, every character
    outside the unreserved set escaped (§7.3).
    """
    if ms.literal is not None:
        return ms.literal
    out: list[str] = []
    for piece in ms.pieces:
        if isinstance(piece, str):
            out.append(piece)
            continue
        text = value(piece.letter)
        if piece.digits or piece.reverse or piece.delimiters:
            parts = _splitter(piece.delimiters or ".").split(text)
            if piece.reverse:
                parts.reverse()
            if piece.digits:
                parts = parts[-piece.digits:]
            text = ".".join(parts)
        out.append(quote(text, safe="") if piece.escape else text)
    return "".join(out)


@lru_cache(maxsize=64)
def _splitter(delimiters: str) -> re.Pattern[str]:
    return re.compile(f"[{re.escape(delimiters)}]")
