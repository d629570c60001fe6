"""`provisioner new CODE`: scaffold ``zones/CODE.yaml`` from flags, or prompts on a terminal.

The file carries the schema modeline (editors complete and check it), the platform's defaults
written out where a reader looks for them (DMARC ``p=none`` first, as the customer guide says),
and is validated with the whole repository before it is written: a code or domain already
taken, a bad address or an unknown target is refused with the same message ``validate`` gives,
and nothing is left behind.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from provisioner.cli.common import EXIT_ERROR, EXIT_OK, report
from provisioner.config import ZONES_DIR, display_path, load_project

CODE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "new", parents=[common], help="scaffold zones/CODE.yaml (prompts on a terminal)",
        description="Write a new declaration, checked with the whole repository before it is "
                    "written. Missing values are asked for on a terminal; a script gives them "
                    "as options.")
    p.add_argument("code", metavar="CODE", help="the institution code (the file name)")
    p.add_argument("--name", help="the institution's name")
    p.add_argument("--contact", help="the DNS administrator's e-mail address")
    p.add_argument("--domain", action="append", default=[], metavar="DOMAIN",
                   help="a sender domain (repeatable)")
    p.add_argument("--dns", choices=("managed", "external"), default=None,
                   help="managed: the product writes the records; external: the institution "
                        "publishes them (default: managed)")
    p.add_argument("--target", help="managed: a target of provisioner.yaml "
                                    "(default: its default_target)")
    p.add_argument("--rua", action="append", default=[], metavar="MAILTO",
                   help="the institution's own DMARC aggregate report address (repeatable)")
    p.add_argument("--stdout", action="store_true", help="print the file, write nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = Path(args.config)
    root = config.resolve().parent
    if not CODE.fullmatch(args.code):
        print(f"provisioner: {args.code!r} is not an institution code (fix: lower-case "
              "letters, digits and inner hyphens, at most 32)", file=sys.stderr)
        return EXIT_ERROR
    path = root / ZONES_DIR / f"{args.code}.yaml"
    if path.exists() and not args.stdout:
        print(f"provisioner: {display_path(path, root)} exists (fix: edit it, or choose "
              "another code)", file=sys.stderr)
        return EXIT_ERROR
    values = _ask_missing(args)
    if values is None:
        return EXIT_ERROR
    text = render(args.code, values)
    # Checked with the repository, as the file it will be (cross-file rules included).
    (root / ZONES_DIR).mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root / ZONES_DIR, prefix=f".{args.code}.", suffix=".new")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        project = load_project(config, [Path(tmp)])
        problems = [p for p in project.problems if p.code != "institution.file-name"]
        shown = os.path.basename(tmp)
        report(_renamed(p, shown, f"{ZONES_DIR}/{args.code}.yaml") for p in problems)
        if any(p.is_error for p in problems):
            print(f"provisioner: {ZONES_DIR}/{args.code}.yaml not written: fix the values "
                  "above", file=sys.stderr)
            return EXIT_ERROR
        if args.stdout:
            sys.stdout.write(text)
            return EXIT_OK
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    shown_path = display_path(path, root)
    print(f"created {shown_path}: valid; next: provisioner plan --institution {args.code}",
          file=sys.stderr)
    return EXIT_OK


def _renamed(problem: Any, old: str, new: str) -> Any:
    from dataclasses import replace

    if old in problem.origin.file:
        return replace(problem, origin=replace(problem.origin, file=new))
    return problem


def _ask_missing(args: argparse.Namespace) -> dict[str, Any] | None:
    wanted = {"name": "Institution name", "contact": "DNS administrator's e-mail (optional)",
              "domain": "Sender domain (e.g. mosamuseum.com)",
              "dns": "DNS: managed (we write it) or external (they do)"}
    values: dict[str, Any] = {"name": args.name, "contact": args.contact,
                              "domains": list(args.domain), "dns": args.dns,
                              "target": args.target, "rua": list(args.rua)}
    missing = [k for k in ("name", "domain") if not (values["domains"] if k == "domain"
                                                    else values[k])]
    if not missing:
        values["dns"] = values["dns"] or "managed"
        return values
    if not sys.stdin.isatty():
        flags = " ".join(f"--{k} ..." for k in missing)
        print(f"provisioner: new needs {flags} (or run it on a terminal to be asked)",
              file=sys.stderr)
        return None
    try:
        if not values["name"]:
            values["name"] = _prompt(wanted["name"])
        if values["contact"] is None:
            values["contact"] = _prompt(wanted["contact"], required=False) or None
        if not values["domains"]:
            values["domains"] = [_prompt(wanted["domain"]).lower()]
        if values["dns"] is None:
            answer = _prompt(wanted["dns"] + " [managed]", required=False) or "managed"
            while answer not in ("managed", "external"):
                answer = _prompt("managed or external") or "managed"
            values["dns"] = answer
    except EOFError:
        print("\nprovisioner: new cancelled: nothing written", file=sys.stderr)
        return None
    return values


def _prompt(question: str, *, required: bool = True) -> str:
    while True:
        print(f"{question}: ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()
        if not answer:
            raise EOFError
        answer = answer.strip()
        if answer or not required:
            return answer


def _scalar(value: str) -> str:
    """A YAML scalar that reads back as this exact string (JSON strings are YAML)."""
    if re.fullmatch(r"[^\W_][\w .@+-]*", value) and not value.endswith(" ") and \
            not re.fullmatch(r"[-+.\d]+", value) and value.lower() not in (
            "yes", "no", "on", "off", "true", "false", "null", "y", "n", "~"):
        return value
    return json.dumps(value, ensure_ascii=False)


def render(code: str, values: dict[str, Any]) -> str:
    lines = [
        "# yaml-language-server: $schema=../schemas/institution.schema.json",
        "# Every key: schemas/institution.schema.json. Check: provisioner validate "
        f"{ZONES_DIR}/{code}.yaml",
        f"institution: {code}",
        f"name: {_scalar(values['name'])}",
    ]
    if values.get("contact"):
        lines.append(f"contact: {_scalar(values['contact'])}")
    lines.append("domains:")
    for domain in values["domains"]:
        lines.append(f"  {_scalar(domain)}:")
        lines.append(f"    dns: {values['dns']}")
        if values.get("target") and values["dns"] == "managed":
            lines.append(f"    target: {_scalar(values['target'])}")
        lines += [
            "    # The platform's SPF include is added to the domain's one SPF record; list the",
            "    # domain's other senders here (include: [_spf.google.com]).",
            "    spf:",
            "      include: []",
            "    # Start at p=none, read the reports, then raise it (the customer guide).",
            "    dmarc:",
            "      policy: none",
        ]
        if values.get("rua"):
            lines.append("      rua: [" + ", ".join(_scalar(r) for r in values["rua"]) + "]")
    return "\n".join(lines) + "\n"
