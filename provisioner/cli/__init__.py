"""The command line: the only code that prints or exits.

Each command lives in its own module exposing ``register(subparsers)``, which adds its parser
and sets ``func`` to a ``run(args) -> int`` returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
from collections.abc import Sequence

from provisioner import __version__
from provisioner.cli.common import EXIT_ERROR, Parser
from provisioner.errors import ProvisionerError
from provisioner.escape import EscapingStream

# Command name -> the module that registers it. Only the module of the command being run is
# imported (octoDNS, the DNS client and jsonschema cost a third of a second to import), unless
# the whole parser is needed for --help or a mistyped command.
COMMANDS = {
    "validate": "provisioner.cli.validate",
    "records": "provisioner.cli.records",
    "plan": "provisioner.cli.plan",
    "apply": "provisioner.cli.plan",
    "plan-merge": "provisioner.cli.plan",
    "verify": "provisioner.cli.verify",
    "drift": "provisioner.cli.drift",
    "instructions": "provisioner.cli.instructions",
    "mr-note": "provisioner.cli.mr_note",
    "keys": "provisioner.cli.keys",
    "new": "provisioner.cli.new",
    "doctor": "provisioner.cli.doctor",
    "completion": "provisioner.cli.completion",
    "domainconnect": "provisioner.cli.domainconnect",
    "status": "provisioner.cli.status",
    "readiness": "provisioner.cli.status",
    "dmarc": "provisioner.cli.dmarc",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


DEFAULT_CONFIG = "provisioner.yaml"

#: Each command's exit codes, as ``--help`` shows them; the README's table says the same
#: (tests/test_cli_docs.py holds the two together). Usage errors are 1 everywhere.
EXITS = {
    "validate": "0 valid, 1 invalid",
    "records": "0 / 1",
    "plan": "0, 1 error, 2 changes (with --detailed-exitcode)",
    "apply": "0 applied, 1 error or not approved (nothing written), 2 applied but the check "
             "after it failed",
    "plan-merge": "0 / 1",
    "verify": "0 ok, 1 error, 2 failures",
    "drift": "0 none, 1 error or checks unanswered, 2 drift",
    "instructions": "0 finished (or nothing to do), 1 error, 2 records to do or wrong",
    "mr-note": "0 / 1",
    "keys": "0, 1 error, 3 a step refused (keys test: 2 failed)",
    "new": "0 written, 1 refused (nothing written)",
    "doctor": "0 ready, 1 a check failed",
    "completion": "0",
    "domainconnect": "0 / 1 (template --check: 1 out of date)",
    "status": "0 / 1",
    "readiness": "0 ready, 1 error or unknown (no server answered), 2 a domain not ready",
    "dmarc": "0, 1 error, 2 a report quarantined (ingest)",
}
EXIT_EPILOG = ("exit codes: 0 done; 1 error or usage error; 2 changes, drift, failures, or "
               "applied but not verified yet; 3 a key step refused; 130 interrupted "
               "(docs/cli.md)")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog="provisioner",
        description="SPF, DKIM, DMARC and MX records for the platform's institutions, as code.",
        epilog=EXIT_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # Also before the command (provisioner --config FILE validate), as octoDNS and Terraform
    # take them; after the command wins. Their own dests: a subcommand's defaults would
    # otherwise overwrite what was given before it.
    parser.add_argument("--config", dest="global_config", metavar="FILE", default=None,
                        help="the platform file, for any command (default: ./provisioner.yaml)")
    parser.add_argument("-v", "--verbose", dest="global_verbose", action="count", default=0,
                        help="log more, for any command (-vv: debug)")
    _output_options(parser)
    common = Parser(add_help=False)
    common.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help="the platform file; zones/ beside it (default: ./provisioner.yaml)",
    )
    common.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    _output_options(common)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = [COMMANDS[command]] if command in COMMANDS else list(COMMAND_MODULES)
    for name in modules:
        importlib.import_module(name).register(subparsers, common)
    for name, sub in subparsers.choices.items():
        if name in EXITS and not sub.epilog:
            sub.epilog = f"exit: {EXITS[name]}; a usage error exits 1"
    return parser


def _output_options(parser: argparse.ArgumentParser) -> None:
    # default=SUPPRESS: given before or after the command, neither erases the other.
    parser.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS,
                        help="no colour even on a terminal (as NO_COLOR=1; FORCE_COLOR=1 "
                             "forces it in a pipe)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction,
                        default=argparse.SUPPRESS,
                        help="progress bars on stderr (default: on a terminal outside CI)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every byte it prints goes through :func:`escape.terminal`."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = EscapingStream(out), EscapingStream(err)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = out, err


def _main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions (provisioner completion)
        import argcomplete

        argcomplete.autocomplete(build_parser(), exit_method=sys.exit)
    parser = build_parser(next((a for a in argv if a in COMMANDS), None))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (1, Parser.error)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_ERROR
    _style(args)
    # --config given after the step wins, then before the step (keys, dmarc, domainconnect:
    # provisioner dmarc --config F report), then before the command.
    for before in (getattr(args, "outer_config", None), args.global_config):
        if before is not None and getattr(args, "config", None) in (None, DEFAULT_CONFIG):
            args.config = before
    args.verbose = getattr(args, "verbose", 0) + args.global_verbose
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    quiet_secret_loggers(level)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, Redactor) for f in handler.filters):
            handler.addFilter(Redactor())
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


def _style(args: argparse.Namespace) -> None:
    """Colour for each stream that is a terminal, progress on stderr (cli.style)."""
    from provisioner import progress
    from provisioner.cli import style

    no_color = bool(getattr(args, "no_color", False))
    for stream in (sys.stdout, sys.stderr):
        raw = getattr(stream, "_stream", None)
        if isinstance(stream, EscapingStream) and raw is not None \
                and style.colour_wanted(raw, no_color):
            stream._paint = style.Painter()
    asked = getattr(args, "progress", None)
    progress.enable(style.progress_wanted(sys.__stderr__ or sys.stderr, asked),
                 immediately=bool(asked))


# Loggers that print request bodies and headers at debug level: botocore's carry credentials,
# signatures and (Secrets Manager) private keys; urllib3's carry URLs with tokens.
SECRET_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "gitlab", "requests")


# Secrets as they appear in request logs, whatever the logger: signed AWS headers, tokens,
# API keys, and private keys.
_SECRET_PATTERNS = re.compile(
    r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\"}\n]+"
    r"|((?:x-amz-security-token|x-api-key|private-token|job-token|aws_secret_access_key|"
    r"aws_session_token|secretaccesskey|sessiontoken)['\"]?\s*[:=]\s*['\"]?)[^'\",}\s]+"
    r"|-----BEGIN [A-Z ]*PRIVATE[ ]KEY-----.*?-----END [A-Z ]*PRIVATE[ ]KEY-----",
    re.DOTALL)
# Environment variables whose values are secrets wherever they show up in a log line.
_SECRET_ENV = re.compile(r"(?i)(secret|token|password|api_key|apikey|private)")


class Redactor(logging.Filter):
    """Removes secrets from every log record before any handler writes it: the values of
    secret-looking environment variables (the AWS keys, API keys, tokens a target reads with
    ``env/NAME``) and the headers and PEM blocks above. Defence in depth beside
    :func:`quiet_secret_loggers`: a library's log line may carry a secret at any level."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        clean = _SECRET_PATTERNS.sub(lambda m: (m.group(1) or m.group(2) or "") + "[redacted]",
                                     text)
        for name, value in os.environ.items():
            if len(value) >= 8 and _SECRET_ENV.search(name) and value in clean:
                clean = clean.replace(value, "[redacted]")
        if clean != text:
            record.msg, record.args = clean, ()
        return True


def quiet_secret_loggers(level: int) -> None:
    """Keep the loggers that print secrets at INFO or quieter, at any verbosity."""
    for name in SECRET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.INFO))


def entry() -> None:
    sys.exit(main())
