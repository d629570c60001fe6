"""The key lifecycle's effects: read the states, make and store keys, record transitions, and
lay the published keys into the project so that plan, apply, verify and drift see them.

The decisions are :mod:`provisioner.keys.lifecycle`'s; this module performs them against a
:class:`~provisioner.keys.store.KeyStore`. Every write of a state is a compare and swap: when
another run got there first (:class:`~provisioner.keys.store.Conflict`), the institution's
state is read again and the decision made again from it, so racing runs converge on one key
per selector.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType

from provisioner.config import Project
from provisioner.keys import crypto, lifecycle
from provisioner.keys.lifecycle import NeedKey, Observation, Observations, Refusal, Step
from provisioner.keys.policy import KeyPolicy
from provisioner.keys.state import InstitutionKeys, KeyInfo
from provisioner.keys.store import Conflict, KeyStore, StoreError, open_store
from provisioner.model import Institution, Platform, Record, Role
from provisioner.verify.results import Report, Status

log = logging.getLogger(__name__)
RETRIES = 5


def store_of(platform: Platform) -> KeyStore:
    return open_store(platform.keys.store, platform.dkim_zone)


def labels_of(platform: Platform, code: str) -> tuple[str, ...]:
    return tuple(s.target_label(code) for s in platform.selectors)


def keyed(project: Project) -> list[Institution]:
    """The institutions whose keys the product owns: DKIM on, and the DKIM zone managed."""
    if not project.platform.manages_keys:
        return []
    return [i for i in project.institutions if i.uses_dkim]


def policy_of(project: Project, inst: Institution) -> KeyPolicy:
    return project.platform.keys.for_institution(inst.key_spec)


def read(project: Project, store: KeyStore, codes: Iterable[str] | None = None
         ) -> dict[str, InstitutionKeys]:
    """The states of the keyed institutions (of ``codes``), over the platform's selectors;
    one never keyed gets a new, empty state (version 0, not stored yet)."""
    wanted = [i for i in keyed(project) if codes is None or i.code in set(codes)]
    if not wanted:
        return {}
    stored = store.read_states(None if codes is None else [i.code for i in wanted])
    out = {}
    for inst in wanted:
        labels = labels_of(project.platform, inst.code)
        state = stored.get(inst.code)
        out[inst.code] = (state.with_labels(labels) if state is not None
                          else InstitutionKeys.new(inst.code, labels))
    return out


def attach(project: Project, states: Mapping[str, InstitutionKeys]) -> Project:
    """The project with its platform holding the published keys, so that the expansion has
    every key record (``p=`` for a revoked one) and verify compares live keys with them."""
    keys: dict[str, str] = dict(project.platform.dkim_public_keys)
    kinds: dict[str, str] = dict(project.platform.dkim_key_types)
    for state in states.values():
        for slot in state.slots:
            published = slot.published
            if published is None:
                continue
            keys[slot.label] = published
            if slot.algorithm != "rsa":
                kinds[slot.label] = slot.algorithm
    platform = replace(project.platform, dkim_public_keys=MappingProxyType(keys),
                       dkim_key_types=MappingProxyType(kinds))
    return replace(project, platform=platform, _records=None)


@dataclass(frozen=True, slots=True)
class Pending:
    """Keys an institution needs before its records can be complete: "keys to generate"."""

    institution: str
    needs: tuple[NeedKey, ...]

    def __str__(self) -> str:
        specs = sorted({str(n.spec) for n in self.needs})
        return ", ".join([*(n.label for n in self.needs), *specs])


def pending(project: Project, states: Mapping[str, InstitutionKeys]) -> list[Pending]:
    out = []
    for inst in keyed(project):
        state = states.get(inst.code)
        if state is None:
            continue
        step = lifecycle.onboard(state, policy_of(project, inst).spec)
        if step.needs:
            out.append(Pending(inst.code, step.needs))
    return out


# --- performing steps -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a run did: the states after it, the keys it made, the refusals it met."""

    states: Mapping[str, InstitutionKeys]
    generated: tuple[tuple[str, str, str], ...] = ()  # (institution, key id, spec)
    refusals: tuple[Refusal, ...] = ()
    changed: tuple[str, ...] = ()  # institutions whose state was written

    def publishes(self, before: Mapping[str, InstitutionKeys]) -> bool:
        """Whether a key record changes (a new key, a revoked one) for some institution."""
        return any(_published(self.states[c]) != _published(before[c])
                   for c in self.changed if c in before)


def _published(state: InstitutionKeys) -> tuple[str | None, ...]:
    return tuple(s.published for s in state.slots)


Decide = Callable[[InstitutionKeys], Step]


def perform(project: Project, store: KeyStore, states: Mapping[str, InstitutionKeys],
            decide: Mapping[str, Decide], now: datetime, *, jobs: int | None = None) -> Outcome:
    """Run ``decide[code]`` on each institution's state, make the keys the steps need (all at
    once, on every CPU), store them, place them, and write the states that changed."""
    current = dict(states)
    steps = {code: fn(current[code]) for code, fn in decide.items() if code in current}
    generated: list[tuple[str, str, str]] = []
    changed: list[str] = []
    made = _make_keys(store, [(c, n) for c, s in steps.items() for n in s.needs], now, jobs)
    refusals: list[Refusal] = []
    for code, step in steps.items():
        for attempt in range(RETRIES):
            state = step.state
            for need in step.needs:
                key, fresh = made.get((code, need.key_id)) or _make_one(store, code, need, now)
                state = lifecycle.place(state, need, key, now)
                if fresh:
                    generated.append((code, key.id, key.spec))
            if state == current[code]:
                break
            try:
                current[code] = store.write_state(state)
                changed.append(code)
                break
            except Conflict:
                if attempt == RETRIES - 1:
                    raise
                log.info("key state of %s changed under this run; deciding again", code)
                again = store.read_states([code]).get(code)
                labels = labels_of(project.platform, code)
                current[code] = (again.with_labels(labels) if again is not None
                                 else InstitutionKeys.new(code, labels))
                step = decide[code](current[code])
        refusals.extend(step.refusals)
    return Outcome(MappingProxyType(current), tuple(generated), tuple(refusals), tuple(changed))


def _stored_key(store: KeyStore, code: str, need: NeedKey, pem: bytes, now: datetime,
                public: str | None = None) -> tuple[KeyInfo, bool]:
    """Store ``pem`` under the need's id; when a key is already there (a run that died before
    recording it, or a racing run), that key is used instead: one key per id, ever.
    ``public``: the new key's ``p=``, when its maker computed it (loading an RSA key back to
    compute it costs as much as a tenth of making one)."""
    fresh = store.create_private(code, need.key_id, pem)
    if fresh and public is not None:
        return KeyInfo(need.key_id, need.spec.algorithm, need.spec.bits, public, now), True
    if not fresh:
        pem = store.read_private(code, need.key_id)
    try:
        spec = crypto.spec_of(pem)
        public = crypto.public_of(pem)
    except ValueError as exc:
        raise StoreError(f"{store.location}: key {need.key_id} does not load: {exc}") from None
    return KeyInfo(need.key_id, spec.algorithm, spec.bits, public, now), fresh


def _make_one(store: KeyStore, code: str, need: NeedKey, now: datetime
              ) -> tuple[KeyInfo, bool]:
    pem, _ = crypto.generate(need.spec)
    return _stored_key(store, code, need, pem, now)


def _make_keys(store: KeyStore, needs: Sequence[tuple[str, NeedKey]], now: datetime,
               jobs: int | None) -> dict[tuple[str, str], tuple[KeyInfo, bool]]:
    out: dict[tuple[str, str], tuple[KeyInfo, bool]] = {}
    pairs = crypto.generate_many((n.spec for _, n in needs), jobs)
    for (code, need), (pem, public) in zip(needs, pairs, strict=True):
        out[(code, need.key_id)] = _stored_key(store, code, need, pem, now, public)
    return out


def onboard_all(project: Project, store: KeyStore, states: Mapping[str, InstitutionKeys],
                now: datetime, *, jobs: int | None = None,
                only: Iterable[str] | None = None) -> Outcome:
    """First keys for every keyed institution that has none (of ``only``, when given: a
    scoped apply makes the keys its plan announced, not every institution's)."""
    wanted = None if only is None else set(only)
    decide: dict[str, Decide] = {}
    for item in pending(project, states):
        if wanted is not None and item.institution not in wanted:
            continue
        inst = project.institution(item.institution)
        assert inst is not None
        spec = policy_of(project, inst).spec
        decide[item.institution] = lambda s, spec=spec: lifecycle.onboard(s, spec)  # type: ignore[misc]
    if not decide:
        return Outcome(MappingProxyType(dict(states)))
    return perform(project, store, states, decide, now, jobs=jobs)


# --- what live DNS showed ---------------------------------------------------------------------


def observations(project: Project, report: Report) -> dict[str, dict[str, Observation]]:
    """Per institution and selector label, what the DKIM checks of ``report`` showed: the key
    record on every server of the DKIM zone, and each domain's CNAME chain on every server of
    its zone. A chain the report did not check is not verified; an institution the report
    does not mention at all is left out."""
    records = project.records()
    by_name: dict[str, tuple[str, str, str | None]] = {}  # fqdn -> (code, label, domain)
    for r in records:
        if r.role is Role.DKIM and r.institution:
            label = str(r.values[0]).split("._domainkey.")[0]
            by_name[r.fqdn.rstrip(".")] = (r.institution, label, r.domain)
        elif r.role is Role.DKIM_KEY and r.institution:
            by_name[r.fqdn.rstrip(".")] = (r.institution, r.name.split("._domainkey")[0], None)
    keys: dict[tuple[str, str], tuple[bool, str]] = {}
    domains: dict[tuple[str, str], list[tuple[str, bool, str]]] = {}
    for dom in report.domains:
        for check in dom.checks:
            if check.check != "dkim" or check.name not in by_name:
                continue
            code, label, domain = by_name[check.name]
            ok = check.status is Status.SUCCESS
            why = "" if ok else f"{check.status.value}/{check.reason}: {check.message}"
            if domain is None:
                keys[(code, label)] = (ok, why)
            else:
                domains.setdefault((code, label), []).append((domain, ok, why))
    out: dict[str, dict[str, Observation]] = {}
    checked = {code for code, _ in keys} | {code for code, _ in domains}
    for inst in keyed(project):
        if inst.code not in checked:
            continue  # nothing of it in the report (apply verifies the zones it changed)
        for label in labels_of(project.platform, inst.code):
            key_ok, why = keys.get((inst.code, label), (False, "the key record was not checked"))
            out.setdefault(inst.code, {})[label] = Observation(
                key_ok, why, tuple(domains.get((inst.code, label), ())))
    return out


def advance_all(project: Project, store: KeyStore, states: Mapping[str, InstitutionKeys],
                seen: Mapping[str, Observations], now: datetime, *,
                codes: Iterable[str] | None = None, jobs: int | None = None) -> Outcome:
    """The scheduled step for each institution (of ``codes``): :func:`lifecycle.advance`."""
    wanted = None if codes is None else set(codes)
    decide: dict[str, Decide] = {}
    for inst in keyed(project):
        if wanted is not None and inst.code not in wanted:
            continue
        policy = policy_of(project, inst)
        obs = seen.get(inst.code, {})
        decide[inst.code] = (lambda s, p=policy, o=obs:  # type: ignore[misc]
                             lifecycle.advance(s, o, now, p, project.platform.ttl, p.spec))
    return perform(project, store, states, decide, now, jobs=jobs)


def key_records(project: Project, codes: Iterable[str]) -> tuple[Record, ...]:
    """The records a check of these institutions' keys reads: their DKIM CNAMEs and key
    records (the verification input of activate and ``keys signing``)."""
    wanted = set(codes)
    return tuple(r for r in project.records() if r.institution in wanted
                 and r.role in (Role.DKIM, Role.DKIM_KEY))
