"""`provisioner instructions CODE`: exact steps for an institution's DNS administrator."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from provisioner import instructions
from provisioner.cli.common import EXIT_ERROR, EXIT_OK, load


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "instructions",
        parents=[common],
        help="the records an institution's DNS administrator must publish",
        description="Print what an institution's DNS administrator types into the DNS host: "
        "host, type, value and TTL of each record, with the usual mistakes to avoid.",
    )
    p.add_argument("code", metavar="CODE", help="the institution code")
    p.add_argument("--format", choices=("markdown", "html", "bind", "json"), default="markdown")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    project = load(args, institution=args.code)
    if project is None:
        return EXIT_ERROR
    inst = project.institutions[0]
    records = project.records()
    if args.format == "html":
        text = instructions.html_page(project.platform, inst, records)
    elif args.format == "json":
        text = json.dumps(instructions.to_json(project.platform, inst, records), indent=2,
                          ensure_ascii=False) + "\n"
    elif args.format == "bind":
        text = instructions.bind(inst, records)
    else:
        text = instructions.markdown(project.platform, inst, records)
    sys.stdout.write(text)
    external = [d for d in inst.domains if d.target is None]
    count = sum(1 for r in records if r.institution == inst.code and not r.managed)
    print(f"instructions: {inst.code}: {len(external)} domain(s) published by the institution, "
          f"{count} record set(s) to publish" + ("" if external else
                                                   " (every domain is managed: nothing to do)"),
          file=sys.stderr)
    return EXIT_OK
