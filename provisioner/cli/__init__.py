"""The command line: the only code that prints or exits.

Each command lives in its own module exposing ``register(subparsers)``, which adds its parser
and sets ``func`` to a ``run(args) -> int`` returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from provisioner import __version__
from provisioner.errors import ProvisionerError

COMMAND_MODULES = (
    "provisioner.cli.validate",
    "provisioner.cli.records",
    "provisioner.cli.plan",
    "provisioner.cli.verify",
    "provisioner.cli.drift",
    "provisioner.cli.instructions",
    "provisioner.cli.mr_note",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provisioner",
        description="SPF, DKIM, DMARC and MX records for the platform's institutions, as code.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default="provisioner.yaml",
        metavar="FILE",
        help="the platform file; zones/ beside it (default: ./provisioner.yaml)",
    )
    common.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.func(args)
    except ProvisionerError as exc:
        print(f"provisioner: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("provisioner: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return code


def entry() -> None:
    sys.exit(main())
