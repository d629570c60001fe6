"""`provisioner domainconnect template|lint|keygen`: the platform's Domain Connect template.

- ``template``: write ``domainconnect/<providerId>.<serviceId>.json`` from provisioner.yaml
  (the version goes up when the records change) and check it; ``--check`` only says whether
  the file is up to date (CI), exit 1 when not;
- ``lint [FILE]``: the Templates repository's schema and linter rules on a template file;
- ``keygen``: make the signing key in the key store (once) and print its public half, the
  ``domain_connect.public_key`` to commit; the private half is never printed.

Publishing: the template goes to the Domain-Connect/Templates repository by pull request (its
README), the public key to DNS through the usual plan and apply (docs/domain-connect.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from provisioner.cli.common import EXIT_ERROR, EXIT_OK, load

KEY_ID = "dck1"


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "domainconnect",
        help="the platform's Domain Connect template: write, lint, signing key",
        description="Generate and check the platform's Domain Connect template, and make its "
                    "signing key (docs/domain-connect.md).")
    # --config is taken before the step too (provisioner domainconnect --config F template).
    p.add_argument("--config", dest="outer_config", metavar="FILE", default=None,
                   help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="dc_command", metavar="STEP", required=True)
    t = sub.add_parser("template", parents=[common], help="write the template and check it")
    t.add_argument("--output", metavar="DIR", help="directory (default: domainconnect/ beside "
                   "provisioner.yaml)")
    t.add_argument("--check", action="store_true", help="write nothing; exit 1 when the file "
                   "is missing or out of date")
    t.set_defaults(func=run_template)
    lint = sub.add_parser("lint", parents=[common], help="check a template file")
    lint.add_argument("file", nargs="?", metavar="FILE", help="default: the platform's")
    lint.set_defaults(func=run_lint)
    k = sub.add_parser("keygen", parents=[common], help="make the signing key (once) and print "
                       "its public half")
    k.set_defaults(func=run_keygen)


def _platform(args: argparse.Namespace) -> Any:
    project = load(args)
    if project is None:
        return None
    if project.platform.domain_connect is None:
        print("provisioner: provisioner.yaml has no domain_connect section (fix: add "
              "domain_connect: {provider_id: ..., service_id: ..., sync_pub_key_domain: ...}, "
              "docs/domain-connect.md)", file=sys.stderr)
        return None
    return project


def _report(findings: list[Any], name: str) -> int:
    for f in findings:
        print(f"{name}: {f}", file=sys.stderr)
    bad = [f for f in findings]
    print(f"domainconnect: {name}: {'ok' if not bad else f'{len(bad)} finding(s)'}",
          file=sys.stderr)
    return EXIT_ERROR if bad else EXIT_OK


def run_template(args: argparse.Namespace) -> int:
    from provisioner import domainconnect
    from provisioner.domainconnect import lint

    project = _platform(args)
    if project is None:
        return EXIT_ERROR
    platform = project.platform
    directory = Path(args.output) if args.output else project.root / domainconnect.TEMPLATE_DIR
    path = directory / domainconnect.file_name(platform)
    if args.check:
        existing = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        version = domainconnect.next_version(platform, existing)
        if existing != domainconnect.template(platform, version):
            print(f"provisioner: {path} is {'missing' if existing is None else 'out of date'} "
                  "(fix: provisioner domainconnect template, and commit it)", file=sys.stderr)
            return EXIT_ERROR
        return _report(lint.check(existing, path.name), path.name)
    path, version, changed = domainconnect.write(platform, directory)
    print(f"{'wrote' if changed else 'unchanged'} {path} (version {version})")
    return _report(lint.check(json.loads(path.read_text(encoding="utf-8")), path.name),
                   path.name)


def run_lint(args: argparse.Namespace) -> int:
    from provisioner import domainconnect
    from provisioner.domainconnect import lint

    if args.file:
        path = Path(args.file)
    else:
        project = _platform(args)
        if project is None:
            return EXIT_ERROR
        path = project.root / domainconnect.TEMPLATE_DIR / domainconnect.file_name(
            project.platform)
    try:
        template = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"provisioner: {path}: {exc} (fix: give a Domain Connect template, JSON)",
              file=sys.stderr)
        return EXIT_ERROR
    if not isinstance(template, dict):
        print(f"provisioner: {path}: not a JSON object", file=sys.stderr)
        return EXIT_ERROR
    return _report(lint.check(template, path.name), path.name)


def signing_key(project: Any) -> bytes | None:
    """The Domain Connect private key from the key store, or None (absent or unreadable)."""
    from provisioner.domainconnect.sign import STORE_CODE
    from provisioner.keys import service
    from provisioner.keys.store import StoreError

    try:
        return bytes(service.store_of(project.platform).read_private(STORE_CODE, KEY_ID))
    except StoreError:
        return None


def run_keygen(args: argparse.Namespace) -> int:
    from provisioner.domainconnect import sign
    from provisioner.keys import service
    from provisioner.keys.store import StoreError

    project = _platform(args)
    if project is None:
        return EXIT_ERROR
    dc = project.platform.domain_connect
    store = service.store_of(project.platform)
    try:
        made = store.create_private(sign.STORE_CODE, KEY_ID, sign.new_key())
        pem = store.read_private(sign.STORE_CODE, KEY_ID)
    except StoreError as exc:
        print(f"provisioner: key store: {exc}", file=sys.stderr)
        return EXIT_ERROR
    public = sign.public_base64(pem)
    print(f"{'made' if made else 'kept'} the Domain Connect signing key {KEY_ID} in "
          f"{store.location}", file=sys.stderr)
    if dc.public_key == public:
        print("domain_connect.public_key already holds its public half", file=sys.stderr)
    else:
        print(f"add to provisioner.yaml, domain_connect: (then plan and apply publish it at "
              f"{dc.key_name}):", file=sys.stderr)
    print(f"  public_key: {public}")
    return EXIT_OK
