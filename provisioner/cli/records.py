"""`provisioner records`: the expanded records, as a table, JSON or zone-file text."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from provisioner.cli.common import EXIT_ERROR, EXIT_OK, load
from provisioner.presentation import table_lines, zone_file_lines


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "records",
        parents=[common],
        help="print the records every institution needs",
        description="Print the expanded records, sorted by zone, name and type.",
    )
    p.add_argument("--institution", metavar="CODE", help="only this institution")
    p.add_argument("--format", choices=("text", "json", "bind"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    project = load(args, institution=args.institution, keys=True)
    if project is None:
        return EXIT_ERROR
    records = project.records()
    out = sys.stdout
    if args.format == "json":
        # One record per line: readable, diffable, and far faster than indent= at 10,000s.
        out.write(
            "[\n"
            + ",\n".join(json.dumps(r.to_json(), ensure_ascii=False) for r in records)
            + "\n]\n"
        )
    elif args.format == "bind":
        out.write("\n".join(zone_file_lines(records)))
    else:
        out.write("\n".join(table_lines(records)) + "\n")
    zones = len({r.zone for r in records})
    external = sum(1 for r in records if not r.managed)
    print(f"records: {len(records)} record sets in {zones} zones"
          + (f", {external} published by the institutions (dns: external)" if external else ""),
          file=sys.stderr)
    return EXIT_OK
