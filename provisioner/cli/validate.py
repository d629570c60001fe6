"""`provisioner validate [FILE...]`: schema and semantic checks, every problem in one run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from provisioner.cli.common import EXIT_ERROR, EXIT_OK, report
from provisioner.config import load_project


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "validate",
        parents=[common],
        help="check provisioner.yaml and zones/ (exit 0 valid, 1 invalid)",
        description="Check the platform file and the declarations: schema, names, conflicts.",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="only report on these files")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    project = load_project(Path(args.config), [Path(f) for f in args.files] or None)
    report(project.problems)
    errors = sum(p.is_error for p in project.problems)
    warnings = len(project.problems) - errors
    failed = errors or (args.strict and warnings)
    print(
        f"{'invalid' if failed else 'valid'}: {len(project.institutions)} institutions, "
        f"{sum(len(i.domains) for i in project.institutions)} domains, "
        f"{errors} errors, {warnings} warnings",
        file=sys.stderr,
    )
    return EXIT_ERROR if failed else EXIT_OK
