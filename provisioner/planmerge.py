"""The shards' plans merged into one (DESIGN §12): one merge-request note, one summary.

``plan --shard I/N --output-dir DIR`` writes each shard's plan document (``DIR/plan.json``);
:func:`merge` reads the N documents back and makes the one plan a reviewer reads: every zone,
key and awaiting domain of every shard, the summed counts and API calls, and each shard's own
checksum (apply takes them one by one: ``apply --shard I/N --checksum SUM``). A document is an
artifact of another job, so it is checked against a JSON Schema before anything is read from
it, and every shard must be there exactly once: a merged plan that silently lacked a shard
would be reviewed as the whole change.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from provisioner.drift import Shard
from provisioner.errors import ProvisionerError

_SIDE = {"oneOf": [{"type": "null"}, {
    "type": "object", "required": ["ttl", "values"],
    "properties": {"ttl": {"type": "integer", "minimum": 0}, "values": {
        "type": "array", "items": {"oneOf": [
            {"type": "string"},
            {"type": "object", "required": ["preference", "exchange"],
             "properties": {"preference": {"type": "integer"},
                            "exchange": {"type": "string"}}}]}}}}]}

#: The plan document as ``plan --format json`` writes it (docs/cli.md), as far as a merge and
#: its renderers read it; fields may be added.
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["checksum", "shard", "changes", "keys_to_generate", "zones", "awaiting",
                 "problems"],
    "properties": {
        "checksum": {"oneOf": [{"type": "null"}, {"type": "string", "pattern": "^[0-9a-f]{64}$"}]},
        "shard": {"type": "string", "pattern": "^[0-9]+/[0-9]+$"},
        "scope": {"type": "object", "properties": {
            k: {"type": ["string", "null"]} for k in ("target", "institution", "changed_since")}},
        "changes": {"type": "boolean"},
        "keys_to_generate": {"type": "array", "items": {
            "type": "object", "required": ["institution", "keys"],
            "properties": {"institution": {"type": "string"}, "keys": {
                "type": "array", "items": {
                    "type": "object", "required": ["selector", "id", "spec"],
                    "properties": {k: {"type": "string"} for k in ("selector", "id", "spec")}}}}}},
        "zones": {"type": "array", "items": {
            "type": "object",
            "required": ["zone", "target", "exists", "orphan", "needs_force", "changes"],
            "properties": {
                "zone": {"type": "string"}, "target": {"type": "string"},
                "exists": {"type": "boolean"}, "orphan": {"type": "boolean"},
                "needs_force": {"type": "array", "items": {"type": "string"}},
                "changes": {"type": "array", "items": {
                    "type": "object", "required": ["action", "name", "type", "before", "after"],
                    "properties": {
                        "action": {"enum": ["create", "update", "delete"]},
                        "name": {"type": "string"},
                        "type": {"type": "string", "pattern": "^[A-Z0-9]{1,10}$"},
                        "before": _SIDE, "after": _SIDE}}}}}},
        "awaiting": {"type": "array", "items": {
            "type": "object", "required": ["institution", "domain", "records"],
            "properties": {"institution": {"type": "string"}, "domain": {"type": "string"},
                           "records": {"type": "array"}}}},
        "problems": {"type": "array", "items": {"type": "object"}},
        "api_calls": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}},
    },
}


def _where(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the document"


def _scope_text(document: dict[str, Any]) -> str:
    scope = document.get("scope") or {}
    given = [f"--{k.replace('_', '-')} {v}" for k, v in sorted(scope.items()) if v]
    return " ".join(given) or "no scope option (the whole fleet)"


def read(path: Path) -> dict[str, Any]:
    """One shard's plan document (``path`` a directory holding plan.json, or the file),
    checked; ProvisionerError naming the file, the place and the fix."""
    from jsonschema import Draft202012Validator

    file = path / "plan.json" if path.is_dir() else path
    fix = "run 'provisioner plan --shard I/N --output-dir DIR' for each shard, then merge the DIRs"
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProvisionerError(f"{file}: cannot read it ({exc.strerror}); {fix}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f":{exc.lineno}:{exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ProvisionerError(f"{file}{where}: not a plan document (not JSON); {fix}") from None
    if isinstance(document, dict) and document.get("shard", "") is None:
        what = "a merged plan" if "shards" in document else "a plan of the whole fleet"
        raise ProvisionerError(f"{file}: {what}, not one shard's (no \"shard\"); {fix}")
    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(document),
                    key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        first = errors[0]
        raise ProvisionerError(f"{file}: {_where(first.absolute_path)}: {first.message[:200]}; "
                               f"not a plan --shard document ({fix})")
    return dict(document)


def merge(documents: Sequence[tuple[Path, dict[str, Any]]]) -> dict[str, Any]:
    """The N shards' documents as one plan document, with ``shards``: each shard's checksum.
    ProvisionerError when a shard is missing, given twice, or from another split."""
    if not documents:
        raise ProvisionerError("plan-merge: no plan given; name each shard's --output-dir")
    by_index: dict[int, tuple[Path, dict[str, Any]]] = {}
    total = None
    for path, document in documents:
        try:
            shard = Shard.parse(document["shard"])
        except ValueError as exc:
            raise ProvisionerError(f"{path}: {exc}; give the plans of one "
                                   "'plan --shard I/N' split") from None
        if total is not None and shard.total != total:
            raise ProvisionerError(f"{path}: shard {shard} is of a split in {shard.total}, the "
                                   f"others in {total}: merge the shards of one pipeline")
        total = shard.total
        if shard.index in by_index:
            raise ProvisionerError(f"{path}: shard {shard} again (also {by_index[shard.index][0]})"
                                   ": give each shard's plan once")
        by_index[shard.index] = (path, document)
    assert total is not None
    missing = [f"{i}/{total}" for i in range(1, total + 1) if i not in by_index]
    if missing:
        which = (f"the plan of shard {missing[0]} is" if len(missing) == 1 else
                 f"the plans of shards {', '.join(missing)} are")
        raise ProvisionerError(f"plan-merge: {which} missing ({len(by_index)} of {total} "
                               "given): a merged plan must cover the whole change; give every "
                               "shard's --output-dir")
    ordered = [by_index[i][1] for i in range(1, total + 1)]
    first_path, first = by_index[1]
    for i in range(2, total + 1):
        path, document = by_index[i]
        if document.get("scope") != first.get("scope"):
            raise ProvisionerError(
                f"{path}: planned with {_scope_text(document)}, shard 1 ({first_path}) with "
                f"{_scope_text(first)}: merge the shards of one pipeline")
    keyed: dict[str, str] = {}
    for document in ordered:
        for item in document["keys_to_generate"]:
            code = item["institution"]
            if code in keyed:
                raise ProvisionerError(
                    f"plan-merge: the keys of {code} are to be generated by shard {keyed[code]} "
                    f"and shard {document['shard']}: the shards are not of one repository "
                    "state; plan them again")
            keyed[code] = document["shard"]
    calls: dict[str, dict[str, int]] = {}
    for document in ordered:
        for target, ops in (document.get("api_calls") or {}).items():
            for op, n in ops.items():
                calls.setdefault(target, {})[op] = calls.get(target, {}).get(op, 0) + n
    seen: dict[tuple[str, str], str] = {}
    for document in ordered:
        for zone in document["zones"]:
            key = (zone["zone"], zone["target"])
            if key in seen:
                raise ProvisionerError(
                    f"plan-merge: {zone['zone']} on {zone['target']} is planned by shard "
                    f"{seen[key]} and shard {document['shard']}: the shards are not of one "
                    "repository state; plan them again")
            seen[key] = document["shard"]
    return {
        "checksum": None,
        "shard": None,
        "scope": first.get("scope"),
        "shards": [{"shard": d["shard"], "checksum": d["checksum"], "changes": d["changes"],
                    "needs_force": any(z["needs_force"] for z in d["zones"])}
                   for d in ordered],
        "changes": any(d["changes"] for d in ordered),
        "keys_to_generate": [k for d in ordered for k in d["keys_to_generate"]],
        "zones": sorted((z for d in ordered for z in d["zones"]),
                        key=lambda z: (z["zone"], z["target"])),
        "awaiting": sorted((a for d in ordered for a in d["awaiting"]),
                           key=lambda a: (a["institution"], a["domain"])),
        "problems": [p for d in ordered for p in d["problems"]],
        "api_calls": calls,
    }
