"""What every command shares: loading the project and reporting problems on stderr."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from provisioner.config import Project, load_project
from provisioner.errors import Problem

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2  # plan --detailed-exitcode; verify/drift: failures or drift


def report(problems: Iterable[Problem]) -> None:
    """One line per problem on stderr, errors first, in file order."""
    ordered = sorted(
        problems,
        key=lambda p: (not p.is_error, p.origin.file, p.origin.line, p.origin.column, p.code),
    )
    for problem in ordered:
        print(problem, file=sys.stderr)


def load(
    args: argparse.Namespace,
    files: Iterable[str] | None = None,
    *,
    institution: str | None = None,
) -> Project | None:
    """Load and check the project, narrowed to ``institution`` when given; print its problems.
    None (after saying why) when any problem is an error or the institution is unknown."""
    project = load_project(Path(args.config), [Path(f) for f in files] if files else None)
    report(project.problems)
    if not project.ok:
        return None
    return select_institution(project, institution)


def select_institution(project: Project, code: str | None) -> Project | None:
    """The project narrowed to one institution; None (after a message) when it is unknown."""
    if code is None:
        return project
    narrowed = project.only(code)
    if narrowed is None:
        known = ", ".join(i.code for i in project.institutions[:10])
        print(
            f"provisioner: no institution {code!r} in {project.zones_dir} (known: {known})",
            file=sys.stderr,
        )
    return narrowed
