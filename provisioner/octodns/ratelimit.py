"""Route53 within its limit: 5 API requests per second per AWS account (DESIGN §12).

octodns-route53 does no throttling of its own, and botocore's adaptive retries only slow down
after Route53 has refused. So every Route53 client the product builds sends each HTTP request
(retries included) through one token bucket per account, shared by every thread of the run and
by every process on the machine (a small state file under an ``flock``: parallel plan workers,
a drift job's shards on one runner). GitLab's ``parallel:`` shards run on different machines:
each takes ``1/CI_NODE_TOTAL`` of the account's rate. Each request is also counted by operation,
and the counts are reported at the end of the run (:func:`report`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

DEFAULT_RATE = 5.0  # requests per second per account (Route53's documented limit)

_lock = threading.Lock()
CALLS: Counter[tuple[str, str]] = Counter()  # (target, operation) -> HTTP requests sent


def rate_for(configured: Any = None) -> float:
    """The rate this process may use: the target's ``requests_per_second`` (default 5) split
    between the pipeline's parallel shards."""
    rate = float(configured) if configured else DEFAULT_RATE
    try:
        shards = max(1, int(os.environ.get("CI_NODE_TOTAL", "1")))
    except ValueError:
        shards = 1
    return rate / shards


@functools.cache
def _state_dir() -> Path:
    """A directory of this user's alone: in a shared /tmp, one made by someone else (or a
    link) would let them truncate or steer our files, so it is refused and a private one made
    instead."""
    import stat

    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    path = Path(base) / f"mailauth-provisioner-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or \
            info.st_uid != os.getuid() or info.st_mode & 0o077:
        return Path(tempfile.mkdtemp(prefix="mailauth-provisioner-"))
    return path


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved; shared through ``path`` by every
    process that opens the same one."""

    def __init__(self, path: Path, rate: float, burst: float | None = None) -> None:
        self.path = path
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)

    def acquire(self) -> float:
        """Take one token, sleeping until there is one; returns the seconds waited."""
        waited = 0.0
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                         0o600)
            with _lock, os.fdopen(fd, "r+") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                handle.seek(0)
                try:
                    state = json.loads(handle.read() or "{}")
                    saved = float(state["tokens"]) if isinstance(state, dict) else self.burst
                    at = float(state["at"]) if isinstance(state, dict) else time.time()
                except (ValueError, KeyError, TypeError):
                    saved, at = self.burst, time.time()
                now = time.time()
                # a clock stepped back (or a stamp from the future) never means a long wait
                elapsed = max(0.0, now - at)
                tokens = max(0.0, min(self.burst, saved + elapsed * self.rate))
                if tokens >= 1.0:
                    tokens -= 1.0
                    pause = 0.0
                else:
                    pause = (1.0 - tokens) / self.rate
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps({"tokens": tokens, "at": now}))
                handle.flush()
            if pause == 0.0:
                return waited
            time.sleep(pause)
            waited += pause


def bucket_for(client: Any, rate: float) -> TokenBucket:
    """The account's bucket: keyed by the credentials' access key (a hash of it; one account
    per key), so two targets on one account share it."""
    key = "default"
    try:
        credentials = client._request_signer._credentials  # botocore's, set at creation
        access = credentials.get_frozen_credentials().access_key if credentials else None
        if access:
            key = hashlib.sha256(access.encode()).hexdigest()[:16]
    except Exception:
        pass
    return TokenBucket(_state_dir() / f"route53-{key}.bucket", rate)


def instrument(provider: Any, target_name: str, configured_rate: Any = None) -> None:
    """Rate-limit and count every request of ``provider``'s Route53 client (retries too:
    ``before-send`` fires for each HTTP attempt, its event name ending in the operation)."""
    client = getattr(provider, "_conn", None)
    if client is None or getattr(client, "_mailauth_limited", False):
        return
    bucket = bucket_for(client, rate_for(configured_rate))
    service = client.meta.service_model.service_id.hyphenize()

    def before_send(event_name: str = "", **kwargs: Any) -> None:
        bucket.acquire()
        operation = event_name.rsplit(".", 1)[-1] or "request"
        with _lock:
            CALLS[(target_name, operation)] += 1

    client.meta.events.register(f"before-send.{service}", before_send)
    client._mailauth_limited = True
    if getattr(provider, "get_zones_by_name", False) and provider._r53_zones is None:
        # octodns-route53 starts its zone cache as None and replaces it whole on the first
        # lookup: plan's worker threads, each seeing None, each put a one-zone dict there and
        # lose the others' (measured: 40 lookups for 7 zones). Starting it empty makes every
        # lookup add to one dict.
        provider._r53_zones = {}


def report() -> dict[str, dict[str, int]]:
    """{target: {operation: requests}} of this run so far."""
    out: dict[str, dict[str, int]] = {}
    with _lock:
        for (target, operation), count in sorted(CALLS.items()):
            out.setdefault(target, {})[operation] = count
    return out


def summary() -> str | None:
    """One line for the end of a run, or None when no Route53 request was made."""
    calls = report()
    if not calls:
        return None
    parts = []
    for target, ops in calls.items():
        total = sum(ops.values())
        detail = ", ".join(f"{op} {n}" for op, n in sorted(ops.items(), key=lambda x: -x[1]))
        parts.append(f"{target}: {total} ({detail})")
    return "route53 API requests: " + "; ".join(parts)
