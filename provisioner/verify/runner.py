"""Running the checks: which names, which servers, in batched rounds, polled with ``--wait``.

Each domain's checks run once per authoritative server of its zone (every server is asked
directly: a cache could hide a wrong answer); names in other zones (SPF includes, DKIM keys,
report authorisations) go to the first server of their zone when it is known (the platform's
zones) or through the recursive resolver. A check that needs an answer not fetched yet raises
:class:`~provisioner.verify.view.Miss`; each round fetches all misses at once.
"""

from __future__ import annotations

import gc
import heapq
import logging
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

from provisioner import progress
from provisioner.dnsclient import Delegation, DnsClient, Query, Server, fqdn
from provisioner.model import Platform, Record, Role
from provisioner.verify.dkim import check_dkim
from provisioner.verify.dmarc import DmarcContext, check_dmarc, report_authorisations
from provisioner.verify.mx import check_return_path_mx, check_sender_mx
from provisioner.verify.platformzone import (
    check_dkim_key,
    check_domain_connect_key,
    check_platform_spf,
    check_report_authorisation,
)
from provisioner.verify.results import CheckResult, DomainReport, Report, Status, merge
from provisioner.verify.spfcheck import check_spf, includes
from provisioner.verify.view import Miss, View

log = logging.getLogger(__name__)
MAX_ROUNDS = 24  # deeper than any legal SPF tree (10 lookups) plus DKIM and DMARC chains
# Below this many domains per process, a worker costs more than it saves (a fork and the
# transfer of its reports take about 20 ms; 500 domains take about 140 ms).
MIN_PLANS_PER_JOB = 500
# A worker's share of a pass, against this process's 1: a worker also pickles its reports
# (0.13 s for 5,000 domains) and pays for the pages it touches after the fork (its share took
# 2.14 s where this process's equal share took 1.90 s, 10,000 domains on 2 CPUs, measured).
WORKER_SHARE = 0.87


def default_jobs() -> int:
    """Processes that check at once: the CPUs this process may run on, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


Check = Callable[[View], CheckResult]


@dataclass(frozen=True, slots=True)
class DomainPlan:
    """The checks of one sender domain, in report order; or of one institution's records in one
    platform zone (``domain`` is then the platform zone's name)."""

    institution: str | None
    domain: str
    zone: str  # fqdn; its servers are each asked every check
    checks: tuple[Check, ...]
    # What the checks ask when the zone is as declared: fetched before they first run, so a
    # healthy domain's checks run once instead of once per level of lookups.
    prefetch: tuple[tuple[str, str], ...] = ()
    # Where the plan comes in the report: (0 sender domain | 1 platform zone, the position of
    # its first record); plans made in several processes merge back into plan()'s own order.
    order: tuple[int, int] = (0, 0)


_ORDER = {Role.SPF: 0, Role.RETURN_PATH_SPF: 1, Role.DKIM: 2, Role.DMARC: 3,
          Role.RETURN_PATH_MX: 4,
          # Records in the platform's zones: from here on, planned per institution and zone.
          Role.PLATFORM_SPF: 5, Role.DKIM_KEY: 6, Role.DMARC_REPORT_AUTH: 7,
          Role.DOMAIN_CONNECT_KEY: 8}


def plan(records: Iterable[Record], platform: Platform,
         positions: Sequence[int] | None = None) -> list[DomainPlan]:
    """What to check for each domain that has records among ``records``, then for the records
    among them in the platform's zones: one plan per institution and platform zone (the
    platform's own SPF record has no institution), after every sender domain's.

    ``positions``: each record's place in the whole list, when ``records`` are one process's
    share of it (whole institutions); it sets the plans' ``order``.
    """
    records = tuple(records)
    published = frozenset(r.fqdn.rstrip(".") for r in records
                          if r.role is Role.DMARC_REPORT_AUTH)
    groups: dict[tuple[str | None, str], list[Record]] = {}
    in_platform_zones: dict[tuple[str | None, str], list[Record]] = {}
    first: dict[tuple[str | None, str], int] = {}
    for i, r in enumerate(records):
        rank = _ORDER.get(r.role)
        if rank is None:
            continue
        if rank >= _ORDER[Role.PLATFORM_SPF]:
            key, into = (r.institution, r.zone), in_platform_zones
        elif r.domain:
            key, into = (r.institution, r.domain), groups
        else:
            continue
        group = into.get(key)
        if group is None:
            group = into[key] = []
            first[key] = positions[i] if positions is not None else i
        group.append(r)
    plans = []
    for (institution, domain), group in groups.items():
        group.sort(key=lambda r: (_ORDER[r.role], r.name))
        return_path = next((r.fqdn.rstrip(".") for r in group
                            if r.role is Role.RETURN_PATH_MX), None)
        ctx = DmarcContext(domain, return_path, any(r.role is Role.DKIM for r in group),
                           published)
        checks: list[Check] = []
        prefetch: list[tuple[str, str]] = [(domain, "MX")]
        for r in group:
            if r.role in (Role.SPF, Role.RETURN_PATH_SPF):
                checks.append(partial(check_spf, record=r, platform=platform))
                prefetch += [(r.fqdn, "TXT"), *((i, "TXT") for i in includes(str(r.values[0])))]
            elif r.role is Role.DKIM:
                checks.append(partial(check_dkim, record=r, platform=platform))
                prefetch += [(r.fqdn, "TXT"), (str(r.values[0]), "TXT")]
            elif r.role is Role.DMARC:
                checks.append(partial(check_dmarc, name=r.fqdn.rstrip("."),
                                      expected_text=str(r.values[0]), ctx=ctx))
                prefetch += [(r.fqdn, "TXT"), *((a, "TXT") for a in
                                                report_authorisations(domain, str(r.values[0])))]
            else:
                checks.append(partial(check_return_path_mx, record=r))
                prefetch.append((r.fqdn, "MX"))
        checks.append(partial(check_sender_mx, domain=domain))
        plans.append(DomainPlan(institution, domain, group[0].zone, tuple(checks),
                                tuple(dict.fromkeys(prefetch)), (0, first[institution, domain])))
    for (institution, zone), group in in_platform_zones.items():
        group.sort(key=lambda r: (_ORDER[r.role], r.name))
        checks = []
        prefetch = []
        for r in group:
            prefetch.append((r.fqdn, "TXT"))
            if r.role is Role.DKIM_KEY:
                checks.append(partial(check_dkim_key, record=r))
            elif r.role is Role.DMARC_REPORT_AUTH:
                checks.append(partial(check_report_authorisation, record=r))
            elif r.role is Role.DOMAIN_CONNECT_KEY:
                checks.append(partial(check_domain_connect_key, record=r))
            else:
                checks.append(partial(check_platform_spf, record=r, platform=platform))
                prefetch += [(i, "TXT") for i in includes(str(r.values[0]))]
        plans.append(DomainPlan(institution, zone.rstrip("."), zone, tuple(checks),
                                tuple(dict.fromkeys(prefetch)), (1, first[institution, zone])))
    return plans


class _Router:
    """Which server answers a name, as seen from server ``index`` of the domain's zone."""

    def __init__(self, delegations: Mapping[str, Delegation],
                 fallback: tuple[Server, ...]) -> None:
        self.delegations = delegations
        self.fallback = fallback
        self._zone_of: dict[str, str | None] = {}

    def zone_of(self, name: str) -> str | None:
        zone = self._zone_of.get(name, "")
        if zone == "":
            zone = None
            suffix, dot = name, 0
            while dot >= 0 and suffix:  # name, then each parent ("a.b." -> "b."), no root
                if suffix in self.delegations:
                    zone = suffix
                    break
                dot = suffix.find(".")
                suffix = suffix[dot + 1 :]
            self._zone_of[name] = zone
        return zone

    def route(self, home: str, index: int, name: str) -> tuple[Server, ...] | str:
        """The home zone's ``index``-th server alone; for other zones, all of theirs in order
        (the next one is asked when one fails)."""
        zone = self.zone_of(name)
        if zone is None:
            return self.fallback or "unreachable"
        servers = self.delegations[zone].servers
        if not servers:
            return self.delegations[zone].status
        if zone == home and index < len(servers):
            return (servers[index],)
        return servers


Keyed = list[tuple[tuple[int, int], DomainReport]]  # reports with their place in the report


def run_plans(plans: list[DomainPlan], platform: Platform, client: DnsClient,
              jobs: int = 1) -> list[DomainReport]:
    """One pass of every check of every plan, against every authoritative server.

    With ``jobs`` > 1 and enough plans, the plans are shared between this process and
    ``jobs - 1`` forked workers (see :func:`_in_processes`).
    """
    delegations, router = _routing({p.zone for p in plans}, platform, client)
    workers = _workers(jobs, len(plans), MIN_PLANS_PER_JOB)
    if workers <= 1:
        return _run_here(plans, client, delegations, router)
    tasks = [partial(_run_keyed, [plans[i] for i in share], share, client, delegations, router)
             for share in _shares([p.institution for p in plans],
                                  [len(p.checks) for p in plans], workers)]
    return [r for _, r in sorted(_in_processes(tasks, client), key=lambda kr: kr[0])]


def _first_pass(records: tuple[Record, ...], platform: Platform, client: DnsClient,
                jobs: int) -> list[DomainReport]:
    """Plan and check ``records``: like ``run_plans(plan(records))``, but with several
    processes each plans its own share (whole institutions), so planning is shared too."""
    zones = {r.zone for r in records if r.role in _ORDER}
    delegations, router = _routing(zones, platform, client)
    domains = len({(r.institution, r.domain) for r in records if r.domain})
    workers = _workers(jobs, domains, MIN_PLANS_PER_JOB)
    if workers <= 1:
        return _run_here(plan(records, platform), client, delegations, router)
    tasks = [partial(_plan_and_run, share, records, platform, client, delegations, router)
             for share in _shares([r.institution for r in records], [1] * len(records),
                                  workers)]
    return [r for _, r in sorted(_in_processes(tasks, client), key=lambda kr: kr[0])]


def _routing(zones: Iterable[str], platform: Platform,
             client: DnsClient) -> tuple[Mapping[str, Delegation], _Router]:
    delegations = client.delegations({*zones, *(fqdn(z) for z in platform.platform_zones)})
    return delegations, _Router(delegations, client.recursive_servers())


def _workers(jobs: int, size: int, per_job: int) -> int:
    return min(jobs, size // per_job) if hasattr(os, "fork") else 1


def _plan_and_run(share: list[int], records: tuple[Record, ...], platform: Platform,
                  client: DnsClient, delegations: Mapping[str, Delegation],
                  router: _Router) -> Keyed:
    plans = plan([records[i] for i in share], platform, share)
    reports = _run_here(plans, client, delegations, router)
    return [(p.order, r) for p, r in zip(plans, reports, strict=True)]


def _run_keyed(plans: list[DomainPlan], indexes: list[int], client: DnsClient,
               delegations: Mapping[str, Delegation], router: _Router) -> Keyed:
    reports = _run_here(plans, client, delegations, router)
    return [((0, i), r) for i, r in zip(indexes, reports, strict=True)]


def _in_processes(tasks: Sequence[Callable[[], Keyed]], client: DnsClient) -> Keyed:
    """Run ``tasks[0]`` here and each other task in a forked worker; their reports together.

    Why processes: a pass is CPU-bound in this process (building and reading messages, running
    the checks) while the server has cycles to spare, and threads share one interpreter lock.
    Forked workers inherit the records, the delegations and the router, so only their reports
    travel back (pickled: about 20 µs a domain). Each worker opens its own sockets: a socket
    shared across processes would hand one's answers to the other. A worker that dies or fails
    leaves its task to this process, which runs it itself.
    """
    # The window of queries in flight per server is shared among the processes, so a server
    # sees no more at once than from one: a deeper queue overflows its socket buffer, and each
    # datagram lost costs a retransmission timeout.
    with client.engine.window_shared(len(tasks)):
        context = multiprocessing.get_context("fork")
        started = []
        for task in tasks[1:]:
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_worker, args=(sender, task, client), daemon=True)
            process.start()
            sender.close()
            started.append((process, receiver, task))
        keyed = tasks[0]()
        for process, receiver, task in started:
            try:
                outcome = pickle.loads(receiver.recv_bytes())
            except (EOFError, OSError, pickle.UnpicklingError):
                outcome = "the worker process ended without a result"
            finally:
                receiver.close()
                process.join()
            if isinstance(outcome, str):
                log.warning("a verify worker failed (%s); its share is checked here", outcome)
                keyed += task()
                continue
            part, sent, retransmits, asked = outcome
            client.absorb(sent, retransmits, asked)
            keyed += part
    return keyed


def _shares(owners: list[str | None], weights: list[int], workers: int) -> list[list[int]]:
    """Indexes for each process (this one first), an owner's items in one share (an
    institution's domains and platform records ask some of the same names, answered once
    from one process's cache). A worker's share weighs :data:`WORKER_SHARE` of this one's."""
    groups: dict[str | None, list[int]] = {}
    for i, owner in enumerate(owners):
        groups.setdefault(owner, []).append(i)
    speed = [1.0] + [WORKER_SHARE] * (workers - 1)
    loads = [(0.0, w) for w in range(workers)]
    shares: list[list[int]] = [[] for _ in range(workers)]
    for indexes in groups.values():
        load, w = heapq.heappop(loads)
        shares[w] += indexes
        heapq.heappush(loads, (load + sum(weights[i] for i in indexes) / speed[w], w))
    return [sorted(share) for share in shares if share]


def _worker(sender: Connection, task: Callable[[], Keyed], client: DnsClient) -> None:
    """A forked worker's whole life: its task, then its reports to the parent."""
    client.after_fork()
    try:
        outcome: object = (task(), client.queries_sent, client.retransmits,
                           client.asked_plain())
    except Exception as exc:  # reported to the parent, which runs the task itself
        outcome = f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    sender.send_bytes(pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
    sender.close()


def _run_here(plans: list[DomainPlan], client: DnsClient, delegations: Mapping[str, Delegation],
              router: _Router) -> list[DomainReport]:
    """The plans' checks in this process: prefetch, then rounds of checks and their misses."""
    tasks: list[tuple[int, int, str, View, Check]] = []
    prefetch: list[Query] = []
    for pi, p in enumerate(plans):
        servers = delegations[p.zone].servers
        labels = [str(s) for s in servers] or [f"no servers ({delegations[p.zone].status})"]
        for index, label in enumerate(labels):
            view = View(label, partial(router.route, p.zone, index), client.cached)
            tasks.extend((pi, ci, label, view, check) for ci, check in enumerate(p.checks))
            prefetch += [q for name, rdtype in p.prefetch
                         if (q := view.first_query(name, rdtype)) is not None]
    client.lookup_many(prefetch)
    results: dict[tuple[int, int], list[tuple[str, CheckResult]]] = {}
    for _ in range(MAX_ROUNDS):
        misses = set()
        pending = []
        for task in tasks:
            pi, ci, label, view, check = task
            try:
                results.setdefault((pi, ci), []).append((label, check(view)))
            except Miss as miss:
                misses.add(miss.query)
                pending.append(task)
        tasks = pending
        if not tasks:
            break
        client.lookup_many(misses)
    for pi, ci, label, _view, _check in tasks:
        results.setdefault((pi, ci), []).append((label, CheckResult(
            "dns", plans[pi].domain, Status.TEMPORARY_FAILURE, "too-deep",
            f"more than {MAX_ROUNDS} dependent lookups")))
    return [DomainReport(p.institution, p.domain,
                         tuple(merge(results[(pi, ci)]) for ci in range(len(p.checks))))
            for pi, p in enumerate(plans)]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one pass, restoring its state after.

    A pass allocates millions of small tuples, answers and results, nearly all freed by
    reference counting, while the live heap grows with the domains. Each full collection walks
    that heap, so automatic collection cost about 40 % of a 10,000-domain pass (3.8 s instead
    of 6.4 s without it, measured).

    Re-enabling alone would only defer the cost: the first allocation after it collects the
    youngest generation, which then holds every object the pass made (0.3-0.47 s after a
    10,000-domain pass, measured with ``gc.callbacks``). So the objects that survive the pass
    (the answers, the reports) are moved to the permanent generation (``gc.freeze``) and are
    never walked again; they are still freed by reference counting. A pass makes no reference
    cycles (``tests/test_verify_live.py`` checks it), so nothing is kept that would have been
    collected.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()


def verify_records(
    records: Iterable[Record],
    platform: Platform,
    *,
    nameservers: Iterable[Server] = (),
    wait: float = 0.0,
    timeout: float = 1.0,
    attempts: int = 3,
    client: DnsClient | None = None,
    sleep: Callable[[float], None] = time.sleep,
    jobs: int | None = None,
) -> Report:
    """Check ``records`` (an expansion, or the part apply changed) on the live DNS.

    With ``wait`` > 0, domains not all successful are checked again with backoff (1 s, 2 s,
    4 s... at most 30 s apart) until they succeed or ``wait`` seconds have passed.
    ``jobs``: processes that check at once (default :func:`default_jobs`; 1 never forks).
    """
    started = time.monotonic()
    jobs = default_jobs() if jobs is None else max(1, jobs)
    own = client is None
    dns = client or DnsClient(nameservers=tuple(nameservers), timeout=timeout, attempts=attempts)
    records = tuple(records)
    try:
        sent = dns.queries_sent
        with _collector_paused():
            reports = _first_pass(records, platform, dns, jobs)
        deadline = started + wait
        waiting = progress.task("domains verified", len(reports)) if wait else nullcontext()
        with waiting as bar:
            reports = _wait(records, platform, dns, jobs, reports, deadline, bar, sleep)
        return Report(tuple(reports), dns.queries_sent - sent, time.monotonic() - started)
    finally:
        if own:
            dns.close()


def _wait(records: tuple[Record, ...], platform: Platform, dns: DnsClient, jobs: int,
          reports: list[DomainReport], deadline: float, bar: Any,
          sleep: Callable[[float], None]) -> list[DomainReport]:
    """Check again what is not verified yet, with backoff, until it is or ``deadline``."""
    plans: list[DomainPlan] = []
    delay = 1.0
    if bar is not None:
        bar.advance(sum(r.ok for r in reports))
    while not all(r.ok for r in reports) and time.monotonic() + delay <= deadline:
        log.info("%d domain(s) not verified yet; again in %.0f s",
                 sum(not r.ok for r in reports), delay)
        sleep(delay)
        delay = min(delay * 2, 30.0)
        dns.clear_cache()
        again = [i for i, r in enumerate(reports) if not r.ok]
        with _collector_paused():
            plans = plans or plan(records, platform)  # in report order
            fresh = run_plans([plans[i] for i in again], platform, dns, jobs)
        for i, r in zip(again, fresh, strict=True):
            reports[i] = r
        if bar is not None:
            bar.advance(sum(r.ok for r in fresh))
    return reports


def only_domains(report: Report, domains: Iterable[str]) -> Report:
    keep = set(domains)
    return replace(report, domains=tuple(d for d in report.domains if d.domain in keep))
