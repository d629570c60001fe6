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
import logging
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

DEFAULT_RATE = 5.0  # requests per second per account (Route53's documented limit)

log = logging.getLogger(__name__)
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
    if _lookups_by_name(provider):
        client.meta.events.register(f"after-call.{service}.ListHostedZones",
                                    _listing_fills_lookups(provider))


def _lookups_by_name(provider: Any) -> bool:
    """Whether the provider looks zones up by name, so that a listing can fill its lookups
    (a VPC-filtered provider lists by VPC, and its listing is not the lookup's)."""
    return bool(getattr(provider, "get_zones_by_name", False)) and \
        getattr(provider, "vpc_id", None) is None


def _listing_fills_lookups(provider: Any) -> Any:
    """A zone listing (a full plan lists the account to find removed institutions' zones,
    100 zones a page) already names every zone's Id: kept in octodns-route53's cache, each
    zone's ``ListHostedZonesByName`` is not sent again (a full plan of 10,000 zones: 10,100
    requests, not 20,100). The listing's filters are the lookup's: ``private:``; a name listed
    twice (a public and a private zone) is left to the lookup, which refuses it as octoDNS
    does; a zone the listing did not show (outside ``delegation_set_id``) is looked up."""
    from octodns_route53.provider import _octal_replace

    seen: dict[str, str] = {}
    twice: set[str] = set()

    def after_call(parsed: Any = None, **kwargs: Any) -> None:
        cache = provider._r53_zones
        if not isinstance(parsed, dict) or cache is None:
            return
        for zone in parsed.get("HostedZones") or ():
            private = (zone.get("Config") or {}).get("PrivateZone", False)
            if provider.private is not None and provider.private != private:
                continue
            name, zone_id = _octal_replace(zone.get("Name", "")), zone.get("Id")
            if not name or not zone_id:
                continue
            if seen.setdefault(name, zone_id) != zone_id:
                twice.add(name)
        with _lock:
            for name, zone_id in seen.items():
                if name in twice:
                    cache.pop(name, None)
                else:
                    cache.setdefault(name, zone_id)

    return after_call


PREFETCH_AT = 100  # zones to read from one Route53 target: one listing page names 100


def prefetch(provider: Any, zones: list[str]) -> int:
    """Before reading ``zones`` (names with the final dot) from a Route53 target, list the
    account's zones, when that costs fewer requests than looking each up by name: at least
    :data:`PREFETCH_AT` zones not known yet, and the listing stopped as soon as its pages
    reach the lookups still needed (an account far larger than the run never costs more than
    twice the lookups). The pages fill the lookups (:func:`_listing_fills_lookups`); a zone
    they did not name is looked up as before. Returns the pages read; a refused listing
    (a role without ``route53:ListHostedZones``) is logged and costs one request."""
    cache = getattr(provider, "_r53_zones", None)
    client = getattr(provider, "_conn", None)
    if cache is None or client is None or not _lookups_by_name(provider):
        return 0
    wanted = {z for z in zones if z not in cache}
    if len(wanted) < PREFETCH_AT:
        return 0
    params: dict[str, str] = {}
    if getattr(provider, "delegation_set_id", None):
        params["DelegationSetId"] = provider.delegation_set_id
    pages = 0
    try:
        while True:
            response = client.list_hosted_zones(**params)
            pages += 1
            missing = sum(1 for z in wanted if z not in cache)
            if not missing or not response.get("IsTruncated") or pages >= missing:
                return pages
            params["Marker"] = response["NextMarker"]
    except Exception as exc:  # the lookups by name still work
        log.info("listing the zones of %s first: %s", getattr(provider, "id", "route53"), exc)
        return pages


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
