"""`provisioner keys`: the DKIM key lifecycle (DESIGN §9).

``status`` shows each selector and the audit trail; ``rotate``, ``activate`` and ``retire`` take
one step for the institutions named, and ``advance`` (the GitLab schedule's job) takes every
step whose gates are met for every institution. A refused step prints which precondition
failed and when it will hold, and exits 3. ``signing`` prints what the mail platform signs with
(only chains that verify now); ``test`` signs a message with the stored key and verifies it
through live DNS.

Steps that change a key record (a new key, an emptied ``p=``) publish it at once through
octoDNS, in the DKIM zone only; activation reads live DNS first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from provisioner.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REFUSED,
    KeyContext,
    load,
    positive_seconds,
    report,
    with_keys,
)
from provisioner.config import Project
from provisioner.dnsclient import NOERROR, BadServer, DnsClient, Query, Server, fqdn
from provisioner.keys import clock, lifecycle, service, signing
from provisioner.keys.lifecycle import Observation, Refusal
from provisioner.keys.policy import format_duration
from provisioner.keys.service import Outcome
from provisioner.keys.state import InstitutionKeys, Status, stamp
from provisioner.keys.store import KeyStore, StoreError
from provisioner.model import Record, Role
from provisioner.octodns import afterapply, engine
from provisioner.verify import Report, verify_records


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "keys", help="DKIM keys: status, rotate, activate, retire, advance, signing, test",
        description="The DKIM key lifecycle. Exit 0 done, 1 error, 3 a step refused (its "
                    "precondition does not hold yet; the message says when it will).")
    # --config and -v are taken before the step too (provisioner keys --config F status).
    p.add_argument("--config", dest="outer_config", metavar="FILE", default=None,
                   help=argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", dest="outer_verbose", action="count", default=0,
                   help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="keys_command", metavar="STEP", required=True)
    dns = argparse.ArgumentParser(add_help=False)
    dns.add_argument("--nameserver", metavar="HOST[:PORT]", action="append", default=[],
                     help="ask this server instead of each zone's authoritative servers")
    dns.add_argument("--timeout", type=positive_seconds, default=1.0, metavar="SECONDS",
                     help="first timeout of each DNS query (default 1)")
    codes = argparse.ArgumentParser(add_help=False)
    codes.add_argument("codes", nargs="*", metavar="CODE", help="institutions (default: all)")

    s = sub.add_parser("status", parents=[common, codes], help="selectors, keys and history")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.set_defaults(func=_outer(run_status))

    r = sub.add_parser("rotate", parents=[common, dns], help="a new key on the idle selector")
    r.add_argument("codes", nargs="+", metavar="CODE")
    r.add_argument("--emergency", action="store_true",
                   help="the signing key leaked: rotate now, sign with the new key as soon as "
                        "it verifies, revoke the leaked one at once")
    r.add_argument("--reason", default="", help="recorded in the audit trail")
    r.add_argument("--format", choices=("text", "json"), default="text",
                       help="json: one document on stdout (docs/cli.md); the lines go to stderr")
    r.set_defaults(func=_outer(run_rotate))

    a = sub.add_parser("activate", parents=[common, dns], help="move signing to the new key")
    a.add_argument("codes", nargs="+", metavar="CODE")
    a.add_argument("--selector", metavar="LABEL", help="the selector to activate "
                   "(default: the rotation's new key)")
    a.add_argument("--format", choices=("text", "json"), default="text",
                       help="json: one document on stdout (docs/cli.md); the lines go to stderr")
    a.set_defaults(func=_outer(run_activate))

    t = sub.add_parser("retire", parents=[common, dns], help="empty the old selector's p=")
    t.add_argument("codes", nargs="+", metavar="CODE")
    t.add_argument("--selector", metavar="LABEL", help="the selector to retire "
                   "(default: the one standing by)")
    t.add_argument("--format", choices=("text", "json"), default="text",
                       help="json: one document on stdout (docs/cli.md); the lines go to stderr")
    t.set_defaults(func=_outer(run_retire))

    v = sub.add_parser("advance", parents=[common, dns, codes],
                       help="every step whose gates are met (the schedule's job)")
    v.add_argument("--format", choices=("text", "json"), default="text",
                       help="json: one document on stdout (docs/cli.md); the lines go to stderr")
    v.set_defaults(func=_outer(run_advance))

    g = sub.add_parser("signing", parents=[common, dns, codes],
                       help="what the mail platform signs with: only chains that verify now")
    g.add_argument("--format", choices=("json", "opendkim"), default="json")
    g.add_argument("--output", metavar="DIR", help="opendkim: write KeyTable and SigningTable "
                   "there (and the private keys, 0600, for a store that is not files)")
    g.set_defaults(func=_outer(run_signing))

    x = sub.add_parser("test", parents=[common, dns],
                       help="sign a message with the stored key and verify it via live DNS")
    x.add_argument("code", metavar="CODE")
    x.add_argument("--domain", action="append", default=[], help="only this sender domain")
    x.add_argument("--format", choices=("text", "json"), default="text",
                       help="json: one document on stdout (docs/cli.md); the lines go to stderr")
    x.set_defaults(func=_outer(run_test))


# --- shared -----------------------------------------------------------------------------------


#: What a step did, for ``--format json``: filled by the printing helpers below while the step
#: runs with its lines sent to stderr. None outside a JSON step.
_record: dict[str, Any] | None = None


def _outer(fn: Any) -> Any:
    """The step, with -v given before it honoured (--config: cli._main); with --format json (steps
    other than status and signing, which print their own), one JSON document on stdout."""
    def run(args: argparse.Namespace) -> int:
        global _record
        args.verbose = max(args.verbose, args.outer_verbose)
        if getattr(args, "format", None) != "json" or fn in (run_status, run_signing):
            code: int = fn(args)
            return code
        _record = {"step": args.keys_command, "generated": [], "institutions": {},
                   "published": [], "refusals": [], "waiting": [], "results": []}
        out = sys.stdout
        try:
            with contextlib.redirect_stdout(sys.stderr):
                code = fn(args)
            document = {"exit": code, **_record}
        finally:
            _record = None
        print(json.dumps(document, indent=2), file=out)
        return code

    return run


def _servers(args: argparse.Namespace) -> tuple[Server, ...] | None:
    try:
        servers = tuple(Server.parse(n) for n in getattr(args, "nameserver", []))
    except BadServer as exc:
        print(f"provisioner: {exc}", file=sys.stderr)
        return None
    if getattr(args, "timeout", 1.0) <= 0:
        print("provisioner: --timeout must be > 0", file=sys.stderr)
        return None
    return servers


def _open(args: argparse.Namespace, codes: Sequence[str]) -> tuple[Project, KeyContext] | None:
    project = load(args)
    if project is None:
        return None
    if not project.platform.manages_keys and args.keys_command in ("status", "advance") \
            and not codes:
        # The schedule runs advance on every platform; one that publishes its keys itself
        # has nothing to advance.
        print(f"keys: the DKIM zone {project.platform.dkim_zone} is not in platform_zones: "
              "the product owns no keys, nothing to do")
        return project, KeyContext(None, {})
    if not project.platform.manages_keys:
        print(f"provisioner: the DKIM zone {project.platform.dkim_zone} is not in "
              "platform_zones: the product owns no keys (fix: add it to platform_zones)",
              file=sys.stderr)
        return None
    keyed = {i.code for i in service.keyed(project)}
    unknown = [c for c in codes if c not in keyed]
    if unknown:
        print(f"provisioner: no institution with DKIM keys: {', '.join(unknown)} (known: "
              f"{', '.join(sorted(keyed)[:10])})", file=sys.stderr)
        return None
    return with_keys(project)


def _start(args: argparse.Namespace, codes: Sequence[str]
           ) -> tuple[tuple[Server, ...], Project, KeyContext] | None:
    """The name servers of the arguments, and the project with its keys; None (after a
    one-line message) when either fails."""
    servers = _servers(args)
    if servers is None:
        return None
    opened = _open(args, codes)
    if opened is None:
        return None
    return (servers, *opened)


def _print_refusals(refusals: Iterable[Refusal]) -> bool:
    any_ = False
    for r in refusals:
        print(f"provisioner: {r}", file=sys.stderr)
        if _record is not None:
            _record["refusals"].append(_refusal_json(r))
        any_ = True
    return any_


def _verify_keys(project: Project, codes: Iterable[str], servers: tuple[Server, ...],
                 timeout: float) -> dict[str, dict[str, Observation]]:
    """What live DNS shows of these institutions' key chains, on every authoritative server:
    the given servers, else each zone's target's ``nameserver`` option, else its NS."""
    records = service.key_records(project, codes)
    groups: dict[tuple[Server, ...], list[Record]] = {}
    skipped: list[str] = []
    for r in records:
        found = _where(project, r, servers)
        if isinstance(found, str):
            skipped.append(found)
            continue
        groups.setdefault(found, []).append(r)
    for line in dict.fromkeys(skipped):
        print(f"keys: {line}", file=sys.stderr)
    domains: list[Any] = []
    for group_servers, group in groups.items():
        report = verify_records(group, project.platform, nameservers=group_servers,
                                timeout=timeout, jobs=1)
        domains.extend(report.domains)
    return service.observations(project, Report(tuple(domains)))


def _where(project: Project, record: Record, servers: tuple[Server, ...]
           ) -> tuple[Server, ...] | str:
    if servers:
        return servers
    target_name = record.target or (project.platform.platform_zones.get(record.zone.rstrip("."))
                                    if record.role is Role.DKIM_KEY else None)
    if target_name is None:
        return ()  # external: its delegation
    target = project.platform.targets[target_name]
    live = afterapply.live_dns(target)
    if live.skip:
        return f"{record.zone.rstrip('.')} on {target_name} is not verified: {live.skip}"
    return live.servers


def _publish(project: Project, states: Mapping[str, InstitutionKeys], codes: Sequence[str]
             ) -> bool:
    """Write the DKIM zone's key records as the states now say: only that zone, and only
    these institutions' records when there is one."""
    project = service.attach(project, states)
    zone = project.platform.dkim_zone + "."
    only = codes[0] if len(codes) == 1 else None
    result = engine.plan(project.records(), project.platform, project.root, only_zones={zone},
                         only_institution=only)
    report(result.problems)
    if not result.ok:
        return False
    for z in result.zones:
        for c in z.changes:
            print(f"publish: {c.action} {c.name}.{z.zone.rstrip('.')} TXT on {z.target}")
            if _record is not None:
                _record["published"].append({"action": c.action, "name": c.name,
                                             "zone": z.zone, "target": z.target})
    if not result.has_changes:
        return True
    applied = engine.apply(result)
    report(applied.problems)
    return applied.ok


def _say(outcome: Outcome) -> None:
    for code, key_id, spec in outcome.generated:
        print(f"{code}: generated key {key_id} ({spec})")
        if _record is not None:
            _record["generated"].append({"institution": code, "key": key_id, "spec": str(spec)})
    for code in dict.fromkeys(outcome.changed):
        print(f"{code}: {_summary(outcome.states[code])}")
        if _record is not None:
            _record["institutions"][code] = [
                {"selector": s.label, "status": s.status.value,
                 "key": s.key.id if s.key else None} for s in outcome.states[code].slots]


def _refusal_json(r: Refusal) -> dict[str, Any]:
    return {"code": r.code, "institution": r.institution, "step": r.step,
            "selector": r.selector, "message": r.message,
            "until": r.until.isoformat() if r.until else None}


def _summary(state: InstitutionKeys) -> str:
    parts = []
    for s in state.slots:
        key = f" {s.key.id}" if s.key else ""
        parts.append(f"{s.label} {s.status.value}{key}")
    return "; ".join(parts)


# --- status -----------------------------------------------------------------------------------


def run_status(args: argparse.Namespace) -> int:
    opened = _open(args, args.codes)
    if opened is None:
        return EXIT_ERROR
    project, keys = opened
    if keys.store is None:
        return EXIT_OK
    now = clock.now()
    codes = args.codes or [i.code for i in service.keyed(project)]
    if args.format == "json":
        out = []
        for code in codes:
            state = keys.states[code]
            inst = project.institution(code)
            assert inst is not None
            policy = service.policy_of(project, inst)
            data = state.to_json()
            data["next"] = _next_step(state, now, policy, project.platform.ttl)
            out.append(data)
        print(json.dumps({"store": keys.store.location if keys.store else None,
                          "institutions": out}, indent=2))
        return EXIT_OK
    print(f"key store: {keys.store.location if keys.store else '-'}")
    for code in codes:
        state = keys.states[code]
        inst = project.institution(code)
        assert inst is not None
        policy = service.policy_of(project, inst)
        print(f"\n{code} (policy {policy.spec}, rotation every "
              f"{format_duration(policy.rotation_interval)}; state version {state.version})")
        for s in state.slots:
            key = (f"{s.key.id} {s.key.spec}, made {stamp(s.key.created)}" if s.key else
                   "p= (revoked)" if s.generation else "no key")
            since = f" since {stamp(s.since)}" if s.since else ""
            live = f", live since {stamp(s.live_since)}" if s.live_since else ""
            print(f"  {s.label:<24} {s.status.value:<9} {key}{since}{live}")
        print(f"  next: {_next_step(state, now, policy, project.platform.ttl)}")
        if len(codes) == 1 or args.verbose:
            print("  history:")
            for event in state.history:
                print(f"    {event}")
    return EXIT_OK


def _next_step(state: InstitutionKeys, now: Any, policy: Any, ttl: int) -> str:
    if not any(s.key for s in state.slots) and not any(s.generation for s in state.slots):
        return "keys to generate at the next apply"
    if state.emergency:
        return f"emergency: {state.emergency} is revoked once the new key verifies"
    waiting = next((s for s in state.slots if s.status is Status.PUBLISHED and s.key), None)
    signing = state.signing
    if waiting is not None and (signing is None or state.rotating_to == waiting.label):
        if waiting.live_since is None:
            return f"activate {waiting.label} once its chain verifies everywhere"
        if signing is None:
            return f"activate {waiting.label} (first key: no gate)"
        return f"activate {waiting.label} from {stamp(waiting.live_since + policy.gate(ttl))}"
    standby = next((s for s in state.slots if s.status is Status.STANDBY), None)
    if standby is not None and standby.since is not None:
        return f"retire {standby.label} from {stamp(standby.since + policy.grace)}"
    if signing is not None and signing.since is not None:
        return f"rotate from {stamp(signing.since + policy.rotation_interval)}"
    return "-"


# --- steps ------------------------------------------------------------------------------------


def _step(args: argparse.Namespace, decide: Any, *, verify_first: bool,
          publish: bool = True) -> int:
    started = _start(args, args.codes)
    if started is None:
        return EXIT_ERROR
    servers, project, keys = started
    assert keys.store is not None
    now = clock.now()
    seen = _verify_keys(project, args.codes, servers, args.timeout) if verify_first else {}
    try:
        outcome = service.perform(project, keys.store, keys.states,
                                  {c: decide(project, c, seen.get(c, {}), now)
                                   for c in args.codes}, now)
    except StoreError as exc:
        print(f"provisioner: key store: {exc}", file=sys.stderr)
        return EXIT_ERROR
    _say(outcome)
    if publish and outcome.publishes(keys.states) and not _publish(
            project, outcome.states, args.codes):
        return EXIT_ERROR
    return EXIT_REFUSED if _print_refusals(outcome.refusals) else EXIT_OK


def run_rotate(args: argparse.Namespace) -> int:
    def decide(project: Project, code: str, seen: Any, now: Any) -> Any:
        inst = project.institution(code)
        assert inst is not None
        policy = service.policy_of(project, inst)
        return lambda s: lifecycle.rotate(s, now, policy, policy.spec,
                                          emergency=args.emergency, reason=args.reason)

    code = _step(args, decide, verify_first=False)
    if code == EXIT_OK and args.emergency:
        print("emergency: the new key signs as soon as its chain verifies and the leaked key is "
              "revoked then; 'provisioner keys advance' does both (the schedule runs it)")
        return run_advance(args, quiet_refusals=True)
    return code


def run_activate(args: argparse.Namespace) -> int:
    def decide(project: Project, code: str, seen: Any, now: Any) -> Any:
        inst = project.institution(code)
        assert inst is not None
        policy = service.policy_of(project, inst)
        label = args.selector
        return lambda s: lifecycle.activate(s, seen, now, policy, project.platform.ttl, label)

    return _step(args, decide, verify_first=True, publish=False)


def run_retire(args: argparse.Namespace) -> int:
    def decide(project: Project, code: str, seen: Any, now: Any) -> Any:
        inst = project.institution(code)
        assert inst is not None
        policy = service.policy_of(project, inst)
        return lambda s: lifecycle.retire(s, now, policy, args.selector)

    return _step(args, decide, verify_first=False)


def run_advance(args: argparse.Namespace, *, quiet_refusals: bool = False) -> int:
    """The schedule: first keys, activations, retirements, rotations; then publish, and
    verify again so that a key published now counts its gate from now."""
    started = _start(args, args.codes)
    if started is None:
        return EXIT_ERROR
    servers, project, keys = started
    if keys.store is None:
        return EXIT_OK
    codes = list(args.codes) or [i.code for i in service.keyed(project)]
    now = clock.now()
    try:
        seen = _verify_keys(project, codes, servers, args.timeout)
        outcome = service.advance_all(project, keys.store, keys.states, seen, now, codes=codes)
        _say(outcome)
        if outcome.publishes(keys.states):
            if not _publish(project, outcome.states, codes):
                return EXIT_ERROR
            # What was just published starts its gate (or activates, for a first key) now.
            project = service.attach(project, outcome.states)
            seen = _verify_keys(project, codes, servers, args.timeout)
            again = service.advance_all(project, keys.store, outcome.states, seen, now,
                                        codes=codes)
            _say(again)
            if again.publishes(outcome.states) and not _publish(project, again.states, codes):
                return EXIT_ERROR
            outcome = Outcome(again.states, outcome.generated + again.generated,
                              again.refusals, outcome.changed + again.changed)
    except StoreError as exc:
        print(f"provisioner: key store: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for r in outcome.refusals:
        if not quiet_refusals:
            print(f"waiting: {r}")
        if _record is not None:
            _record["waiting"].append(_refusal_json(r))
    print(f"advance: {len(codes)} institution(s), {len(set(outcome.changed))} changed, "
          f"{len(outcome.generated)} key(s) generated")
    return EXIT_OK


# --- signing ----------------------------------------------------------------------------------


def run_signing(args: argparse.Namespace) -> int:
    started = _start(args, args.codes)
    if started is None:
        return EXIT_ERROR
    servers, project, keys = started
    assert keys.store is not None
    codes = list(args.codes) or [i.code for i in service.keyed(project)]
    chosen = project if not args.codes else _narrow(project, codes)
    seen = _verify_keys(project, codes, servers, args.timeout)
    try:
        entries, left = signing.signing_entries(chosen, keys.states, seen, keys.store)
    except StoreError as exc:
        print(f"provisioner: key store: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for x in left:
        print(f"keys: {x}", file=sys.stderr)
    if args.format == "json":
        print(signing.to_json(entries, left))
        return EXIT_OK
    return _opendkim(args, keys.store, entries)


def _narrow(project: Project, codes: Sequence[str]) -> Project:
    from dataclasses import replace

    return replace(project, institutions=tuple(i for i in project.institutions
                                               if i.code in set(codes)), _records=None)


def _opendkim(args: argparse.Namespace, store: KeyStore,
              entries: Sequence[signing.SigningEntry]) -> int:
    from provisioner.keys.store import LocalStore

    files = isinstance(store, LocalStore)
    unsafe = [e.key for e in entries if any(c in e.key for c in " \t:#,")] if files else []
    if unsafe and not args.output:
        print(f"provisioner: the key store's path {unsafe[0]!r} holds a space, ':', '#' or "
              "',', which OpenDKIM's KeyTable cannot carry: give --output DIR", file=sys.stderr)
        return EXIT_ERROR
    if not args.output:
        if not files:
            print("provisioner: the key store is not files: give --output DIR, where the "
                  "private keys are written for OpenDKIM (0600)", file=sys.stderr)
            return EXIT_ERROR
        keytable, table = signing.opendkim_tables(entries, lambda e: e.key)
        print("# KeyTable\n" + keytable + "# SigningTable (refile:)\n" + table, end="")
        return EXIT_OK
    out = Path(args.output)
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The output is what a signing host installs: its own copy of each key (0600), so the
        # OpenDKIM user can be given it (chown) without touching the store.
        keydir = out / "keys"
        keydir.mkdir(mode=0o700, exist_ok=True)
        paths: dict[str, str] = {}
        for e in entries:
            path = keydir / f"{e.key_id}.pem"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(store.read_private(e.institution, e.key_id))
            paths[e.key_id] = str(path.resolve())
        keytable, table = signing.opendkim_tables(entries, lambda e: paths.get(e.key_id, e.key))
        (out / "KeyTable").write_text(keytable, encoding="utf-8")
        (out / "SigningTable").write_text(table, encoding="utf-8")
    except (OSError, StoreError) as exc:
        print(f"provisioner: cannot write {out}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote {out / 'KeyTable'} and {out / 'SigningTable'}: {len(entries)} domain(s); "
          f"OpenDKIM: KeyTable file:{out / 'KeyTable'}, SigningTable refile:"
          f"{out / 'SigningTable'}")
    return EXIT_OK


# --- test -------------------------------------------------------------------------------------


def run_test(args: argparse.Namespace) -> int:
    started = _start(args, [args.code])
    if started is None:
        return EXIT_ERROR
    servers, project, keys = started
    assert keys.store is not None
    state = keys.states[args.code]
    slot = state.signing
    if slot is None or slot.key is None:
        print(f"provisioner: {args.code}: no selector signs yet ({_summary(state)}); "
              "'provisioner keys advance' activates a key once it verifies", file=sys.stderr)
        return EXIT_CHANGES
    selector = next(s.name for s in project.platform.selectors
                    if s.target_label(args.code) == slot.label)
    domains = signing.domains_to_test(project, args.code, args.domain)
    if not domains:
        print(f"provisioner: {args.code} has no DKIM sender domain "
              f"{'among ' + ', '.join(args.domain) if args.domain else ''}", file=sys.stderr)
        return EXIT_ERROR
    try:
        pem = keys.store.read_private(args.code, slot.key.id)
    except StoreError as exc:
        print(f"provisioner: key store: {exc}", file=sys.stderr)
        return EXIT_ERROR
    client = DnsClient(nameservers=servers, timeout=args.timeout)
    try:
        results = [signing.sign_and_verify(d, selector, slot.key.id, pem, slot.key.algorithm,
                                           _txt_lookup(client)) for d in domains]
    finally:
        client.close()
    for r in results:
        print(r)
        if _record is not None:
            _record["results"].append({"domain": r.domain, "ok": r.ok, "detail": str(r)})
    return EXIT_OK if all(r.ok for r in results) else EXIT_CHANGES


def _txt_lookup(client: DnsClient) -> signing.TxtLookup:
    """A receiver's TXT lookup: the resolver (or --nameserver), following CNAMEs."""
    def lookup(name: str) -> bytes | None:
        servers = client.recursive_servers()
        if not servers:
            return None
        at = fqdn(name)
        for _ in range(8):
            query = Query(servers[0], at, "TXT")
            answer = client.lookup_many([query])[query]
            if answer.status != NOERROR:
                return None
            if answer.values:
                return str(answer.values[0]).encode("utf-8")
            if not answer.cnames:
                return None
            at = answer.cnames[-1]
        return None

    return lookup
