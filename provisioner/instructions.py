"""Exact steps for an institution's DNS administrator, from its expanded records (pure).

For ``dns: external`` domains the product writes nothing: the administrator publishes the
records by hand, so the text says exactly what to type in a DNS host's form (host, type, value,
TTL) and warns about the mistakes seen most often: a second SPF record, the zone name typed twice
in the host field, quotes typed into the value, a missing trailing dot on CNAME targets.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass

from provisioner.escape import md_text
from provisioner.expand import report_destinations
from provisioner.model import Institution, MxValue, Platform, Record, Role, is_within
from provisioner.names import to_unicode
from provisioner.presentation import zone_file_lines

_PURPOSE = {
    Role.SPF: "SPF: authorises the platform's servers to send for the domain",
    Role.DKIM: "DKIM: points to the platform's signing key (two selectors, so keys can rotate)",
    Role.DMARC: "DMARC: the policy receivers apply (required above 5,000 mails a day)",
    Role.RETURN_PATH_MX: "Return path MX: bounces reach the platform",
    Role.RETURN_PATH_SPF: "Return path SPF: the envelope sender passes SPF",
}


@dataclass(frozen=True, slots=True)
class Row:
    host: str  # relative to the zone, "@" at the apex
    fqdn: str
    type: str
    value: str
    ttl: int
    purpose: str
    role: Role


@dataclass(frozen=True, slots=True)
class DomainSteps:
    domain: str
    zone: str
    managed: bool
    rows: tuple[Row, ...]


def steps(
    platform: Platform, institution: Institution, records: tuple[Record, ...]
) -> tuple[DomainSteps, ...]:
    """The rows each domain of ``institution`` needs in its own zone (platform records omitted)."""
    result: list[DomainSteps] = []
    for dom in institution.domains:
        rows = tuple(
            Row(r.name or "@", r.fqdn, r.type, _value(v), r.ttl, _PURPOSE.get(r.role, ""), r.role)
            for r in records
            if r.domain == dom.name
            and r.institution == institution.code
            and r.zone == dom.zone + "."
            for v in r.values
        )
        result.append(DomainSteps(dom.name, dom.zone, dom.target is not None, rows))
    return tuple(result)


def external_report_destinations(
    platform: Platform, institution: Institution
) -> list[tuple[str, str]]:
    """(domain, destination host) pairs whose authorisation only the destination can publish."""
    pairs = []
    for dom in institution.domains:
        for host in report_destinations(dom.dmarc, platform.dmarc_rua):
            if is_within(host, dom.name) or platform.platform_zone_of(host) is not None:
                continue
            pairs.append((dom.name, host))
    return pairs


def _value(value: str | MxValue) -> str:
    return str(value)


def _cautions(platform: Platform) -> list[str]:
    return [
        "A domain has **one** SPF record. If a TXT record starting with `v=spf1` already exists at "
        f"the name, do not add a second one: add `include:{platform.spf_include}` to it, before "
        "its `~all` or `-all`.",
        "Type the *Host* exactly as shown. Most DNS hosts add the zone name themselves: typing "
        "`stxsel1._domainkey.example.com` creates `stxsel1._domainkey.example.com.example.com`.",
        "Type values without quotes; long values stay on one line (the DNS host splits them).",
        "CNAME and MX targets end with a dot when your DNS host accepts fully qualified names.",
        "A CNAME cannot stand beside other records at the same host: remove any TXT record at "
        "`stxsel1._domainkey` or `stxsel2._domainkey` first.",
    ]


def markdown(platform: Platform, institution: Institution, records: tuple[Record, ...]) -> str:
    lines = [f"# DNS records for {md_text(institution.name)} ({institution.code})", ""]
    lines.append(
        f"{md_text(platform.name)} sends e-mail on behalf of the domains below. Receivers "
        "(Gmail, Yahoo, Outlook) deliver it only when these records are published in the "
        "domain's DNS."
    )
    for ds in steps(platform, institution, records):
        shown = to_unicode(ds.domain)
        title = shown if shown == ds.domain else f"{shown} ({ds.domain})"
        lines += ["", f"## {title}", ""]
        if ds.managed:
            lines += ["These records are published by the platform: nothing to do.", ""]
        lines += [
            f"In the zone **{ds.zone}**:",
            "",
            "| Host | Type | Value | TTL | Purpose |",
            "|---|---|---|---|---|",
        ]
        for row in ds.rows:
            lines.append(
                f"| `{row.host}` | {row.type} | `{row.value}` | {row.ttl} | {row.purpose} |"
            )
    lines += ["", "## Before you save", ""]
    lines += [f"- {c}" for c in _cautions(platform)]
    for domain, host in external_report_destinations(platform, institution):
        lines.append(
            f"- DMARC reports for {domain} go to {host}, outside your domain: {host} must publish "
            f"`{domain}._report._dmarc.{host}` TXT `v=DMARC1` (RFC 7489 §7.1), or receivers "
            "send it no reports."
        )
    lines += [
        "",
        "## Afterwards",
        "",
        "Changes can take up to 48 hours to be visible everywhere. The platform checks the "
        f"records on your authoritative servers (`provisioner verify --institution "
        f"{institution.code}`) and tells you when DKIM signing can be enabled.",
        "",
    ]
    return "\n".join(lines)


def html_page(platform: Platform, institution: Institution, records: tuple[Record, ...]) -> str:
    e = html.escape
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>DNS records for {e(institution.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3em .6em;"
        "text-align:left}code{word-break:break-all}</style></head><body>",
        f"<h1>DNS records for {e(institution.name)} ({e(institution.code)})</h1>",
        f"<p>{e(platform.name)} sends e-mail on behalf of the domains below. Receivers deliver "
        "it only when these records are published in the domain's DNS.</p>",
    ]
    for ds in steps(platform, institution, records):
        out.append(f"<h2>{e(to_unicode(ds.domain))}</h2>")
        if ds.managed:
            out.append("<p>These records are published by the platform: nothing to do.</p>")
        out.append(f"<p>In the zone <strong>{e(ds.zone)}</strong>:</p>")
        out.append(
            "<table><tr><th>Host</th><th>Type</th><th>Value</th><th>TTL</th><th>Purpose</th></tr>"
        )
        for row in ds.rows:
            out.append(
                f"<tr><td><code>{e(row.host)}</code></td><td>{e(row.type)}</td>"
                f"<td><code>{e(row.value)}</code></td><td>{row.ttl}</td>"
                f"<td>{e(row.purpose)}</td></tr>"
            )
        out.append("</table>")
    out.append("<h2>Before you save</h2><ul>")
    for caution in _cautions(platform):
        text = e(caution).replace("**", "")
        parts = text.split("`")
        out.append(
            "<li>"
            + "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
            + "</li>"
        )
    out.append("</ul></body></html>")
    return "\n".join(out) + "\n"


def to_json(platform: Platform, institution: Institution, records: tuple[Record, ...]
            ) -> dict[str, object]:
    """The same steps for support tooling (docs/json.md): per domain, each record to publish
    (host relative to the zone, "@" at the apex), and the report authorisations that only the
    destination can publish."""
    return {
        "institution": institution.code,
        "name": institution.name,
        "domains": [{
            "domain": d.domain, "zone": d.zone, "dns": "managed" if d.managed else "external",
            "records": [{"host": r.host, "fqdn": r.fqdn, "type": r.type, "value": r.value,
                         "ttl": r.ttl, "role": r.role.value, "purpose": r.purpose}
                        for r in d.rows] if not d.managed else [],
        } for d in steps(platform, institution, records)],
        "report_authorisations": [{"domain": dom, "destination": host} for dom, host in
                                  external_report_destinations(platform, institution)],
        "cautions": _cautions(platform),
    }


def bind(institution: Institution, records: tuple[Record, ...]) -> str:
    own = [
        r
        for r in records
        if r.institution == institution.code
        and r.domain is not None
        and any(r.zone == d.zone + "." for d in institution.domains)
    ]
    return "\n".join(_bind_lines(own))


def _bind_lines(records: list[Record]) -> Iterator[str]:
    yield "; records to add to the zone(s) below; merge SPF into an existing v=spf1 record"
    yield from zone_file_lines(records)
