"""A fuzz case that hangs fails by name, instead of stalling the run (issue 10).

hypothesis's ``deadline`` only judges a case once it returns; a reader stuck in a loop never
returns. :func:`no_hang` arms SIGALRM (tests run in each worker's main thread) and turns a
case that outlives ``seconds`` into an :class:`AssertionError` naming the input.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def no_hang(seconds: float, what: Any) -> Iterator[None]:
    def expired(signum: int, frame: Any) -> None:
        raise AssertionError(f"hung for more than {seconds} s on {what!r:.200}")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
