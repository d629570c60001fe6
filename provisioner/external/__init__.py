"""Institutions that run their own DNS (DESIGN §10): live-aware, host-aware instructions.

:func:`build` reads each external domain's zone on its authoritative servers, recognises the
DNS host, computes the steps (:mod:`.advice`), evaluates the merged SPF on live DNS, and asks
the verifier for each record's status; :mod:`.render` writes the result as markdown, a
printable HTML page, a BIND snippet or JSON, in the administrator's language (:mod:`.i18n`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from provisioner.dnsclient import DnsClient, Server
from provisioner.expand import report_destinations
from provisioner.external.advice import Action, DomainAdvice, SpfProbe, Step, advise
from provisioner.external.hosts import recognise
from provisioner.external.live import LiveResolver, LiveZone, read_zone
from provisioner.model import Institution, Platform, Record, Role, is_within

_CHECK_OF = {Role.SPF: "spf", Role.RETURN_PATH_SPF: "spf", Role.DKIM: "dkim",
             Role.DMARC: "dmarc", Role.RETURN_PATH_MX: "mx"}
_STATUS = {"success": "done", "pending": "to do", "failed": "wrong",
           "temporary_failure": "unknown"}


@dataclass(frozen=True)
class InstitutionAdvice:
    code: str
    name: str
    platform: str
    domains: tuple[DomainAdvice, ...]
    report_authorisations: tuple[tuple[str, str], ...]  # (domain, destination host)
    checked: bool  # statuses come from the verifier

    @property
    def external(self) -> tuple[DomainAdvice, ...]:
        return tuple(d for d in self.domains if not d.managed)

    @property
    def finished(self) -> bool | None:
        """True when every record is live and right, None when not checked."""
        if not self.checked:
            return None
        return all(s.status == "done" for d in self.external for s in d.steps
                   if s.action is not Action.REMOVE)

    @property
    def unknown(self) -> bool:
        return any(s.status == "unknown" for d in self.external for s in d.steps)


def build(platform: Platform, institution: Institution, records: Sequence[Record], *,
          nameservers: Sequence[Server] = (), timeout: float = 1.0,
          live: bool = True) -> InstitutionAdvice:
    mine = [r for r in records if r.institution == institution.code]
    domains: list[DomainAdvice] = []
    client = DnsClient(nameservers=tuple(nameservers), timeout=timeout) if live else None
    try:
        for dom in institution.domains:
            own = [r for r in mine if r.domain == dom.name and r.zone == dom.zone + "."]
            if dom.target is not None:
                domains.append(DomainAdvice(dom.name, dom.zone, True))
                continue
            zone: LiveZone | None = None
            probe = None
            if client is not None:
                zone = read_zone(client, dom.zone, [r.fqdn for r in own])
                probe = _spf_probe(client, zone, platform)
            host = recognise(zone.ns if zone else ())
            domains.append(advise(dom.name, dom.zone, own, zone, host, platform.spf_include,
                                  probe))
    finally:
        if client is not None:
            client.close()
    checked = False
    if live and any(not d.managed for d in domains):
        domains = _with_status(domains, platform, mine, nameservers, timeout)
        checked = True
    pairs: list[tuple[str, str]] = []
    for dom in institution.domains:
        if dom.target is not None:
            continue
        for dest in report_destinations(dom.dmarc, platform.dmarc_rua):
            if not is_within(dest, dom.name) and platform.platform_zone_of(dest) is None:
                pairs.append((dom.name, dest))
    return InstitutionAdvice(institution.code, institution.name, platform.name, tuple(domains),
                             tuple(pairs), checked)


def _spf_probe(client: DnsClient, zone: LiveZone, platform: Platform) -> SpfProbe:
    from provisioner.spf.evaluate import check_host

    ip = platform.sending_ips[0] if platform.sending_ips else "192.0.2.1"

    def probe(fqdn: str, value: str) -> tuple[int, str, str] | None:
        if zone.problem:
            return None
        resolver = LiveResolver(client, zone, {fqdn: [value]})
        name = fqdn.rstrip(".")
        result = check_host(ip, name, f"postmaster@{name}", resolver=resolver)
        return result.lookups, result.result, result.reason

    return probe


def _with_status(domains: list[DomainAdvice], platform: Platform, records: list[Record],
                 nameservers: Sequence[Server], timeout: float) -> list[DomainAdvice]:
    """Each step's status from the verifier (the same checks as ``verify``)."""
    from provisioner.verify import verify_records

    external = tuple(r for r in records if not r.managed)
    report = verify_records(external, platform, nameservers=nameservers, timeout=timeout,
                            jobs=1)
    by_name = {(c.check, c.name): c for d in report.domains for c in d.checks}
    out = []
    for dom in domains:
        if dom.managed:
            out.append(dom)
            continue
        steps: list[Step] = []
        for step in dom.steps:
            check = by_name.get((_CHECK_OF.get(step.role, ""), step.fqdn.rstrip(".")))
            if check is None or step.action is Action.REMOVE:
                steps.append(step)
                continue
            status = _STATUS.get(check.status.value, "unknown")
            found = check.found if status != "done" else ()
            steps.append(replace(step, status=status, found=found))
        out.append(replace(dom, steps=tuple(steps)))
    return out


__all__ = ["Action", "DomainAdvice", "InstitutionAdvice", "Step", "build"]
