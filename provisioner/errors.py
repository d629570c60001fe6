"""Problems and the one exception root.

Every check collects :class:`Problem` values instead of raising at the first one, so a user sees
all that is wrong in one run. A problem carries its origin (file, line, column) and a stable code
such as ``spf.lookup-limit`` that scripts and tests may rely on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a value was written: 1-based line and column, as editors count them."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    message: str
    origin: Origin
    hint: str = ""
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        """One line: ``FILE:LINE:COL: severity[code]: message (fix: hint)``."""
        text = f"{self.origin}: {self.severity.value}[{self.code}]: {self.message}"
        if self.hint:
            text += f" (fix: {self.hint})"
        return text.replace("\n", " ")

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_json(self) -> dict[str, str | int]:
        """The problem as every ``--format json`` carries it (docs/json.md)."""
        return {"code": self.code, "severity": self.severity.value, "message": self.message,
                "fix": self.hint, "origin": str(self.origin), "file": self.origin.file,
                "line": self.origin.line, "column": self.origin.column}


class ProvisionerError(Exception):
    """Root of every error this package raises on purpose."""


@dataclass
class InvalidInput(ProvisionerError):
    """One or more located problems in the user's files."""

    problems: tuple[Problem, ...] = field(default_factory=tuple)

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def errors_only(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.is_error]
