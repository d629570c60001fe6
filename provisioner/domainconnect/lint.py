"""A Domain Connect template checked as the Templates repository checks a pull request.

1. Its JSON Schema (``template.schema.json``, vendored from Domain-Connect/spec at 6a4735c,
   identical to the Templates repository's; CC0, see ``LICENSE.template-schema``).
2. The rules of its linter (Domain-Connect/dc-template-linter, Go, Apache-2.0) that apply to a
   template like ours, ported by hand with the linter's codes and levels: there is no Python
   port, and running Go in CI for eight rules would cost more than the rules. The Templates
   README makes several of the linter's "info" findings binding rules (SPF in TXT, no
   ``syncPubKeyDomain``, ``%host%``); our own template must pass them all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parent / "template.schema.json"
_VARIABLE = re.compile(r"%[^%\s]*%")
_FILE_NAME = re.compile(r"^[a-z0-9.-]+\.[a-zA-Z0-9_-]+\.json$")
_MODIFIER = re.compile(r"^([a-zA-Z][a-zA-Z0-9_.-]*)=(.*)$")


@dataclass(frozen=True, slots=True)
class Finding:
    code: str  # DCTLnnnn, or "schema"
    level: str  # the linter's: error, warn, info
    message: str
    where: str  # "records[3]" or "template"

    def __str__(self) -> str:
        return f"{self.where}: {self.level} {self.code}: {self.message}"


@cache
def _validator() -> Any:
    from jsonschema import Draft7Validator

    return Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def _bare(text: str) -> bool:
    """The whole text is variables only (``%a%`` or ``%a%%b%``), as the linter's
    checkBareVariables."""
    return bool(text) and _VARIABLE.sub("", text) == "" and text.startswith("%")


def _spf_rules(rules: str, where: str) -> list[Finding]:
    out: list[Finding] = []
    if rules == "":
        return [Finding("DCTL1013", "error", "spfRules must not be empty", where)]
    if rules.startswith("v=spf1"):
        out.append(Finding("DCTL1017", "error", "spfRules must not start with v=spf1: the "
                           "host writes it", where))
    if rules.endswith("all"):
        out.append(Finding("DCTL1017", "error", "spfRules must not end with an all term: the "
                           "host keeps the domain's own", where))
    seen: set[str] = set()
    for field in rules.split():
        if _bare(field):
            continue
        modifier = _MODIFIER.match(field)
        if modifier:
            name = modifier.group(1).lower()
            if name in ("redirect", "exp"):
                if name in seen:
                    out.append(Finding("DCTL1018", "error", f"spfRules repeat {name}=", where))
                seen.add(name)
            else:
                out.append(Finding("DCTL1017", "error", f"spfRules hold an unknown modifier "
                                   f"{name}=", where))
            continue
        mechanism = field.lstrip("+-~?").split(":", 1)[0].split("/", 1)[0].lower()
        if mechanism not in ("include", "a", "mx", "ptr", "ip4", "ip6", "exists"):
            out.append(Finding("DCTL1017", "error", f"spfRules hold {field!r}, not a "
                               "mechanism", where))
    return out


def check(template: dict[str, Any], file_name: str | None = None) -> list[Finding]:
    """Every finding for ``template`` (empty: it would pass)."""
    found = [Finding("schema", "error", e.message, "template" if not e.absolute_path else
                     "/".join(str(p) for p in e.absolute_path))
             for e in sorted(_validator().iter_errors(template), key=lambda e: list(e.path))]
    if file_name is not None:
        expected = f"{template.get('providerId')}.{template.get('serviceId')}.json"
        if not _FILE_NAME.match(file_name) or file_name != expected:
            found.append(Finding("DCTL1003", "error", f"file name {file_name!r} is not "
                                 f"providerId.serviceId.json ({expected})", "template"))
    if template.get("warnPhishing") and template.get("syncPubKeyDomain"):
        found.append(Finding("DCTL1028", "error", "warnPhishing and syncPubKeyDomain are "
                             "mutually exclusive", "template"))
    if not template.get("syncPubKeyDomain"):
        found.append(Finding("DCTL1029", "info", "template does not have syncPubKeyDomain: "
                             "apply URLs cannot be signed", "template"))
    records = template.get("records")
    if not isinstance(records, list) or not records:
        found.append(Finding("DCTL1030", "error", "template does not have any records",
                             "template"))
        return found
    groups = [r.get("groupId", "") if isinstance(r, dict) else "" for r in records]
    if len(records) > 1 and all(groups) and len(set(groups)) == 1:
        found.append(Finding("DCTL1031", "info", "all record groupId values are the same",
                             "template"))
    if any(groups) and not all(groups):
        found.append(Finding("DCTL1032", "info", "mix of empty and defined record groupId "
                             "values", "template"))
    types_at: dict[str, set[str]] = {}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            continue
        where = f"records[{i}]"
        rtype = str(record.get("type", ""))
        host = str(record.get("host", ""))
        types_at.setdefault(host.lower(), set()).add(rtype)
        if "%host%" in host.lower():
            found.append(Finding("DCTL1024", "info", "%host% in host: the protocol appends "
                                 "the host parameter itself, the label would be doubled",
                                 where))
        if _bare(host) or _bare(str(record.get("pointsTo", ""))):
            found.append(Finding("DCTL1040", "error", "a bare variable as the whole host or "
                                 "pointsTo lets the caller write anything there", where))
        if _VARIABLE.fullmatch(rtype) or _VARIABLE.search(str(record.get("groupId", ""))):
            found.append(Finding("DCTL1009", "error", "variable in type or groupId", where))
        if rtype == "TXT":
            data = str(record.get("data", ""))
            if "v=spf1" in data:
                found.append(Finding("DCTL1014", "info", "use SPFM instead of an SPF value in "
                                     "TXT: a TXT v=spf1 overwrites the domain's SPF", where))
            if record.get("txtConflictMatchingMode") == "Prefix" and \
                    not record.get("txtConflictMatchingPrefix"):
                found.append(Finding("DCTL1013", "error", "txtConflictMatchingPrefix must not "
                                     "be empty with mode Prefix", where))
        if rtype == "SPFM":
            found += _spf_rules(str(record.get("spfRules", "")), where)
        if rtype == "MX" and not host:
            found.append(Finding("DCTL1013", "error", "host must not be empty", where))
    for host, types in types_at.items():
        if "CNAME" in types and len(types) > 1:
            found.append(Finding("DCTL1011", "error", f"CNAME at {host or '@'} mixed with "
                                 f"{', '.join(sorted(types - {'CNAME'}))}", "template"))
    return found
