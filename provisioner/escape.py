"""Escaping what the product prints: every output carries text it did not write (live TXT
values, file names, customers' names, a server's error text), and each format has characters
that change what a reader sees (DESIGN §13).

- :func:`terminal`: control characters shown as ``\\xNN``, so a live value cannot move the
  cursor, recolour a log or hide a line (ESC, CR, backspace...);
- :func:`xml_text`: what XML 1.0 cannot carry at all (most C0 controls, lone surrogates, U+FFFE)
  shown as ``\\xNN``: a JUnit report stays well-formed;
- :func:`md_code`: a markdown code span, which GitLab renders literally: no link, image,
  mention (``@all``), HTML or emphasis inside; ``|`` escaped so a table cell stays one cell.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NEWLINES = re.compile(r"[\n\t]")
_XML_BAD = re.compile(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _hex(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal(text: str, *, newlines: bool = True) -> str:
    """``text`` with control characters (and bidirectional overrides) made visible; newlines
    and tabs kept unless ``newlines`` is False."""
    text = _CONTROL.sub(_hex, str(text))
    return text if newlines else _NEWLINES.sub(_hex, text)


def xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 forbids made visible (ElementTree escapes the
    rest: ``<``, ``&``, quotes)."""
    return _XML_BAD.sub(_hex, terminal(str(text)))


def md_code(text: str) -> str:
    """``text`` as one inline code span, safe inside a table cell."""
    text = terminal(str(text), newlines=False).replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|@~])")


def md_text(text: str) -> str:
    """``text`` as plain markdown text: every character markdown or GitLab gives a meaning
    (emphasis, links, images, HTML, ``@`` mentions, tables) backslash-escaped, on one line."""
    return _MD_SPECIAL.sub(r"\\\1", terminal(str(text), newlines=False))


class EscapingStream:
    """A text stream that writes through :func:`terminal`: whatever the product prints, a
    value read from DNS or a file cannot reach the terminal as a control sequence."""

    def __init__(self, stream: object, paint: Callable[[str], str] | None = None) -> None:
        self._stream = stream
        self._paint = paint  # colours the escaped text (cli.style), on a terminal only

    def write(self, text: str) -> int:
        clean = terminal(text)
        self._stream.write(self._paint(clean) if self._paint else clean)  # type: ignore[attr-defined]
        return len(text)

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)
