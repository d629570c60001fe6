"""The DNS hosts institutions use, recognised from the zone's NS names, with their forms'
layout and pitfalls (DESIGN §10).

Each host's form is described by what trips administrators up: whether the host field takes
the name relative to the zone (nearly all: typing the full name creates
``name.zone.zone``), whether MX has its own priority field, whether TXT values must be typed
in quotes, and the host's own traps (Cloudflare's proxy on a CNAME serves Cloudflare's
addresses instead of the record). Texts are message ids (``N_``), translated when shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from provisioner.external.i18n import N_


@dataclass(frozen=True, slots=True)
class Host:
    key: str
    name: str
    ns: re.Pattern[str]
    mx_priority_field: bool = True  # MX preference in its own field (else: in the value)
    txt_quotes: bool = False  # TXT values typed in double quotes by the administrator
    notes: tuple[str, ...] = ()


def _ns(*suffixes: str) -> re.Pattern[str]:
    return re.compile(r"(^|\.)(" + "|".join(suffixes) + r")\.?$", re.IGNORECASE)


HOSTS: tuple[Host, ...] = (
    Host("cloudflare", "Cloudflare", _ns(r"ns\.cloudflare\.com"), notes=(
        N_("Set the proxy status of both DKIM CNAMEs to \"DNS only\" (grey cloud): a proxied "
           "CNAME answers with Cloudflare's addresses, and receivers find no DKIM key."),
        N_("Cloudflare's \"Email > DMARC Management\" may have created a _dmarc record already: "
           "edit that record rather than adding a second one."),
    )),
    Host("godaddy", "GoDaddy", _ns(r"domaincontrol\.com"), notes=(
        N_("In \"DNS Management\", type @ for the apex and only the part before the domain for "
           "other names: GoDaddy adds the domain itself."),
    )),
    Host("ovh", "OVH", _ns(r"ovh\.net", r"ovh\.ca", r"anycast\.me"), notes=(
        N_("In the zone editor, use the record type TXT, not OVH's \"SPF\" or \"DMARC\" "
           "assistants, and type the value without quotes: OVH adds them."),
        N_("OVH applies zone changes after a few minutes; its default TTL is in seconds."),
    )),
    Host("infomaniak", "Infomaniak", _ns(r"infomaniak\.ch", r"infomaniak\.com"), notes=(
        N_("In the Infomaniak manager, \"DNS zone\" > \"Add an entry\": the source field takes "
           "the name without the domain (empty or @ for the apex)."),
    )),
    Host("gandi", "Gandi", _ns(r"gandi\.net"), notes=(
        N_("In Gandi's LiveDNS form, type @ for the apex; in the text-editor mode, TXT values "
           "must be in double quotes there."),
    )),
    Host("ionos", "IONOS", _ns(r"ui-dns\.com", r"ui-dns\.de", r"ui-dns\.org", r"ui-dns\.biz"),
         notes=(
        N_("IONOS may offer to \"use the record for\" a mail product: choose the plain record "
           "type (TXT, CNAME, MX) instead."),
    )),
    Host("route53", "Amazon Route 53", _ns(r"awsdns-\d+\.(com|net|org|co\.uk)"),
         mx_priority_field=False, txt_quotes=True, notes=(
        N_("In the Route 53 console, MX values are typed with their priority: 10 "
           "bounce.example.net. on one line."),
        N_("TXT values are typed in double quotes; a value over 255 characters is split into "
           "several quoted strings on one line."),
    )),
    Host("azure", "Azure DNS", _ns(r"azure-dns\.com", r"azure-dns\.net", r"azure-dns\.org",
                                   r"azure-dns\.info")),
    Host("google", "Google Cloud DNS", _ns(r"googledomains\.com"), mx_priority_field=False,
         txt_quotes=True, notes=(
        N_("In Cloud DNS, MX data is typed with its priority (10 bounce.example.net.) and TXT "
           "data in double quotes."),
    )),
)

GENERIC = Host("generic", "", re.compile(r"$^"))


def recognise(ns_names: tuple[str, ...]) -> Host:
    """The host whose name servers these are; :data:`GENERIC` when none matches."""
    for host in HOSTS:
        if ns_names and any(host.ns.search(n.rstrip(".")) for n in ns_names):
            return host
    return GENERIC
