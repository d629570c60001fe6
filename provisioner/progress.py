"""Progress of long steps, on stderr, for people at a terminal (see cli.style for when).

Engines call :func:`task` around their loops; it costs nothing until the CLI enables bars,
and rich is imported only once a bar is due (a step that ran :data:`DELAY` seconds).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _Quiet:
    def advance(self, n: int = 1) -> None:
        pass


_enabled = False
_force = False
DELAY = 1.0  # seconds before a bar appears: a short run shows none


def enable(on: bool, *, immediately: bool = False) -> None:
    """Turn progress bars on (the CLI, from ``cli.style.progress_wanted``)."""
    global _enabled, _force
    _enabled, _force = on, immediately


@contextmanager
def task(description: str, total: int) -> Iterator[Any]:
    """A step of ``total`` units; ``.advance()`` after each. Shown on stderr once it has run
    for :data:`DELAY` seconds (at once with ``--progress``), and removed when it ends."""
    if not _enabled or total <= 1:
        yield _Quiet()
        return
    from provisioner.escape import terminal

    bar = _Bar(terminal(description, newlines=False), total, 0.0 if _force else DELAY)
    try:
        yield bar
    finally:
        bar.close()


class _Bar:
    def __init__(self, description: str, total: int, delay: float) -> None:
        self.description, self.total, self.delay = description, total, delay
        self.started = time.monotonic()
        self.done = 0
        self._progress: Any = None
        self._task: Any = None

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._progress is None and time.monotonic() - self.started >= self.delay:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            console = Console(file=sys.__stderr__, force_terminal=True,
                              color_system=None if os.environ.get("NO_COLOR") else "standard")
            self._progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(),
                                      console=console, transient=not _force)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total)
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
