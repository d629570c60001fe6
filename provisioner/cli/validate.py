"""`provisioner validate [FILE...]`: schema and semantic checks, every problem in one run."""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from provisioner.cli.common import EXIT_ERROR, EXIT_OK, plural, report
from provisioner.config import display_path, load_project
from provisioner.errors import Problem


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "validate",
        parents=[common],
        help="check provisioner.yaml and zones/ (exit 0 valid, 1 invalid)",
        description="Check the platform file and the declarations: schema, names, conflicts.",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="only report on these files")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument(
        "--format",
        choices=("text", "json", "junit"),
        default="text",
        help="json: the problems as one JSON document on stdout (docs/json.md); junit: a "
             "JUnit XML report on stdout (one test case per file). The lines stay on stderr",
    )
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
        f"{plural(errors, 'error')}, {plural(warnings, 'warning')}",
        file=sys.stderr,
    )
    if args.format == "json":
        print(json.dumps({
            "valid": not failed, "strict": args.strict,
            "institutions": len(project.institutions),
            "domains": sum(len(i.domains) for i in project.institutions),
            "errors": errors, "warnings": warnings,
            "problems": [p.to_json() for p in sorted(
                project.problems, key=lambda p: (p.origin.file, p.origin.line,
                                                 p.origin.column, p.code))],
        }, indent=2))
    if args.format == "junit":
        files = [project.config_path, *sorted(project.zones_dir.glob("*.yaml"))]
        names = [display_path(f, project.root) for f in files]
        if args.files:
            names = [display_path(Path(f), project.root) for f in args.files]
        sys.stdout.write(junit_report(names, project.problems, strict=args.strict))
    return EXIT_ERROR if failed else EXIT_OK


def junit_report(files: list[str], problems: tuple[Problem, ...], *, strict: bool) -> str:
    """JUnit XML as GitLab's test report reads it: a test case per file, failed by its errors."""
    by_file: dict[str, list[Problem]] = {name: [] for name in files}
    for problem in problems:
        by_file.setdefault(problem.origin.file, []).append(problem)
    suite = ET.Element("testsuite", name="provisioner validate", tests=str(len(by_file)))
    failures = 0
    for name, found in by_file.items():
        case = ET.SubElement(suite, "testcase", classname="validate", name=name)
        bad = [p for p in found if p.is_error or strict]
        if bad:
            failures += 1
            failure = ET.SubElement(case, "failure", message=f"{len(bad)} problem(s)")
            failure.text = "\n".join(str(p) for p in bad)
        elif found:
            ET.SubElement(case, "system-out").text = "\n".join(str(p) for p in found)
    suite.set("failures", str(failures))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
