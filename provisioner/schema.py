"""JSON Schema checks of the two file kinds, with located, readable problems.

``schemas/*.json`` are the single source of truth for structure (editors use them too). Valid
documents, the common case at thousands of files, are checked by jsonschema-rs (compiled, about
fifty times faster); only an invalid one goes through the Python ``jsonschema`` package, whose
errors carry the failing keyword and value we need to write a precise message.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema_rs

from provisioner.errors import Problem

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError
from provisioner.yamlload import Document

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@cache
def schema(name: str) -> dict[str, Any]:
    """Load ``schemas/<name>.schema.json`` of the checkout the package runs from (the product
    is installed editable from its repository, where operators also point their editors)."""
    text = (SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _fast(name: str) -> Any:
    return jsonschema_rs.validator_for(schema(name))


@cache
def _slow(name: str) -> Draft202012Validator:
    # Imported here: only an invalid document needs it, and it costs 0.1 s to import.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema(name))


def default(name: str, *path: str) -> Any:
    """The ``default`` the schema gives at a path of property names (``$ref`` followed)."""
    root = schema(name)
    node: dict[str, Any] = root
    for part in path:
        node = _deref(root, node)
        if "properties" in node and part in node["properties"]:
            node = node["properties"][part]
        else:
            node = node["additionalProperties"]
    if "default" in node:  # a default beside a $ref (2020-12 allows siblings) wins
        return node["default"]
    return _deref(root, node).get("default")


def _deref(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"].removeprefix("#/")
        target: Any = root
        for part in ref.split("/"):
            target = target[part]
        node = target
    return node


def check(name: str, doc: Document) -> list[Problem]:
    """Every schema problem of ``doc``, each at the key or value it concerns."""
    if _fast(name).is_valid(doc.data):
        return []
    found = [p for e in _slow(name).iter_errors(doc.data) for p in _describe(doc, e)]
    return sorted(found, key=lambda p: (p.origin.line, p.origin.column, p.code))


def _describe(doc: Document, error: ValidationError) -> list[Problem]:
    path = tuple(error.absolute_path)
    where = ".".join(str(p) for p in path) or "the top level"
    kind = error.validator
    value: Any = error.validator_value
    inst = error.instance
    if kind == "additionalProperties" and isinstance(inst, dict):
        schema_node = error.schema if isinstance(error.schema, dict) else {}
        allowed = sorted(schema_node.get("properties", {}))
        return [
            Problem(
                "schema.unknown-key",
                f"unknown key {key!r} in {where}" + _did_you_mean(str(key), allowed),
                doc.where_key((*path, key)),
                f"use one of: {', '.join(allowed)}" if allowed else "remove it",
            )
            for key in inst
            if key not in allowed
        ]
    origin = doc.where_key(path) if kind in {"required", "minProperties"} else doc.where(path)
    message, hint = _message(kind, value, inst, where)
    word = doc.words.get(path)
    if isinstance(inst, bool) and word is not None and _wants_string(kind, value):
        # YAML 1.1: an unquoted off, no, yes, on is a boolean, never the word.
        key = str(path[-1]) if path else "value"
        message = (f"{where} is {word}, which YAML reads as the boolean "
                   f"{str(inst).lower()}, not the word")
        if kind == "type" or word in [str(v) for v in value]:
            hint = f'quote it: {key}: "{word}"'
        elif not inst and "none" in value:
            message += " (did you mean 'none'?)"
    elif kind == "enum" and isinstance(inst, str):
        message += _did_you_mean(inst, [str(v) for v in value])
    elif kind == "type" and isinstance(inst, str) and _wants(value, "integer"):
        seconds = _duration(inst)
        if seconds is not None:
            message = (f"{where} is {json.dumps(inst)}: a number of seconds is written "
                       "without a unit")
            hint = f"write {seconds} (seconds)"
    return [Problem(f"schema.{kind}", message, origin, hint)]


def _wants(value: Any, name: str) -> bool:
    return name == value or (isinstance(value, list) and name in value)


def _wants_string(kind: Any, value: Any) -> bool:
    if kind == "type":
        return _wants(value, "string")
    return kind == "enum" and any(isinstance(v, str) for v in value)


def _did_you_mean(word: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def _duration(text: str) -> int | None:
    """``1h`` as 3600: what someone who wrote a duration with a unit meant."""
    import re

    match = re.fullmatch(r"\s*(\d+)\s*(s|m|min|h|d|w)\s*", text.lower())
    return int(match.group(1)) * _UNITS[match.group(2)] if match else None


def _message(kind: Any, value: Any, inst: Any, where: str) -> tuple[str, str]:
    shown = json.dumps(inst) if not isinstance(inst, (dict, list)) else type(inst).__name__
    if kind == "required":
        missing = [k for k in value if k not in inst]
        return f"{where} lacks the key {missing[0]!r}", f"add '{missing[0]}:'"
    if kind == "enum":
        return f"{where} is {shown}", "use one of: " + ", ".join(str(v) for v in value)
    if kind == "type":
        wanted = [value] if isinstance(value, str) else list(value)
        want = " or ".join(_WANTED.get(w, w) for w in wanted)
        return f"{where} is {_type_name(inst)}, not {want}", f"write {want} here"
    if kind == "pattern":
        return f"{where} {shown} is not of the expected form", _pattern_hint(where)
    if kind in {"minimum", "maximum"}:
        return f"{where} is {shown}, {'below' if kind == 'minimum' else 'above'} {value}", (
            f"use a value {'>=' if kind == 'minimum' else '<='} {value}"
        )
    if kind in {"minLength", "minItems", "minProperties"}:
        return f"{where} is empty or too short", f"give at least {value}"
    if kind in {"maxLength", "maxItems"}:
        return f"{where} is too long", f"at most {value}"
    if kind == "uniqueItems":
        return f"{where} lists the same value twice", "remove the repeated value"
    return f"{where}: {kind} {value!r} not met by {shown}", ""


#: JSON Schema's type names in the words of a YAML file (never "a object", "a array").
_WANTED = {
    "object": "a mapping (key: value lines)",
    "array": "a list (- item lines, or [a, b])",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}


def _type_name(inst: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "empty",
    }.get(type(inst), type(inst).__name__)


# A backslash would reach the DNS host as an escape: PowerDNS decodes \059 into ';', which
# turns one address into extra DMARC tags.
_MAILTO = ("write mailto:address@example.com, the address in letters, digits and . _ + - "
           "(no backslash, quote, space, ',', ';' or '!': DNS hosts decode escapes)")


def _pattern_hint(where: str) -> str:
    last = where.rsplit(".", 1)[-1]
    hints = {
        "institution": "lower-case letters, digits and inner hyphens, at most 32",
        "rua": _MAILTO,
        "ruf": _MAILTO,
        "dmarc_rua": _MAILTO,
        "name": "one line of text: no newline, tab or other control character",
        "failure_reporting": "0, 1, d or s, separated by colons",
        "return_path": "a lower-case label such as 'mail' or 'bounce.news'",
        "contact": "an e-mail address, without quotes, backslashes, spaces or control characters",
        "class": "a dotted Python path such as octodns_route53.Route53Provider",
    }
    if last.isdigit():
        last = where.rsplit(".", 2)[-2]
    return hints.get(last, "a host name such as _spf.example.com: letters, digits, - and _")
