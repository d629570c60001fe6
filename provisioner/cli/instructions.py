"""`provisioner instructions CODE`: placeholder until it is built."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("instructions", parents=[common], help="(not built yet)")
    p.add_argument("code")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("provisioner: 'instructions' is not built yet", file=sys.stderr)
    return 1
