"""The key rotation's decisions (DESIGN §9), as pure functions of the state, what live DNS showed,
the policy and the time: ``advance(state, observations, now, ...) -> Step``.

Nothing here generates a key, reads a store or asks DNS: a step names the keys it needs
(:class:`NeedKey`), the caller makes them and calls :func:`place`; a refused step says which
precondition failed and, when time alone will fix it, when it will hold (:class:`Refusal`).

Preconditions, step by step:

- generate / rotate (a new key on the idle selector): that selector is empty, a never-used
  spare, or past its retention; an emergency skips the wait.
- activate (signing moves to it): its whole chain verifies on every authoritative server, and
  it has been live for the propagation gate; a first activation (nothing to switch from) and
  an emergency skip the gate.
- retire (the old selector's ``p=`` emptied): the grace period since signing moved away has
  passed; an emergency retires the leaked key at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from provisioner.keys.policy import KeyPolicy, KeySpec
from provisioner.keys.state import Event, InstitutionKeys, KeyInfo, Slot, Status, stamp


@dataclass(frozen=True, slots=True)
class Observation:
    """What live DNS showed of one selector's chain: ``key_ok`` when the key record in the
    DKIM zone holds the stored key on every server of that zone; ``domains``: for each sender
    domain, whether its CNAME leads to it on every server of its zone, and what was wrong."""

    key_ok: bool
    key_detail: str = ""
    domains: tuple[tuple[str, bool, str], ...] = ()

    @property
    def all_ok(self) -> bool:
        return self.key_ok and bool(self.domains) and all(ok for _, ok, _ in self.domains)

    @property
    def any_ok(self) -> bool:
        return self.key_ok and any(ok for _, ok, _ in self.domains)

    def why_not(self) -> str:
        if not self.key_ok:
            return self.key_detail or "the key record does not verify"
        if not self.domains:
            return "no sender domain of the institution uses DKIM"
        bad = [f"{d}: {why}" for d, ok, why in self.domains if not ok]
        return "; ".join(bad)


Observations = Mapping[str, Observation]  # selector label -> what DNS showed


@dataclass(frozen=True, slots=True)
class NeedKey:
    """A key to generate for ``label``, stored as ``key_id``, then :func:`place`-d."""

    label: str
    key_id: str
    spec: KeySpec
    step: str  # generate | rotate
    reason: str


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str  # keys.not-verified, keys.gate, keys.grace, keys.retention, ...
    institution: str
    step: str
    selector: str | None
    message: str
    until: datetime | None = None  # when time alone makes the precondition hold

    def __str__(self) -> str:
        when = f" (holds from {stamp(self.until)})" if self.until else ""
        where = f" {self.selector}" if self.selector else ""
        return f"{self.institution}{where}: {self.step} refused [{self.code}]: {self.message}{when}"


@dataclass(frozen=True, slots=True)
class Step:
    state: InstitutionKeys
    needs: tuple[NeedKey, ...] = ()
    refusals: tuple[Refusal, ...] = ()

    def then(self, other: Step) -> Step:
        return Step(other.state, self.needs + other.needs, self.refusals + other.refusals)


def _event(step: str, before: Slot, after: Slot, now: datetime, reason: str) -> Event:
    key = after.key.id if after.key else (before.key.id if before.key else None)
    return Event(now, step, before.label, before.status, after.status, key, reason)


def _move(state: InstitutionKeys, slot: Slot, now: datetime, step: str, reason: str,
          **changes: object) -> InstitutionKeys:
    after = replace(slot, **changes)  # type: ignore[arg-type]
    return state.put(after, _event(step, slot, after, now, reason))


def _need(slot: Slot, spec: KeySpec, step: str, reason: str) -> NeedKey:
    return NeedKey(slot.label, f"{slot.label}.{slot.generation + 1}", spec, step, reason)


# --- generate ---------------------------------------------------------------------------------


def onboard(state: InstitutionKeys, spec: KeySpec) -> Step:
    """Keys for every selector that never had one: the institution's first keys."""
    needs = tuple(_need(s, spec, "generate", "onboarding: the selector has no key yet")
                  for s in state.slots if s.generation == 0 and s.status is Status.EMPTY)
    return Step(state, needs)


def place(state: InstitutionKeys, need: NeedKey, key: KeyInfo, now: datetime) -> InstitutionKeys:
    """Put a generated key on its selector: ``published``, not signing yet."""
    slot = state.slot(need.label)
    new = _move(state, slot, now, need.step, need.reason, status=Status.PUBLISHED, since=now,
                key=key, generation=slot.generation + 1, live_since=None, signed=False,
                algorithm=key.algorithm)
    if need.step == "rotate":
        new = replace(new, rotating_to=need.label)
    return new


def rotate(state: InstitutionKeys, now: datetime, policy: KeyPolicy, spec: KeySpec, *,
           emergency: bool = False, reason: str = "") -> Step:
    """A new key on the idle selector, never on the signing one. ``emergency`` (the signing key
    leaked): skip the idle selector's waits; the new key then signs as soon as it verifies and
    the leaked one is revoked at once (:func:`advance`)."""
    code = state.institution
    signing = state.signing
    if signing is None:
        return Step(state, refusals=(Refusal(
            "keys.nothing-signs", code, "rotate", None,
            "no selector signs yet, so there is nothing to rotate away from: run "
            "'provisioner keys activate' (or apply) once the keys verify"),))
    if emergency:
        state = replace(state, emergency=signing.label)
        reason = reason or f"emergency: the key of {signing.label} is treated as leaked"
    if state.rotating_to:
        target = state.slot(state.rotating_to)
        if target.status is Status.PUBLISHED and target.key is not None:
            if emergency:
                return Step(state)  # the new key is there: it signs as soon as it verifies
            return Step(state, refusals=(Refusal(
                "keys.rotation-in-progress", code, "rotate", target.label,
                f"a rotation to {target.key.id} is in progress; it activates once its chain "
                "verifies and the gate has passed"),))
    last: Refusal | None = None
    for slot in state.slots:
        if slot.status is Status.SIGNING:
            continue
        refusal = _idle_refusal(code, slot, now, policy)
        if refusal is None or emergency:
            why = reason or (f"scheduled rotation: {signing.label} has signed since "
                             f"{stamp(signing.since or now)}")
            return Step(state, (_need(slot, spec, "rotate", why),))
        last = refusal
    return Step(state, refusals=(last,) if last else ())


def _idle_refusal(code: str, slot: Slot, now: datetime, policy: KeyPolicy) -> Refusal | None:
    """Why ``slot`` may not receive a new key now; None when it may."""
    since = slot.since or now
    if slot.status is Status.EMPTY:
        return None
    if slot.status is Status.PUBLISHED:
        if not slot.signed:
            return None  # a spare nobody ever signed with: replacing it loses nothing
        return Refusal("keys.selector-busy", code, "rotate", slot.label,
                       f"{slot.label} holds key {slot.key.id if slot.key else '?'}, which signed "
                       "before: retire it first")
    if slot.status is Status.STANDBY:
        return Refusal("keys.grace", code, "rotate", slot.label,
                       f"{slot.label} still publishes the previous key for mail in transit "
                       f"(grace {policy.grace})", since + policy.grace + policy.retention)
    if slot.status is Status.RETIRING:
        until = since + policy.retention
        if now >= until:
            return None
        return Refusal("keys.retention", code, "rotate", slot.label,
                       f"{slot.label} was revoked at {stamp(since)} and stays p= for the "
                       f"retention period", until)
    return Refusal("keys.selector-busy", code, "rotate", slot.label, f"{slot.label} signs")


# --- activate ---------------------------------------------------------------------------------


def observe(state: InstitutionKeys, observations: Observations, now: datetime
            ) -> InstitutionKeys:
    """Remember when each published key was first seen verifying everywhere: the gate's start."""
    for slot in state.slots:
        seen = observations.get(slot.label)
        if (slot.key is not None and slot.live_since is None and seen is not None
                and seen.all_ok):
            after = replace(slot, live_since=now)
            state = state.put(after, Event(now, "observe", slot.label, slot.status, slot.status,
                                           slot.key.id, "the whole chain verifies on every "
                                           "authoritative server"))
    return state


def activate(state: InstitutionKeys, observations: Observations, now: datetime,
             policy: KeyPolicy, ttl: int, label: str | None = None) -> Step:
    """Move signing to ``label`` (default: the rotation's new key, or the first published key)."""
    code = state.institution
    state = observe(state, observations, now)
    slot = _candidate(state, label)
    if slot is None or slot.key is None or slot.status is not Status.PUBLISHED:
        what = f"{label} is not a published key" if label else "no published key waits"
        return Step(state, refusals=(Refusal("keys.nothing-to-activate", code, "activate",
                                             label, what),))
    seen = observations.get(slot.label)
    previous = state.signing
    first = previous is None and not any(s.signed for s in state.slots)
    urgent = state.emergency is not None and state.emergency != slot.label
    # A first activation switches from nothing: a domain whose CNAME is not there yet is left
    # out of the signing configuration until it verifies (``keys signing``).
    ready = seen is not None and (seen.any_ok if first else seen.all_ok)
    if not ready:
        why = seen.why_not() if seen is not None else "its chain was not checked"
        return Step(state, refusals=(Refusal(
            "keys.not-verified", code, "activate", slot.label,
            f"the chain of {slot.key.id} does not verify everywhere yet: {why}"),))
    gate = policy.gate(ttl)
    live = slot.live_since or now
    if not first and not urgent and now < live + gate:
        return Step(state, refusals=(Refusal(
            "keys.gate", code, "activate", slot.label,
            f"{slot.key.id} has been live since {stamp(live)}; the propagation gate is "
            f"{gate}", live + gate),))
    if previous is not None:
        state = _move(state, previous, now, "activate",
                      f"signing moved to {slot.label}", status=Status.STANDBY, since=now)
    why = ("first key: nothing signed before" if first else
           "emergency: the leaked key is replaced" if urgent else
           f"live for {now - live} (gate {gate})")
    state = _move(state, state.slot(slot.label), now, "activate", why, status=Status.SIGNING,
                  since=now, signed=True)
    return Step(replace(state, rotating_to=None))


def _candidate(state: InstitutionKeys, label: str | None) -> Slot | None:
    if label is not None:
        return next((s for s in state.slots if s.label == label), None)
    if state.rotating_to:
        return state.slot(state.rotating_to)
    return next((s for s in state.slots if s.status is Status.PUBLISHED), None)


# --- retire -----------------------------------------------------------------------------------


def retire(state: InstitutionKeys, now: datetime, policy: KeyPolicy,
           label: str | None = None) -> Step:
    """Empty the previous selector's ``p=`` once the grace period has passed."""
    code = state.institution
    slot = (next((s for s in state.slots if s.label == label), None) if label else
            next((s for s in state.slots if s.status is Status.STANDBY), None))
    if slot is None or slot.status not in (Status.STANDBY, Status.PUBLISHED):
        if slot is not None and slot.status is Status.SIGNING:
            return Step(state, refusals=(Refusal(
                "keys.signing", code, "retire", slot.label,
                f"{slot.label} signs: rotate first, and retire it after the grace period"),))
        return Step(state, refusals=(Refusal("keys.nothing-to-retire", code, "retire", label,
                                             "no selector waits to be retired"),))
    leaked = state.emergency == slot.label
    if slot.status is Status.STANDBY and not leaked:
        until = (slot.since or now) + policy.grace
        if now < until:
            return Step(state, refusals=(Refusal(
                "keys.grace", code, "retire", slot.label,
                f"signing moved away from {slot.label} at {stamp(slot.since or now)}; the "
                f"grace period is {policy.grace}", until),))
    if slot.status is Status.PUBLISHED and slot.signed and not leaked:
        return Step(state, refusals=(Refusal("keys.nothing-to-retire", code, "retire",
                                             slot.label, f"{slot.label} is not standing by"),))
    why = ("emergency: the leaked key is revoked" if leaked else
           "a spare key, never used, withdrawn" if slot.status is Status.PUBLISHED else
           f"grace period of {policy.grace} passed")
    state = _move(state, slot, now, "retire", why, status=Status.RETIRING, since=now, key=None,
                  live_since=None, signed=False)
    if leaked:
        state = replace(state, emergency=None)
    if state.rotating_to == slot.label:
        state = replace(state, rotating_to=None)
    return Step(state)


def release(state: InstitutionKeys, now: datetime, policy: KeyPolicy) -> InstitutionKeys:
    """Revoked selectors past their retention become empty (free for a new key)."""
    for slot in state.slots:
        if slot.status is Status.RETIRING and now >= (slot.since or now) + policy.retention:
            state = _move(state, slot, now, "release",
                          f"retention of {policy.retention} passed", status=Status.EMPTY,
                          since=now)
    return state


# --- the schedule -----------------------------------------------------------------------------


def advance(state: InstitutionKeys, observations: Observations, now: datetime,
            policy: KeyPolicy, ttl: int, spec: KeySpec) -> Step:
    """Move the institution along wherever its gates are met: first keys, activation of a
    waiting key, retirement after the grace, release after the retention, and a rotation once
    the signing key is older than the rotation interval. Refusals here are waits, not errors."""
    state = release(observe(state, observations, now), now, policy)
    step = onboard(state, spec)
    if step.needs:
        return step
    waiting = next((s for s in state.slots if s.status is Status.PUBLISHED and s.key), None)
    if waiting is not None and (state.signing is None or state.rotating_to == waiting.label):
        step = step.then(activate(step.state, observations, now, policy, ttl, waiting.label))
    if any(s.status is Status.STANDBY for s in step.state.slots):
        done = retire(step.state, now, policy)
        step = Step(done.state, step.needs, step.refusals + tuple(
            r for r in done.refusals if r.code != "keys.nothing-to-retire"))
    signing = step.state.signing
    if (signing is not None and step.state.rotating_to is None
            and now >= (signing.since or now) + policy.rotation_interval):
        step = step.then(rotate(step.state, now, policy, spec))
    return step


def age(slot: Slot, now: datetime) -> timedelta | None:
    return None if slot.key is None else now - slot.key.created
