"""Domain Connect: the platform's template, generated from provisioner.yaml, and its checks.

The template (``providerId.serviceId.json``, Domain Connect spec §5.2-5.3) holds what every
external institution needs at its own DNS host, in four groups that apply separately:

- ``dkim``: the two selector CNAMEs, fixed hosts, the institution code embedded in a fixed
  target (``sel1-%code%._domainkey.<dkim zone>``), never a bare variable;
- ``spf``: an ``SPFM`` record at the apex (the host merges it into the one SPF record; a TXT
  ``v=spf1`` would overwrite the customer's);
- ``returnpath``: the return-path MX and its own SPFM, under the fixed label of
  ``domain_connect.return_path``;
- ``dmarc``: a TXT at ``_dmarc`` with ``txtConflictMatchingMode: All`` (one DMARC record per
  name) and ``essential: OnApply`` (the customer raises the policy later without breaking the
  template), the policy a variable embedded in fixed text.

``syncPubKeyDomain`` is set: apply URLs are signed (:mod:`.sign`). The ``version`` goes up by
one whenever the records change (:func:`next_version`). :mod:`.lint` checks it against the
Templates repository's JSON Schema (vendored) and the rules of its linter that apply.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from provisioner.model import Platform

TEMPLATE_DIR = "domainconnect"


def file_name(platform: Platform) -> str:
    dc = platform.domain_connect
    assert dc is not None
    return f"{dc.provider_id}.{dc.service_id}.json"


def records(platform: Platform) -> list[dict[str, Any]]:
    dc = platform.domain_connect
    assert dc is not None
    ttl = platform.ttl
    out: list[dict[str, Any]] = []
    for selector in platform.selectors:
        # sel1-{institution} -> sel1-%code%: the code is the only part that varies
        label = selector.pattern.replace("{institution}", "%code%")
        out.append({"groupId": "dkim", "type": "CNAME", "host": f"{selector.name}._domainkey",
                    "pointsTo": f"{label}._domainkey.{platform.dkim_zone}", "ttl": ttl})
    out.append({"groupId": "spf", "type": "SPFM", "host": "@",
                "spfRules": f"include:{platform.spf_include}"})
    out.append({"groupId": "returnpath", "type": "MX", "host": dc.return_path,
                "pointsTo": platform.return_path_mx, "priority": 10, "ttl": ttl})
    out.append({"groupId": "returnpath", "type": "SPFM", "host": dc.return_path,
                "spfRules": f"include:{platform.spf_include}"})
    # The institution's own report addresses go before the platform's, from a variable inside
    # fixed text (%dmarc_rua% is "mailto:a@b," or empty; the signed URL fixes its value).
    rua = f"; rua=%dmarc_rua%{platform.dmarc_rua}" if platform.dmarc_rua else ""
    out.append({"groupId": "dmarc", "type": "TXT", "host": "_dmarc",
                "data": f"v=DMARC1; p=%dmarc_policy%{rua}", "ttl": ttl,
                "txtConflictMatchingMode": "All", "essential": "OnApply"})
    return out


def template(platform: Platform, version: int = 1) -> dict[str, Any]:
    dc = platform.domain_connect
    assert dc is not None
    doc: dict[str, Any] = {
        "providerId": dc.provider_id,
        "providerName": dc.provider_name,
        "serviceId": dc.service_id,
        "serviceName": dc.service_name,
        "version": version,
        "syncPubKeyDomain": dc.sync_pub_key_domain,
        "description": f"Lets {dc.provider_name} send e-mail for the domain: DKIM, SPF, the "
                       "return path and DMARC, each group applicable alone.",
        "variableDescription": "code: the institution's code at the platform; dmarc_policy: "
                               "none, quarantine or reject; dmarc_rua: the domain's own "
                               "report addresses, each followed by a comma, or empty",
        "records": records(platform),
    }
    if dc.logo_url:
        doc["logoUrl"] = dc.logo_url
    return doc


def next_version(platform: Platform, existing: dict[str, Any] | None) -> int:
    """The template's version: the existing one while the records are the same, one more
    when they change (DNS hosts cache templates by version)."""
    if existing is None:
        return 1
    old = int(existing.get("version", 0) or 0)
    same = {k: v for k, v in template(platform, old).items() if k != "version"} == \
        {k: v for k, v in existing.items() if k != "version"}
    return old if same else old + 1


def write(platform: Platform, directory: Path) -> tuple[Path, int, bool]:
    """Write the template under ``directory``; (path, version, changed)."""
    path = directory / file_name(platform)
    existing = None
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            existing = None
    version = next_version(platform, existing)
    text = json.dumps(template(platform, version), indent=2, ensure_ascii=False) + "\n"
    changed = not path.exists() or path.read_text(encoding="utf-8") != text
    if changed:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path, version, changed
