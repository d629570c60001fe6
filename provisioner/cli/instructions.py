"""`provisioner instructions CODE`: what an institution's DNS administrator must do, computed
against the live zone, with each record's status (DESIGN §10).

Exit codes as verify's: 0 every record is live and right (or every domain is managed, or
``--offline``), 2 records still to do or wrong, 1 an error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from provisioner.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, load, positive_seconds
from provisioner.dnsclient import BadServer, Server


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "instructions",
        parents=[common],
        help="the records an institution's DNS administrator must publish, against the live "
             "zone, with their status",
        description="Read each external domain's zone on its authoritative servers, then say "
                    "exactly what to add, replace or remove there (one merged SPF value, never "
                    "a weaker DMARC policy), in the DNS host's terms, with each record's live "
                    "status.",
    )
    p.add_argument("code", metavar="CODE", help="the institution code")
    p.add_argument("--format", choices=("markdown", "html", "bind", "json"), default="markdown")
    p.add_argument("--lang", choices=("en", "fr"), default="en",
                   help="the administrator's language (default en)")
    p.add_argument("--nameserver", metavar="HOST[:PORT]", action="append", default=[],
                   help="ask this server instead of each zone's authoritative servers "
                        "(repeatable)")
    p.add_argument("--timeout", type=positive_seconds, default=1.0, metavar="SECONDS",
                   help="first timeout of each DNS query (default 1)")
    p.add_argument("--offline", action="store_true",
                   help="do not read the live zones: the records, with the generic cautions")
    p.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from provisioner import external
    from provisioner.external import render

    try:
        nameservers = tuple(Server.parse(n) for n in args.nameserver)
    except BadServer as exc:
        print(f"provisioner: {exc}", file=sys.stderr)
        return EXIT_ERROR
    project = load(args, institution=args.code)
    if project is None:
        return EXIT_ERROR
    inst = project.institutions[0]
    key = None
    if project.platform.domain_connect is not None and not args.offline:
        from provisioner.cli.domainconnect import signing_key

        key = signing_key(project)
    advice = external.build(project.platform, inst, project.records(), nameservers=nameservers,
                            timeout=args.timeout, live=not args.offline, signing_key=key)
    from provisioner.cli.dmarc import ramp_for

    advice = external.with_ramp(advice, ramp_for(project, inst.code))
    writer = {"markdown": render.markdown, "html": render.html_page, "bind": render.bind,
              "json": render.json_text}[args.format]
    text = writer(advice, args.lang)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as out:
                out.write(text)
        except OSError as exc:
            print(f"provisioner: cannot write {args.output}: {exc}", file=sys.stderr)
            return EXIT_ERROR
    else:
        sys.stdout.write(text)
    from provisioner.external.i18n import translator

    t = translator(args.lang)
    print(f"instructions: {inst.code}: {render.closing(advice, t)}", file=sys.stderr)
    if advice.finished is False:
        return EXIT_CHANGES
    return EXIT_OK
