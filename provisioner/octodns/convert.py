"""Between the product's :class:`~provisioner.model.Record` and octoDNS record data.

octoDNS keeps TXT values with ``;`` escaped as ``\\;`` (its internal form); the product keeps
plain ``;`` (DESIGN §4). This module is the one place that crosses between the two, so escaping
never leaks into the core or into what users see. Long TXT values stay one string here: each
provider splits them into 255-octet character-strings (RFC 1035 §3.3.14) on the wire.
"""

from __future__ import annotations

from typing import Any

from octodns.context import ContextDict  # type: ignore[import-untyped,unused-ignore]

from provisioner.model import MxValue, Record, RecordValue

QUOTED_TYPES = frozenset({"TXT", "SPF"})


def escape(value: str) -> str:
    """Plain TXT text to octoDNS's internal form (``;`` -> ``\\;``), idempotent."""
    return value.replace("\\;", ";").replace(";", "\\;")


def unescape(value: str) -> str:
    """octoDNS's internal TXT form back to the plain text a resolver returns."""
    return value.replace("\\;", ";")


def record_data(record: Record) -> dict[str, Any]:
    """The octoDNS data for one record set; its context is the declaration's origin.

    octoDNS prints a record's context with every validation error, so an error about an
    expanded record points at the file, line and column that declared it.
    """
    values: list[Any]
    if record.type in QUOTED_TYPES:
        values = [escape(str(v)) for v in record.values]
    elif record.type == "MX":
        values = [
            {"preference": v.preference, "exchange": v.exchange}
            for v in record.values
            if isinstance(v, MxValue)
        ]
    else:
        values = [str(v) for v in record.values]
    data: dict[str, Any] = {"type": record.type, "ttl": record.ttl}
    if record.type == "CNAME":
        data["value"] = values[0]
    else:
        data["values"] = values
    return ContextDict(data, context=str(record.origin))  # type: ignore[no-any-return]


def plain_values(octodns_record: Any) -> tuple[RecordValue, ...]:
    """The values of an octoDNS record as the product writes them (plain ``;``, MxValue)."""
    rtype: str = octodns_record._type
    if rtype == "CNAME":
        return (str(octodns_record.value),)
    out: list[RecordValue] = []
    for v in octodns_record.values:
        if rtype in QUOTED_TYPES:
            out.append(unescape(str(v)))
        elif rtype == "MX":
            out.append(MxValue(int(v.preference), str(v.exchange)))
        else:
            # Other types only matter for display: their presentation text.
            to_text = getattr(v, "to_rdata_text", None)
            out.append(str(v) if isinstance(v, str) or to_text is None else str(to_text()))
    return tuple(out)
