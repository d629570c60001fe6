"""A YAML syntax error in words, at the line the user must change.

libyaml reports where its parser gave up ("did not find expected key" at the line *after* an
over-indented one), in the parser's terms. Newcomers need the line to edit and what is wrong
there. No library does this; the rules below cover what people get wrong in declarations:
indentation, tabs, unclosed brackets and quotes, and an unquoted ': ' inside a value.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import yaml


@dataclass(frozen=True)
class Explained:
    line: int  # 1-based
    column: int
    message: str
    hint: str


_KEY_LINE = re.compile(r"^( *)(- +)?([^\s#'\"\[{][^:#]*?|'[^']*'|\"[^\"]*\"):(?:\s|$)")


def explain(text: str, exc: yaml.MarkedYAMLError) -> Explained:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    lines = text.splitlines()
    tab = _first_tab(lines, line)
    if tab is not None or "\t" in problem:
        at = tab or (line, column)
        return Explained(at[0], at[1], f"a tab character in line {at[0]}'s indentation",
                         "indent with spaces only (YAML forbids tabs there)")
    if "expected ',' or ']'" in problem or "expected ',' or '}'" in problem:
        opener = "[" if "]" in problem else "{"
        start = exc.context_mark
        sl = start.line + 1 if start else line
        return Explained(sl, (start.column + 1) if start else 1,
                         f"the {opener} opened on line {sl} is not closed on that line",
                         f"close it with {']' if opener == '[' else '}'} on line {sl}, or "
                         "separate the items with commas")
    if "found unexpected end of stream" in problem or "while scanning a quoted scalar" in str(
            exc.context or ""):
        start = exc.context_mark
        sl = start.line + 1 if start else line
        return Explained(sl, (start.column + 1) if start else 1,
                         f"the quote opened on line {sl} is never closed",
                         "end the value with the same quote character, on the same line")
    indent = _indentation(lines, line)
    if indent is not None:
        return indent
    if "mapping values are not allowed" in problem:
        return Explained(line, column,
                         "a second ': ' on one line (YAML reads it as a new key inside a value)",
                         "put the value in quotes, or each key on its own line")
    if "could not find expected ':'" in problem:
        return Explained(line, column, "a line without 'key: value' where a key is expected",
                         "write 'key: value', or indent the line under its key")
    return Explained(line, column, problem,
                     "fix the YAML syntax near here (keys end with ':', items start with '- ', "
                     "indent with spaces)")


def _first_tab(lines: list[str], near: int) -> tuple[int, int] | None:
    for number in range(max(1, near - 1), min(len(lines), near) + 1):
        row = lines[number - 1]
        lead = row[: len(row) - len(row.lstrip(" \t"))]
        if "\t" in lead:
            return number, lead.index("\t") + 1
    return None


def _meaningful(lines: list[str], upto: int) -> list[tuple[int, int, str]]:
    """(line number, indentation, text) of each non-blank, non-comment line up to ``upto``."""
    rows = []
    for number, row in enumerate(lines[:upto], start=1):
        stripped = row.strip()
        if stripped and not stripped.startswith("#"):
            rows.append((number, len(row) - len(row.lstrip(" ")), stripped))
    return rows


def _indentation(lines: list[str], near: int) -> Explained | None:
    """The first line, up to just after the parser's mark, whose indentation matches no open
    level, blamed on itself or on the block it closes, whichever breaks the file's step."""
    rows = _meaningful(lines, min(len(lines), near + 1))
    steps = [b - a for (_, a, _), (_, b, _) in itertools.pairwise(rows) if b > a]
    step = max(set(steps), key=steps.count) if steps else 2
    stack: list[tuple[int, int, int]] = []  # (indentation, line, parent indentation)
    prev_opens = True
    for number, ind, text in rows:
        if not stack:
            stack.append((ind, number, -step))
        elif ind > stack[-1][0]:
            if not prev_opens:
                above = rows[rows.index((number, ind, text)) - 1]
                opener = _opener_before(rows, above)
                if opener is not None:
                    return Explained(above[0], above[1] + 1,
                                     f"line {above[0]} is not indented under line {opener[0]} "
                                     f"({opener[2]!r}), which then holds nothing",
                                     f"indent line {above[0]} by {opener[1] + step} spaces")
                return Explained(number, ind + 1,
                                 f"line {number} is indented more than the line above it, "
                                 "which does not open a block",
                                 f"indent it by {stack[-1][0]} spaces, like line "
                                 f"{_line_at(rows, number, stack[-1][0])}, or end the line "
                                 "above with ':'")
            stack.append((ind, number, stack[-1][0]))
        elif ind < stack[-1][0]:
            while stack and stack[-1][0] > ind:
                closed = stack.pop()
            if not stack or stack[-1][0] != ind:
                parent = closed[2]
                if closed[0] - parent != step and ind - parent == step:
                    # the block's first line broke the step: it is the one to move
                    return Explained(closed[1], closed[0] + 1,
                                     f"line {closed[1]} is indented {closed[0]} spaces, but "
                                     f"its sibling on line {number} is indented {ind}",
                                     f"indent line {closed[1]} by {ind} spaces, as the rest "
                                     "of the file")
                want = closed[0] if abs(closed[0] - ind) <= abs(parent - ind) else parent
                return Explained(number, ind + 1,
                                 f"line {number} is indented {ind} spaces, which lines up "
                                 "with no key above it",
                                 f"indent it by {max(want, 0)} spaces, like line "
                                 f"{_line_at(rows, number, want)}")
        prev_opens = text.endswith(":") or text.startswith("- ") or text == "-" \
            or bool(re.search(r":\s*(#.*)?$", text)) or text.endswith(("|", ">", "|-", ">-"))
    return None


def _opener_before(rows: list[tuple[int, int, str]], row: tuple[int, int, str]
                   ) -> tuple[int, int, str] | None:
    """The line just before ``row`` when it ends with ':' at ``row``'s indentation: a key
    whose block ``row`` (and what follows it) was meant to be."""
    i = rows.index(row)
    if i == 0:
        return None
    before = rows[i - 1]
    if before[1] == row[1] and re.search(r":\s*(#.*)?$", before[2]):
        return before
    return None


def _line_at(rows: list[tuple[int, int, str]], before: int, indentation: int) -> int:
    for number, ind, _ in reversed(rows):
        if number < before and ind == indentation:
            return number
    return before
