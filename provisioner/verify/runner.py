"""Running the checks: which names, which servers, in batched rounds, polled with ``--wait``.

Each domain's checks run once per authoritative server of its zone (every server is asked
directly: a cache could hide a wrong answer); names in other zones (SPF includes, DKIM keys,
report authorisations) go to the first server of their zone when it is known (the platform's
zones) or through the recursive resolver. A check that needs an answer not fetched yet raises
:class:`~provisioner.verify.view.Miss`; each round fetches all misses at once.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial

from provisioner.dnsclient import Delegation, DnsClient, Query, Server, fqdn
from provisioner.model import Platform, Record, Role
from provisioner.verify.dkim import check_dkim
from provisioner.verify.dmarc import DmarcContext, check_dmarc, report_authorisations
from provisioner.verify.mx import check_return_path_mx, check_sender_mx
from provisioner.verify.platformzone import (
    check_dkim_key,
    check_platform_spf,
    check_report_authorisation,
)
from provisioner.verify.results import CheckResult, DomainReport, Report, Status, merge
from provisioner.verify.spfcheck import check_spf, includes
from provisioner.verify.view import Miss, View

log = logging.getLogger(__name__)
MAX_ROUNDS = 24  # deeper than any legal SPF tree (10 lookups) plus DKIM and DMARC chains

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


_ORDER = {Role.SPF: 0, Role.RETURN_PATH_SPF: 1, Role.DKIM: 2, Role.DMARC: 3,
          Role.RETURN_PATH_MX: 4,
          # Records in the platform's zones: from here on, planned per institution and zone.
          Role.PLATFORM_SPF: 5, Role.DKIM_KEY: 6, Role.DMARC_REPORT_AUTH: 7}


def plan(records: Iterable[Record], platform: Platform) -> list[DomainPlan]:
    """What to check for each domain that has records among ``records``, then for the records
    among them in the platform's zones: one plan per institution and platform zone (the
    platform's own SPF record has no institution), after every sender domain's."""
    records = tuple(records)
    published = frozenset(r.fqdn.rstrip(".") for r in records
                          if r.role is Role.DMARC_REPORT_AUTH)
    groups: dict[tuple[str | None, str], list[Record]] = {}
    in_platform_zones: dict[tuple[str | None, str], list[Record]] = {}
    for r in records:
        rank = _ORDER.get(r.role)
        if rank is None:
            continue
        if rank >= _ORDER[Role.PLATFORM_SPF]:
            in_platform_zones.setdefault((r.institution, r.zone), []).append(r)
        elif r.domain:
            groups.setdefault((r.institution, r.domain), []).append(r)
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
                                tuple(dict.fromkeys(prefetch))))
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
            else:
                checks.append(partial(check_platform_spf, record=r, platform=platform))
                prefetch += [(i, "TXT") for i in includes(str(r.values[0]))]
        plans.append(DomainPlan(institution, zone.rstrip("."), zone, tuple(checks),
                                tuple(dict.fromkeys(prefetch))))
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


def run_plans(plans: list[DomainPlan], platform: Platform, client: DnsClient) -> list[DomainReport]:
    """One pass of every check of every plan, against every authoritative server."""
    zones = {p.zone for p in plans} | {fqdn(z) for z in platform.platform_zones}
    delegations = client.delegations(zones)
    router = _Router(delegations, client.recursive_servers())
    return _run_here(plans, client, delegations, router)


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
) -> Report:
    """Check ``records`` (an expansion, or the part apply changed) on the live DNS.

    With ``wait`` > 0, domains not all successful are checked again with backoff (1 s, 2 s,
    4 s... at most 30 s apart) until they succeed or ``wait`` seconds have passed.
    """
    started = time.monotonic()
    own = client is None
    dns = client or DnsClient(nameservers=tuple(nameservers), timeout=timeout, attempts=attempts)
    try:
        sent = dns.queries_sent
        with _collector_paused():
            plans = plan(records, platform)
            reports = run_plans(plans, platform, dns)
        delay = 1.0
        deadline = started + wait
        while not all(r.ok for r in reports) and time.monotonic() + delay <= deadline:
            log.info("%d domain(s) not verified yet; again in %.0f s",
                     sum(not r.ok for r in reports), delay)
            sleep(delay)
            delay = min(delay * 2, 30.0)
            dns.clear_cache()
            again = [i for i, r in enumerate(reports) if not r.ok]
            with _collector_paused():
                fresh = run_plans([plans[i] for i in again], platform, dns)
            for i, r in zip(again, fresh, strict=True):
                reports[i] = r
        return Report(tuple(reports), dns.queries_sent - sent, time.monotonic() - started)
    finally:
        if own:
            dns.close()


def only_domains(report: Report, domains: Iterable[str]) -> Report:
    keep = set(domains)
    return replace(report, domains=tuple(d for d in report.domains if d.domain in keep))
