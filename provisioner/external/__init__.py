"""Institutions that run their own DNS (DESIGN §10): live-aware, host-aware instructions.

:func:`build` reads each external domain's zone on its authoritative servers, recognises the
DNS host, computes the steps (:mod:`.advice`), evaluates the merged SPF on live DNS, and asks
the verifier for each record's status; :mod:`.render` writes the result as markdown, a
printable HTML page, a BIND snippet or JSON, in the administrator's language (:mod:`.i18n`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from provisioner.dnsclient import DnsClient, Server
from provisioner.expand import report_destinations
from provisioner.external.advice import (
    Action,
    DomainAdvice,
    OneClick,
    SpfProbe,
    Step,
    advise,
)
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
          live: bool = True, signing_key: bytes | None = None) -> InstitutionAdvice:
    """``signing_key``: the Domain Connect private key (PEM) from the key store; without it
    (or without ``domain_connect`` in provisioner.yaml) no link is offered."""
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
            advice = advise(dom.name, dom.zone, own, zone, host, platform.spf_include, probe)
            if client is not None and zone is not None and not zone.problem and \
                    platform.domain_connect is not None:
                advice = replace(advice, one_click=_one_click(
                    client, platform, institution, dom, own, zone, host, probe, signing_key))
            domains.append(advice)
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


_GROUP_OF = {Role.DKIM: "dkim", Role.SPF: "spf", Role.RETURN_PATH_MX: "returnpath",
             Role.RETURN_PATH_SPF: "returnpath", Role.DMARC: "dmarc"}


def _one_click(client: DnsClient, platform: Platform, institution: Institution, dom: Any,
               own: list[Record], zone: LiveZone, host: Any, probe: SpfProbe | None,
               signing_key: bytes | None) -> OneClick:
    """Discover the host's support, simulate the apply on the zone as it is, and sign the link
    for the groups whose result the product's own checks find right."""
    from provisioner import domainconnect
    from provisioner.domainconnect import discover, sign, simulate

    dc = platform.domain_connect
    assert dc is not None
    found = discover.support(client, zone.zone, zone.servers, dc.provider_id, dc.service_id)
    if not found.supported or found.url_sync_ux is None:
        return OneClick(found.provider_name, None, reason=found.reason)
    wanted = ["dkim", "spf", "returnpath", "dmarc"]
    if not dom.dkim:
        wanted.remove("dkim")
    left: dict[str, str] = {}
    if dom.return_path != dc.return_path:
        wanted.remove("returnpath")
        if dom.return_path:
            left["returnpath"] = (f"the template publishes the return path {dc.return_path}, "
                                  f"the declaration {dom.return_path}")
    rel = dom.relative_name
    params = {"domain": zone.zone.rstrip("."), **({"host": rel} if rel else {}),
              "code": institution.code, "dmarc_policy": dom.dmarc.policy,
              "dmarc_rua": "".join(f"{u}," for u in dom.dmarc.rua)}
    variables = {k: v for k, v in params.items() if k not in ("domain", "host")}
    template = domainconnect.template(platform)
    final, error = simulate.apply(template, zone, zone.zone, rel, variables, wanted)
    if error:
        return OneClick(found.provider_name, None, reason=f"simulated apply failed: {error}")
    after = advise(dom.name, dom.zone, own, simulate.live_after(zone, final), host,
                   platform.spf_include, probe)
    for step in after.steps:
        group = _GROUP_OF.get(step.role)
        if group in wanted and (step.action is not Action.KEEP or
                                any(n.warning for n in step.notes)):
            wanted.remove(group)
            now = " | ".join(step.current) or "nothing"
            left[group] = (f"after the simulated apply, {step.fqdn.rstrip('.')} {step.type} "
                           f"would hold {now}, where {step.display_value} is needed")
            warned = next((n for n in step.notes if n.warning), None)
            if warned is not None and step.action is Action.KEEP:
                left[group] = "after the simulated apply: " + warned.text(lambda m: m)
    weaker = _weakened_dmarc(zone, simulate.live_after(zone, final), dom.name)
    if weaker and "dmarc" in wanted:
        wanted.remove("dmarc")
        left["dmarc"] = weaker
    if not wanted:
        return OneClick(found.provider_name, None, (), tuple(left.items()),
                        "no group applies cleanly")
    if signing_key is None or not dc.public_key or \
            sign.public_base64(signing_key) != dc.public_key:
        return OneClick(found.provider_name, None, tuple(wanted), tuple(left.items()),
                        "the signing key is not in the key store, or is not the published one")
    link_params = {**params, "groupId": ",".join(wanted)}
    url = sign.apply_url(found.url_sync_ux, dc.provider_id, dc.service_id, link_params,
                         signing_key, dc.key_host)
    return OneClick(found.provider_name, url, tuple(wanted), tuple(left.items()), "supported")


def _weakened_dmarc(before: LiveZone, after: LiveZone, domain: str) -> str | None:
    """Why the apply would weaken the live DMARC policy (never done), or None."""
    from provisioner.verify.dmarc import is_dmarc, parse_dmarc

    strength = {"none": 0, "quarantine": 1, "reject": 2}
    name = f"_dmarc.{domain}"

    def policy(zone: LiveZone) -> dict[str, str]:
        for text in zone.at(name).txt:
            if is_dmarc(text):
                try:
                    return {k: v.lower() for k, v in parse_dmarc(text).items()}
                except ValueError:
                    return {}
        return {}

    old, new = policy(before), policy(after)
    # The template's All mode replaces the record: any live tag it does not write is lost
    # (sp, np, alignment, ruf, fo...), and losing one may weaken the record.
    lost = sorted(set(old) - set(new) - {"pct", "rf", "ri"})
    if lost:
        return (f"the apply would replace the live DMARC record and drop its "
                f"{', '.join(t + '=' for t in lost)}")
    kept = {u.strip().lower() for u in new.get("rua", "").split(",")}
    dropped = [u.strip() for u in old.get("rua", "").split(",")
               if u.strip() and u.strip().lower() not in kept]
    if dropped:
        return (f"the apply would drop the report address {', '.join(dropped)} from the live "
                "DMARC record")
    for tag in ("p", "sp"):
        if tag in old and strength.get(new.get(tag, new.get("p", "none")), 0) < \
                strength.get(old[tag], 0):
            return (f"the apply would replace the live {tag}={old[tag]} with "
                    f"{tag}={new.get(tag, new.get('p', 'none'))}: a DMARC policy is never "
                    "weakened")
    return None


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


def with_ramp(advice: InstitutionAdvice, recommendations: Sequence[Any]) -> InstitutionAdvice:
    """The instructions with the DMARC policy ramp's word for each domain that has reports
    (:mod:`provisioner.dmarcreports`): ready for the next rung, or what it waits for."""
    from provisioner.external.advice import note
    from provisioner.external.i18n import N_

    by_domain = {r.domain: r for r in recommendations}
    domains = []
    for dom in advice.domains:
        rec = by_domain.get(dom.domain)
        if rec is None or rec.next is None:
            domains.append(dom)
            continue
        if rec.recommended:
            extra = note(N_("The DMARC reports show {domain} ready for the next policy step, "
                            "{rung}: the platform will send you the new DMARC record to "
                            "publish once its team has approved the change."),
                         domain=dom.domain, rung=rec.next)
        else:
            extra = note(N_("DMARC policy: {domain} stays at {rung} for now; the next step "
                            "waits for: {checks}."), domain=dom.domain, rung=rec.current,
                         checks=", ".join(c.name for c in rec.blocking))
        domains.append(replace(dom, notes=(*dom.notes, extra)))
    return replace(advice, domains=tuple(domains))
