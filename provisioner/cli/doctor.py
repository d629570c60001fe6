"""`provisioner doctor`: is this set-up able to do its job? Each check on one line, with the fix.

1. the configuration and declarations are valid (what ``validate`` says, counted);
2. each target's provider class loads, and the target answers with its credentials: zones
   are listed (Route53, PowerDNS) or the directory is writable (files) - read-only calls only;
3. the key store is readable (and, for the local store, private: 0700);
4. DNS is reachable: the root servers' NS through the system resolver, and each platform
   zone's authoritative servers.

Exit 0 when every check passes (warnings allowed), 1 otherwise. Nothing is written anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from provisioner.cli.common import EXIT_ERROR, EXIT_OK, positive_seconds
from provisioner.config import load_project
from provisioner.escape import terminal


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "doctor", parents=[common], help="check this set-up: configuration, targets, key "
        "store, DNS (read-only)",
        description="Check the configuration, every target with its credentials (read-only "
                    "calls), the key store and DNS; each check on one line with its fix.")
    p.add_argument("--target", action="append", default=[], metavar="T",
                   help="check this target (repeatable; default: the targets in use: "
                        "default_target, the platform zones' and the declarations')")
    p.add_argument("--all-targets", action="store_true", help="check every target")
    p.add_argument("--timeout", type=positive_seconds, default=3.0, metavar="SECONDS",
                   help="per network check (default 3)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="json: {ready, checks: [{check, status, detail, fix}]} on stdout")
    p.set_defaults(func=run)


class Checks:
    def __init__(self, quiet: bool = False) -> None:
        self.failed = 0
        self.warned = 0
        self.passed = 0
        self.quiet = quiet
        self.rows: list[dict[str, str]] = []

    def line(self, status: str, what: str, detail: str, fix: str = "") -> None:
        if status == "error":
            self.failed += 1
        elif status == "warning":
            self.warned += 1
        else:
            self.passed += 1
        mark = {"ok": "ok     ", "warning": "warning", "error": "error  "}[status]
        what = terminal(what, newlines=False)
        self.rows.append({"check": what, "status": status, "detail": detail, "fix": fix})
        if self.quiet:
            return
        print(f"{mark}  {what}: {detail}" + (f" (fix: {fix})" if fix else ""))

    def run(self, what: str, check: Callable[[], tuple[str, str, str]]) -> None:
        try:
            status, detail, fix = check()
        except Exception as exc:  # every failure is a finding, never a traceback
            status, detail, fix = "error", _one_line(exc), ""
        self.line(status, what, detail, fix)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def run(args: argparse.Namespace) -> int:
    checks = Checks(quiet=args.format == "json")
    started = time.monotonic()
    project = load_project(Path(args.config))
    errors = [p for p in project.problems if p.is_error]
    warnings = [p for p in project.problems if not p.is_error]
    if errors:
        checks.line("error", "configuration", f"{len(errors)} error(s), first: {errors[0]}",
                    "run provisioner validate and fix each line")
    else:
        checks.line("warning" if warnings else "ok", "configuration",
                    f"{len(project.institutions)} institutions valid"
                    + (f", {len(warnings)} warning(s)" if warnings else ""),
                    "provisioner validate lists the warnings" if warnings else "")
    if not project.platform.targets:
        return _done(checks, started, args.format)
    names = args.target or (sorted(project.platform.targets) if args.all_targets
                            else _in_use(project))
    for name in names:
        target = project.platform.targets.get(name)
        if target is None:
            checks.line("error", f"target {name}", "not in provisioner.yaml",
                        f"one of: {', '.join(sorted(project.platform.targets))}")
            continue
        checks.run(f"target {name}", partial(_target, project, target))
    if project.platform.manages_keys:
        checks.run("key store", lambda: _key_store(project))
    checks.run("DNS", lambda: _dns(project, args.timeout))
    return _done(checks, started, args.format)


def _in_use(project: Any) -> list[str]:
    used = {project.platform.default_target, *project.platform.platform_zones.values()}
    used |= {d.target for i in project.institutions for d in i.domains if d.target}
    return sorted(t for t in used if t in project.platform.targets)


def _done(checks: Checks, started: float, fmt: str) -> int:
    verdict = "ready" if not checks.failed else "not ready"
    if fmt == "json":
        print(json.dumps({"ready": not checks.failed, "checks": checks.rows}, indent=2))
    print(f"doctor: {verdict}: {checks.passed} ok, {checks.warned} warning(s), "
          f"{checks.failed} error(s) ({time.monotonic() - started:.1f} s)", file=sys.stderr)
    return EXIT_ERROR if checks.failed else EXIT_OK


def _target(project: Any, target: Any) -> tuple[str, str, str]:
    from provisioner.errors import InvalidInput
    from provisioner.octodns.targets import provider_class

    try:
        cls = provider_class(target, project.root)
    except InvalidInput as exc:
        problem = exc.problems[0]
        return "error", problem.message, problem.hint
    module = cls.__module__.split(".")[0]
    if module == "octodns" and cls.__name__ == "YamlProvider":
        directory = Path(str(target.options.get("directory", "."))
                         ).expanduser()
        if not directory.is_absolute():
            directory = project.root / directory
        probe = directory if directory.exists() else directory.parent
        while not probe.exists():
            probe = probe.parent
        if os.access(probe, os.W_OK):
            return "ok", f"{cls.__name__}: {directory} is writable", ""
        return "error", f"{directory} is not writable", "fix its permissions or change directory"
    if module == "octodns_route53":
        return _route53(target)
    if module == "octodns_powerdns":
        return _powerdns(target)
    return "warning", f"{cls.__module__}.{cls.__name__} loads; its credentials are not " \
        "checked by doctor", "run provisioner plan --target " + target.name


def _route53(target: Any) -> tuple[str, str, str]:
    import boto3
    import botocore.exceptions

    try:
        client = boto3.client("route53")
        answer = client.list_hosted_zones(MaxItems="1")
    except botocore.exceptions.NoCredentialsError:
        return "error", "no AWS credentials found", "set AWS_PROFILE, the AWS_* variables, " \
            "or the pipeline's OIDC role (docs/pipeline.md)"
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        return "error", f"Route53 refused ListHostedZones ({code})", \
            "give the role route53:ListHostedZones (docs/pipeline.md)"
    except botocore.exceptions.BotoCoreError as exc:
        return "error", f"Route53 unreachable: {_one_line(exc)}", \
            "check the network, or AWS_ENDPOINT_URL_ROUTE_53"
    count = len(answer.get("HostedZones", []))
    more = " or more" if answer.get("IsTruncated") else ""
    return "ok", f"Route53 answers with these credentials ({count}{more} hosted zone(s) " \
        "visible)", ""


def _powerdns(target: Any) -> tuple[str, str, str]:
    import requests

    host = _option(target, "host")
    port = _option(target, "port") or "8081"
    key = _option(target, "api_key")
    scheme = _option(target, "scheme") or "http"
    if not host or not key:
        return "error", "host or api_key is not set", \
            "set the target's host and its API key variable (env/NAME)"
    url = f"{scheme}://{host}:{port}/api/v1/servers/localhost/zones"
    try:
        response = requests.get(url, headers={"X-API-Key": key}, timeout=5,
                                allow_redirects=False)
    except requests.RequestException as exc:
        return "error", f"PowerDNS API at {host}:{port} unreachable ({type(exc).__name__})", \
            "check host, port and the API's allow list (webserver-allow-from)"
    if response.status_code in (401, 403):
        return "error", f"PowerDNS API refused the key (HTTP {response.status_code})", \
            "check the API key variable"
    if response.status_code != 200:
        return "error", f"PowerDNS API answered HTTP {response.status_code}", ""
    return "ok", f"PowerDNS API answers with this key ({len(response.json())} zone(s))", ""


def _option(target: Any, name: str) -> str | None:
    value = target.options.get(name)
    if isinstance(value, str) and value.startswith("env/"):
        return os.environ.get(value[4:])
    return None if value is None else str(value)


def _key_store(project: Any) -> tuple[str, str, str]:
    from provisioner.keys import service

    store = service.store_of(project.platform)
    states = service.read(project, store, None)
    location = getattr(store, "location", "the key store")
    path = getattr(store, "directory", None)
    if isinstance(path, Path) and path.is_dir():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            return "warning", f"{location} is readable by others (mode {mode:o})", \
                f"chmod 700 {location}"
    return "ok", f"{location} readable ({len(states)} institution(s) with key state)", ""


def _dns(project: Any, timeout: float) -> tuple[str, str, str]:
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver()
    resolver.lifetime = timeout
    try:
        resolver.resolve(".", "NS")
    except dns.exception.DNSException as exc:
        # plan and apply need no DNS; verify and drift do, unless given --nameserver
        return "warning", f"the system resolver does not resolve the root "\
            f"({type(exc).__name__}): verify and drift will need --nameserver", \
            "check /etc/resolv.conf"
    zones = sorted(project.platform.platform_zones)
    unserved = []
    for zone in zones:
        try:
            resolver.resolve(zone, "NS")
        except dns.exception.DNSException:
            unserved.append(zone)
    if unserved:
        return "warning", f"resolver answers; no NS for {', '.join(unserved)} yet", \
            "delegate the platform zones to their DNS host before the first verify"
    return "ok", f"resolver answers; {len(zones)} platform zone(s) delegated", ""
