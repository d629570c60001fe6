"""Colour and progress on a terminal, and nothing of either anywhere else.

Colour: on when the stream is a terminal (and ``TERM`` is not ``dumb``), off with
``--no-color`` or ``NO_COLOR`` (https://no-color.org), on in a pipe with ``FORCE_COLOR``. It is
painted on the product's own line formats (plan diffs, problem lines, verify and drift
statuses) *after* :func:`provisioner.escape.terminal` has made every control character of the
text visible: a live DNS value or a file name can never carry a colour code of its own.

Progress: a bar on stderr for steps that take more than a second, only when stderr is a
terminal outside CI (``CI`` set), or when asked with ``--progress``; never on stdout, so what a
command prints stays the same wherever it goes. rich does both; it is imported only when one of
them is on (a tenth of a second that ``validate`` in a pipeline never pays).
"""

from __future__ import annotations

import os
import re
from typing import TextIO

# (pattern, rich style) on the escaped text of each line the product prints.
RULES: tuple[tuple[str, str], ...] = (
    (r"^ *\+ .*$", "green"),
    (r"^ *- .*$", "red"),
    (r"^ *~ .*$", "yellow"),
    (r"^\S+\. on \S+ .*change\(s\)$", "bold"),
    (r"\berror\[[a-z0-9.-]+\]", "bold red"),
    (r"\bwarning\[[a-z0-9.-]+\]", "yellow"),
    (r"^(?:invalid|FAILED|MISSING|CHANGED|UNMANAGED|error)\b", "bold red"),
    (r"^(?:valid|ok|applied|no drift|no changes)\b", "green"),
    (r"^(?:PENDING|TEMPFAIL|unknown|warning)\b", "yellow"),
)


def colour_wanted(stream: TextIO, no_color: bool = False) -> bool:
    if no_color or os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR")
    if force is not None and force not in ("", "0", "false"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Painter:
    """Paints escaped text with :data:`RULES`, through rich's ANSI renderer."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.text import Text

        self._text = Text
        self._console = Console(force_terminal=True, color_system="standard", width=10_000,
                                highlight=False, markup=False, emoji=False, soft_wrap=True)
        self._rules = [(re.compile(p, re.MULTILINE), s) for p, s in RULES]

    def __call__(self, chunk: str) -> str:
        if not chunk.strip():
            return chunk
        text = self._text(chunk)
        for pattern, style in self._rules:
            text.highlight_regex(pattern, style)
        with self._console.capture() as captured:
            self._console.print(text, end="")
        return captured.get()


def progress_wanted(stream: TextIO, asked: bool | None) -> bool:
    if asked is not None:
        return asked
    if os.environ.get("CI"):
        return False
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


