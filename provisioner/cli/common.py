"""What every command shares: loading the project and reporting problems on stderr."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from provisioner.config import Project, load_project
from provisioner.errors import Problem

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2  # plan --detailed-exitcode; verify/drift: failures or drift
EXIT_REFUSED = 3  # keys: a step's precondition does not hold (yet)


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error exiting 1 (DESIGN §6): 2 means changes, drift or
    failures, and a mistyped option must never read as one of them."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def plural(count: int, word: str) -> str:
    """``1 error``, ``2 errors``."""
    return f"{count} {word}" + ("" if count == 1 else "s")


#: The longest wait any option takes (--wait, --verify-wait): a day.
MAX_WAIT = 86_400.0
#: The longest timeout of one DNS or API exchange: an hour (beyond, the OS refuses it).
MAX_TIMEOUT = 3_600.0


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of seconds")
    return value


def seconds(text: str) -> float:
    """A ``type=`` for waits in seconds: a finite number from 0 to :data:`MAX_WAIT`."""
    value = _number(text)
    if not 0 <= value <= MAX_WAIT:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds from 0 to "
                                         f"{MAX_WAIT:.0f} (a day)")
    return value


def positive_seconds(text: str) -> float:
    """A ``type=`` for timeouts: a finite number of seconds > 0, at most :data:`MAX_TIMEOUT`."""
    value = _number(text)
    if not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds > 0 and at most "
                                         f"{MAX_TIMEOUT:.0f} (an hour)")
    return value


def api_report() -> dict[str, dict[str, int]]:
    """The Route53 requests of this run by target and operation (empty when none was made:
    the rate limiter is imported only with a Route53 target)."""
    if "provisioner.octodns.ratelimit" not in sys.modules:
        return {}
    from provisioner.octodns import ratelimit

    return ratelimit.report()


def api_calls() -> dict[str, dict[str, int]]:
    """:func:`api_report`, with its one-line summary on stderr."""
    calls = api_report()
    if calls:
        from provisioner.octodns import ratelimit

        print(ratelimit.summary(), file=sys.stderr)
    return calls


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
    keys: bool = False,
    only: Sequence[Path] | None = None,
) -> Project | None:
    """Load and check the project, narrowed to ``institution`` when given; print its problems.
    None (after saying why) when any problem is an error or the institution is unknown.

    ``keys``: lay the DKIM keys of the key state into the project (:func:`with_keys`), so that
    its records hold every key record and verify knows the keys."""
    project = load_project(Path(args.config), [Path(f) for f in files] if files else None,
                           only=only)
    report(project.problems)
    if not project.ok:
        return None
    if keys:
        loaded = with_keys(project, institution)
        if loaded is None:
            return None
        project = loaded[0]
    return select_institution(project, institution)


def with_keys(project: Project, institution: str | None = None
              ) -> tuple[Project, KeyContext] | None:
    """The project with the published keys of its key state, and that state; None (after a
    one-line message) when the key store cannot be read: a plan without the keys would
    show every key record as a deletion."""
    from provisioner.keys import service
    from provisioner.keys.store import StoreError

    if not project.platform.manages_keys:
        return project, KeyContext(None, {})
    try:
        store = service.store_of(project.platform)
        states = service.read(project, store, [institution] if institution else None)
    except StoreError as exc:
        print(f"provisioner: key store: {exc} (fix: check the store's credentials, or "
              f"{'MAILAUTH_KEYS_DIR'} for a local store)", file=sys.stderr)
        return None
    return service.attach(project, states), KeyContext(store, states)


@dataclass(frozen=True)
class KeyContext:
    """The key store and the states read from it (empty when the product owns no keys)."""

    store: Any
    states: Mapping[str, Any]


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
