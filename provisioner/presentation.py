"""Records as people and DNS servers read them: zone-file lines (RFC 1035 §5) and a table.

TXT values longer than 255 octets are written as several character-strings in one record
(RFC 7208 §3.3, RFC 6376 §3.6.2.2): a receiver joins them without spaces.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import groupby

from provisioner.model import MxValue, Record, RecordValue

TXT_CHUNK = 255


def txt_strings(value: str) -> list[str]:
    """Split a TXT value into character-strings of at most 255 octets, never inside a UTF-8
    sequence (values here are ASCII, but stay safe)."""
    data = value.encode("utf-8")
    chunks: list[str] = []
    while data:
        cut = min(TXT_CHUNK, len(data))
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:
            cut -= 1
        chunks.append(data[:cut].decode("utf-8"))
        data = data[cut:]
    return chunks or [""]


def quoted(value: str) -> str:
    """A TXT value in zone-file syntax: quoted strings with backslash and quote escaped."""
    return " ".join(
        '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in txt_strings(value)
    )


def rdata(rtype: str, value: RecordValue) -> str:
    if isinstance(value, MxValue):
        return f"{value.preference} {value.exchange}"
    if rtype == "TXT":
        return quoted(value)
    return value


def zone_file_lines(records: Iterable[Record]) -> Iterator[str]:
    """Zone-file text, one ``$ORIGIN`` block per zone, names relative (``@`` at the apex)."""
    for zone, recs in groupby(sorted(records, key=lambda r: r.key), key=lambda r: r.zone):
        yield f"$ORIGIN {zone}"
        for rec in recs:
            for value in rec.values:
                owner = rec.name or "@"
                yield f"{owner:<40} {rec.ttl:>6} IN {rec.type:<5} {rdata(rec.type, value)}"
        yield ""


def table_lines(records: Iterable[Record]) -> Iterator[str]:
    """An aligned table: fully qualified name, type, TTL, value, and whose and where it is."""
    rows = [
        (
            rec.fqdn,
            rec.type,
            str(rec.ttl),
            str(value),
            f"[{rec.institution or 'platform'} -> {rec.target or 'external'}]",
        )
        for rec in records
        for value in rec.values
    ]
    header = ("NAME", "TYPE", "TTL", "VALUE", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for name, rtype, ttl, value, where in [header, *rows]:
        line = f"{name:<{widths[0]}}  {rtype:<{widths[1]}}  {ttl:>{widths[2]}}  {value}  {where}"
        yield line.rstrip()
