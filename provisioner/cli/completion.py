"""`provisioner completion bash|zsh`: the shell code that completes commands and options.

argcomplete does the work: the shell calls ``provisioner`` with ``_ARGCOMPLETE`` set and it
answers from the real parser (:func:`provisioner.cli._main`), so completion never drifts from
the options. Install: ``eval "$(provisioner completion bash)"`` in ``~/.bashrc`` (zsh: the same
with ``zsh`` in ``~/.zshrc``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from provisioner.cli.common import EXIT_OK


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "completion", help="print the shell completion code (bash or zsh)",
        description='Shell completion: eval "$(provisioner completion bash)" in ~/.bashrc, or '
                    'the same with zsh in ~/.zshrc.')
    p.add_argument("shell", choices=("bash", "zsh"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from argcomplete.shell_integration import shellcode

    sys.stdout.write(shellcode(["provisioner"], shell=args.shell))
    return EXIT_OK
