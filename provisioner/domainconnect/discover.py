"""Does the institution's DNS host support Domain Connect, and this template?

Discovery (spec §"Discovery"): the TXT record ``_domainconnect.<zone>`` names the host's API
host; ``https://<it>/v2/<zone>/settings`` answers JSON with ``urlSyncUX`` (where the
administrator is sent) and ``urlAPI``; ``<urlAPI>/v2/domainTemplates/providers/<providerId>/
services/<serviceId>`` answers 200 when the host has the template. Everything here is hostile
input: the TXT must be a host name (and port), only https is fetched, redirects are not
followed, answers are size-limited and must be JSON objects with https URLs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from provisioner.dnsclient import NOERROR, DnsClient, Query, fqdn

_HOST = re.compile(r"^(?=.{1,253}(:\d{1,5})?$)([a-z0-9_]([a-z0-9-_]{0,61}[a-z0-9])?\.)*"
                   r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(:\d{1,5})?$", re.IGNORECASE)
_HTTPS = re.compile(r"^https://[^\s\"'<>]+$")
MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Support:
    """The outcome: ``url_sync_ux`` when the host applies our template, else why not."""

    api_host: str | None
    url_sync_ux: str | None
    provider_name: str | None
    supported: bool
    reason: str


def api_host(client: DnsClient, zone: str, servers: tuple[Any, ...]) -> str | None:
    """The host named by ``_domainconnect.<zone>`` TXT, when it is a host name."""
    if not servers:
        return None
    name = fqdn(f"_domainconnect.{zone}")
    query = Query(servers[0], name, "TXT")
    answer = client.lookup_many([query])[query]
    if answer.status != NOERROR:
        return None
    for value in answer.values:
        text = str(value).strip().rstrip("/")
        text = text.removeprefix("https://")
        if _HOST.match(text) and not _is_ip(text.rsplit(":", 1)[0] if text.count(":") == 1
                                            else text):
            return text.lower()
    return None


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _good_url(url: Any) -> bool:
    """An https URL a DNS host may send us to: a host name (no address, no user), no query
    or fragment (the apply URL appends its own query)."""
    from urllib.parse import urlsplit

    if not isinstance(url, str) or not _HTTPS.match(url) or len(url) > 2048:
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return host is not None and not _is_ip(host) and parts.username is None and \
        not parts.query and not parts.fragment


class Unreachable(Exception):
    """The host did not give a usable answer (connection, TLS, a broken body)."""


def _get_json(session: Any, url: str, timeout: float) -> tuple[int, Any]:
    import json

    import requests
    import urllib3

    try:
        response = session.get(url, timeout=timeout, allow_redirects=False, stream=True,
                               headers={"Accept": "application/json"})
        try:
            body = response.raw.read(MAX_BYTES + 1, decode_content=True)
        finally:
            response.close()
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise Unreachable(type(exc).__name__) from None
    if len(body) > MAX_BYTES:
        return response.status_code, None
    try:
        return response.status_code, json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return response.status_code, None


def support(client: DnsClient, zone: str, servers: tuple[Any, ...], provider_id: str,
            service_id: str, timeout: float = 5.0) -> Support:
    host = api_host(client, zone, servers)
    if host is None:
        return Support(None, None, None, False, "no _domainconnect record")
    import requests

    zone = zone.rstrip(".")
    with requests.Session() as session:
        session.trust_env = True  # the CA bundle of REQUESTS_CA_BUNDLE, never proxies' auth
        try:
            status, settings = _get_json(session, f"https://{host}/v2/{zone}/settings",
                                         timeout)
        except Unreachable as exc:
            return Support(host, None, None, False, f"settings unreachable ({exc})")
        if status != 200 or not isinstance(settings, dict):
            return Support(host, None, None, False, f"settings answered HTTP {status}")
        sync = settings.get("urlSyncUX")
        api = settings.get("urlAPI")
        name = settings.get("providerName")
        if not _good_url(sync) or not _good_url(api):
            return Support(host, None, None, False, "settings without usable https urlSyncUX "
                                                    "and urlAPI (a host name, no query)")
        try:
            status, _ = _get_json(session, f"{str(api).rstrip('/')}/v2/domainTemplates/providers/"
                                           f"{provider_id}/services/{service_id}", timeout)
        except Unreachable as exc:
            return Support(host, sync, None, False, f"template check unreachable ({exc})")
    shown = name if isinstance(name, str) and len(name) <= 64 else None
    if status != 200:
        return Support(host, sync, shown, False, f"the host does not have the template "
                                                 f"(HTTP {status})")
    return Support(host, sync, shown, True, "supported")
