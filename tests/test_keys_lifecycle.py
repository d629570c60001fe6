"""The DKIM key rotation's decisions (provisioner.keys.lifecycle), as a user lives them.

Pure unit tests: hand-built states, hand-picked datetimes, no store, no DNS, no sleep. The
story of one institution, Mosa, whose mail the platform signs with two selectors
(``sel1-mosa``, ``sel2-mosa``): onboarding, first activation, a scheduled rotation through its
propagation gate, the grace period and the retention, and an emergency rotation of a leaked key.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from provisioner.keys import lifecycle
from provisioner.keys.lifecycle import NeedKey, Observation, Step
from provisioner.keys.policy import KeyPolicy, KeySpec
from provisioner.keys.state import (
    InstitutionKeys,
    KeyInfo,
    Slot,
    StateError,
    Status,
    from_json,
)

CODE = "mosa"
LABELS = ("sel1-mosa", "sel2-mosa")
SEL1, SEL2 = LABELS
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # Mosa's first apply
TTL = 300  # the platform's record TTL: the gate is then the 4 hour minimum
POLICY = KeyPolicy()  # rotation 180d, gate max(ttl, 4h), grace 96h, retention 7d
SPEC = POLICY.spec
GATE = POLICY.gate(TTL)
DOMAINS = ("mosamuseum.com", "shop.mosamuseum.com")


# --- helpers ----------------------------------------------------------------------------------


def key_for(need: NeedKey, when: datetime) -> KeyInfo:
    """What the caller's key generation would hand back for ``need`` (a fake public half)."""
    return KeyInfo(need.key_id, need.spec.algorithm, need.spec.bits, f"PUB/{need.key_id}=", when)


def place_all(step: Step, when: datetime) -> InstitutionKeys:
    """Generate (fake) and place every key a step needs, as the service does."""
    state = step.state
    for need in step.needs:
        state = lifecycle.place(state, need, key_for(need, when), when)
    return state


def verified(*failing: str, key_ok: bool = True, detail: str = "") -> Observation:
    """What DNS shows of one selector's chain: the key record, and each sender domain's CNAME
    (the ``failing`` ones do not lead to it)."""
    return Observation(key_ok, detail, tuple(
        (d, d not in failing, "nxdomain/no-cname: no CNAME yet" if d in failing else "")
        for d in DOMAINS))


def everywhere(**per_label: Observation) -> dict[str, Observation]:
    """Observations for both selectors: all verified unless given."""
    return {label: per_label.get(label.replace("-", "_"), verified()) for label in LABELS}


def new_state() -> InstitutionKeys:
    return InstitutionKeys.new(CODE, LABELS)


def onboarded(when: datetime = T0) -> InstitutionKeys:
    """Both selectors hold their first key, published, nothing signs."""
    return place_all(lifecycle.onboard(new_state(), SPEC), when)


def signing_on_sel1(when: datetime = T0) -> InstitutionKeys:
    """Onboarded at ``when``, sel1 signing from ``when`` (first activation), sel2 a spare."""
    step = lifecycle.activate(onboarded(when), everywhere(), when, POLICY, TTL)
    assert not step.refusals
    return step.state


def rotated_to_sel2(rotated_at: datetime) -> InstitutionKeys:
    """sel1 signs; a rotation put a new key (sel2-mosa.2) on sel2 at ``rotated_at``."""
    step = lifecycle.rotate(signing_on_sel1(), rotated_at, POLICY, SPEC, reason="test")
    assert [n.key_id for n in step.needs] == ["sel2-mosa.2"]
    return place_all(step, rotated_at)


def switched(live_at: datetime) -> InstitutionKeys:
    """The rotation's key went live at ``live_at`` and signing moved to it after the gate:
    sel2 signs, sel1 stands by from ``live_at + GATE``."""
    state = rotated_to_sel2(live_at)
    state = lifecycle.activate(state, everywhere(), live_at, POLICY, TTL).state  # gate starts
    step = lifecycle.activate(state, everywhere(), live_at + GATE, POLICY, TTL)
    assert not step.refusals
    return step.state


def codes(step: Step) -> list[str]:
    return [r.code for r in step.refusals]


def statuses(state: InstitutionKeys) -> tuple[Status, ...]:
    return tuple(s.status for s in state.slots)


# --- onboarding -------------------------------------------------------------------------------


def test_onboarding_needs_one_key_per_empty_selector_and_none_once_keyed() -> None:
    step = lifecycle.onboard(new_state(), SPEC)
    assert [(n.label, n.key_id, n.step, n.spec) for n in step.needs] == [
        (SEL1, "sel1-mosa.1", "generate", SPEC),
        (SEL2, "sel2-mosa.1", "generate", SPEC),
    ]
    assert all(n.reason for n in step.needs)
    assert not step.refusals

    keyed = place_all(step, T0)
    assert lifecycle.onboard(keyed, SPEC).needs == ()


def test_onboarding_uses_the_institutions_key_spec() -> None:
    ed = KeySpec.of("ed25519")
    step = lifecycle.onboard(new_state(), ed)
    assert {n.spec for n in step.needs} == {ed}
    state = place_all(step, T0)
    assert {s.algorithm for s in state.slots} == {"ed25519"}
    assert {s.key.spec for s in state.slots if s.key} == {"ed25519"}


def test_a_selector_that_had_a_key_is_not_onboarded_again() -> None:
    """Released after a revocation it is empty again, but its generation says it had keys:
    onboarding is for the institution's first keys only."""
    state = replace(new_state(), slots=(Slot(SEL1, Status.EMPTY, T0, None, 3), Slot(SEL2)))
    assert [n.key_id for n in lifecycle.onboard(state, SPEC).needs] == ["sel2-mosa.1"]


def test_place_makes_a_slot_published_and_records_it() -> None:
    need = lifecycle.onboard(new_state(), SPEC).needs[0]
    key = key_for(need, T0)
    state = lifecycle.place(new_state(), need, key, T0)
    slot = state.slot(SEL1)
    assert slot.status is Status.PUBLISHED
    assert (slot.since, slot.key, slot.generation, slot.signed) == (T0, key, 1, False)
    assert slot.live_since is None
    assert slot.published == key.public
    assert state.slot(SEL2).published is None  # never had a key: no record at all
    assert state.signing is None
    assert state.rotating_to is None  # onboarding is not a rotation
    [event] = state.history
    assert (event.at, event.step, event.selector, event.before, event.after, event.key) == (
        T0, "generate", SEL1, Status.EMPTY, Status.PUBLISHED, "sel1-mosa.1")
    assert event.reason == need.reason


# --- first activation -------------------------------------------------------------------------


def test_first_activation_needs_the_key_record_verified() -> None:
    obs = everywhere(sel1_mosa=verified(key_ok=False, detail="TXT missing on ns2"))
    step = lifecycle.activate(onboarded(), obs, T0, POLICY, TTL)
    assert codes(step) == ["keys.not-verified"]
    assert "TXT missing on ns2" in step.refusals[0].message
    assert step.refusals[0].until is None  # time alone does not fix DNS
    assert step.state.signing is None


def test_first_activation_needs_at_least_one_domain() -> None:
    obs = everywhere(sel1_mosa=verified(*DOMAINS))
    step = lifecycle.activate(onboarded(), obs, T0, POLICY, TTL)
    assert codes(step) == ["keys.not-verified"]
    assert step.state.signing is None

    no_domains = {SEL1: Observation(True, "", ()), SEL2: Observation(True, "", ())}
    step = lifecycle.activate(onboarded(), no_domains, T0, POLICY, TTL)
    assert codes(step) == ["keys.not-verified"]
    assert "no sender domain" in step.refusals[0].message


def test_first_activation_with_one_domain_verified_and_no_gate() -> None:
    """Nothing signed before, so nothing to switch from: one verifying domain is enough (the
    others are left out of the signing configuration) and the propagation gate does not
    apply, even a long one, even though the key was published a second ago."""
    partial = verified("shop.mosamuseum.com")
    assert partial.any_ok and not partial.all_ok
    slow = replace(POLICY, propagation_gate=timedelta(days=30))
    now = T0 + timedelta(seconds=1)
    step = lifecycle.activate(onboarded(), everywhere(sel1_mosa=partial), now, slow, TTL)
    assert not step.refusals
    signing = step.state.signing
    assert signing is not None and signing.label == SEL1
    assert (signing.since, signing.signed) == (now, True)
    assert step.state.slot(SEL2).status is Status.PUBLISHED  # the spare stays a spare
    assert step.state.history[-1].step == "activate"
    assert "first key" in step.state.history[-1].reason


def test_activation_of_an_unknown_or_unpublished_selector_is_refused() -> None:
    step = lifecycle.activate(signing_on_sel1(), everywhere(), T0, POLICY, TTL, SEL1)
    assert codes(step) == ["keys.nothing-to-activate"]  # it signs already
    step = lifecycle.activate(new_state(), everywhere(), T0, POLICY, TTL)
    assert codes(step) == ["keys.nothing-to-activate"]


# --- a switch: the gate -----------------------------------------------------------------------


def test_a_switch_needs_every_domain_verified() -> None:
    rotated_at = T0 + timedelta(days=180)
    state = rotated_to_sel2(rotated_at)
    obs = everywhere(sel2_mosa=verified("shop.mosamuseum.com"))  # any_ok, not all_ok
    step = lifecycle.activate(state, obs, rotated_at + timedelta(days=1), POLICY, TTL)
    assert codes(step) == ["keys.not-verified"]
    refusal = step.refusals[0]
    assert (refusal.selector, refusal.step, refusal.institution) == (SEL2, "activate", CODE)
    assert "shop.mosamuseum.com" in refusal.message and "sel2-mosa.2" in refusal.message
    assert "shop.mosamuseum.com" in str(refusal) and "[keys.not-verified]" in str(refusal)
    assert step.state.signing is not None and step.state.signing.label == SEL1
    assert step.state.slot(SEL2).live_since is None  # the gate has not started


def test_a_switch_waits_for_the_gate_from_the_first_time_it_verified() -> None:
    rotated_at = T0 + timedelta(days=180)
    state = rotated_to_sel2(rotated_at)
    live_at = rotated_at + timedelta(minutes=10)
    step = lifecycle.activate(state, everywhere(), live_at, POLICY, TTL)
    assert codes(step) == ["keys.gate"]
    assert step.refusals[0].until == live_at + GATE == live_at + timedelta(hours=4)
    assert step.state.slot(SEL2).live_since == live_at  # remembered: the gate's start
    assert step.state.history[-1].step == "observe"

    almost = live_at + GATE - timedelta(seconds=1)
    step = lifecycle.activate(step.state, everywhere(), almost, POLICY, TTL)
    assert codes(step) == ["keys.gate"]
    assert step.refusals[0].until == live_at + GATE  # not restarted by later checks


def test_after_the_gate_signing_moves_and_the_previous_signer_stands_by() -> None:
    rotated_at = T0 + timedelta(days=180)
    live_at = rotated_at + timedelta(minutes=10)
    state = lifecycle.activate(rotated_to_sel2(rotated_at), everywhere(), live_at, POLICY,
                               TTL).state
    now = live_at + GATE
    step = lifecycle.activate(state, everywhere(), now, POLICY, TTL)
    assert not step.refusals
    new, old = step.state.slot(SEL2), step.state.slot(SEL1)
    assert (new.status, new.since, new.signed) == (Status.SIGNING, now, True)
    assert (old.status, old.since) == (Status.STANDBY, now)
    assert old.key is not None and old.published == old.key.public  # mail in transit verifies
    assert step.state.rotating_to is None
    assert [(e.selector, e.before, e.after) for e in step.state.history[-2:]] == [
        (SEL1, Status.SIGNING, Status.STANDBY), (SEL2, Status.PUBLISHED, Status.SIGNING)]


def test_a_switch_that_stops_verifying_during_the_gate_is_refused() -> None:
    rotated_at = T0 + timedelta(days=180)
    state = lifecycle.activate(rotated_to_sel2(rotated_at), everywhere(), rotated_at, POLICY,
                               TTL).state
    broken = everywhere(sel2_mosa=verified("mosamuseum.com"))
    step = lifecycle.activate(state, broken, rotated_at + GATE, POLICY, TTL)
    assert codes(step) == ["keys.not-verified"]
    assert "mosamuseum.com" in step.refusals[0].message


# --- rotate -----------------------------------------------------------------------------------


def test_rotate_refused_while_nothing_signs() -> None:
    step = lifecycle.rotate(onboarded(), T0, POLICY, SPEC)
    assert codes(step) == ["keys.nothing-signs"]
    assert step.needs == ()


def test_rotate_replaces_a_never_signed_spare_and_never_the_signing_selector() -> None:
    now = T0 + timedelta(days=1)
    state = signing_on_sel1()
    step = lifecycle.rotate(state, now, POLICY, SPEC, reason="customer asked")
    assert not step.refusals
    [need] = step.needs
    assert (need.label, need.key_id, need.step, need.reason) == (
        SEL2, "sel2-mosa.2", "rotate", "customer asked")
    placed = lifecycle.place(step.state, need, key_for(need, now), now)
    assert placed.rotating_to == SEL2
    assert placed.slot(SEL1) == state.slot(SEL1)  # the signing selector is untouched
    assert placed.history[-1].before is Status.PUBLISHED  # the spare, replaced


def test_rotate_never_targets_the_signing_selector_whatever_the_other_one_holds() -> None:
    now = T0 + timedelta(days=1)
    base = signing_on_sel1()
    other = base.slot(SEL2)
    assert other.key is not None
    variants = [
        replace(other, signed=True),  # a published key that signed once: busy
        replace(other, status=Status.STANDBY, since=now, signed=True),
        replace(other, status=Status.RETIRING, since=now, key=None),
        replace(other, status=Status.RETIRING, since=now - POLICY.retention, key=None),
        replace(other, status=Status.EMPTY, since=now, key=None),
    ]
    for slot in variants:
        state = replace(base, slots=(base.slot(SEL1), slot))
        for emergency in (False, True):
            step = lifecycle.rotate(state, now, POLICY, SPEC, emergency=emergency)
            assert SEL1 not in {n.label for n in step.needs}, (slot.status, emergency)
            assert step.needs or step.refusals


def test_rotate_refused_on_a_selector_that_signed_before_and_was_not_retired() -> None:
    base = signing_on_sel1()
    state = replace(base, slots=(base.slot(SEL1), replace(base.slot(SEL2), signed=True)))
    step = lifecycle.rotate(state, T0 + timedelta(days=1), POLICY, SPEC)
    assert codes(step) == ["keys.selector-busy"]
    assert step.needs == ()


def test_rotate_refused_while_a_rotation_is_in_progress() -> None:
    rotated_at = T0 + timedelta(days=180)
    step = lifecycle.rotate(rotated_to_sel2(rotated_at), rotated_at, POLICY, SPEC)
    assert codes(step) == ["keys.rotation-in-progress"]
    assert "sel2-mosa.2" in step.refusals[0].message


def test_rotate_refused_on_a_standby_selector() -> None:
    live_at = T0 + timedelta(days=180)
    state = switched(live_at)
    standby_since = live_at + GATE
    step = lifecycle.rotate(state, standby_since + timedelta(hours=1), POLICY, SPEC)
    assert codes(step) == ["keys.grace"]
    refusal = step.refusals[0]
    assert refusal.selector == SEL1
    assert refusal.until == standby_since + POLICY.grace + POLICY.retention
    assert step.needs == ()


def test_rotate_refused_on_a_retiring_selector_within_retention_allowed_after() -> None:
    live_at = T0 + timedelta(days=180)
    retired_at = live_at + GATE + POLICY.grace
    state = lifecycle.retire(switched(live_at), retired_at, POLICY).state
    assert state.slot(SEL1).status is Status.RETIRING

    step = lifecycle.rotate(state, retired_at + POLICY.retention - timedelta(seconds=1),
                            POLICY, SPEC)
    assert codes(step) == ["keys.retention"]
    assert step.refusals[0].until == retired_at + POLICY.retention
    assert step.refusals[0].selector == SEL1

    step = lifecycle.rotate(state, retired_at + POLICY.retention, POLICY, SPEC)
    assert not step.refusals
    assert [(n.label, n.key_id) for n in step.needs] == [(SEL1, "sel1-mosa.2")]


# --- retire and release -----------------------------------------------------------------------


def test_retire_refused_before_the_grace_period_accepted_after() -> None:
    live_at = T0 + timedelta(days=180)
    state = switched(live_at)
    standby_since = live_at + GATE
    early = lifecycle.retire(state, standby_since + POLICY.grace - timedelta(seconds=1), POLICY)
    assert codes(early) == ["keys.grace"]
    assert early.refusals[0].until == standby_since + POLICY.grace
    assert early.state == state

    now = standby_since + POLICY.grace
    step = lifecycle.retire(state, now, POLICY)
    assert not step.refusals
    slot = step.state.slot(SEL1)
    assert (slot.status, slot.since, slot.key, slot.signed) == (Status.RETIRING, now, None,
                                                                 False)
    assert slot.published == ""  # p=: revoked, and the customer's CNAME does not dangle
    assert slot.algorithm == "rsa"  # the revoked record keeps its k=
    event = step.state.history[-1]
    assert (event.step, event.before, event.after, event.key) == (
        "retire", Status.STANDBY, Status.RETIRING, "sel1-mosa.1")


def test_retire_refused_on_the_signing_selector() -> None:
    step = lifecycle.retire(signing_on_sel1(), T0 + timedelta(days=400), POLICY, SEL1)
    assert codes(step) == ["keys.signing"]
    assert step.state.slot(SEL1).status is Status.SIGNING


def test_retire_with_nothing_standing_by() -> None:
    step = lifecycle.retire(signing_on_sel1(), T0 + timedelta(days=1), POLICY)
    assert codes(step) == ["keys.nothing-to-retire"]


def test_release_moves_a_revoked_selector_to_empty_after_retention() -> None:
    live_at = T0 + timedelta(days=180)
    retired_at = live_at + GATE + POLICY.grace
    state = lifecycle.retire(switched(live_at), retired_at, POLICY).state

    early = retired_at + POLICY.retention - timedelta(seconds=1)
    assert lifecycle.release(state, early, POLICY) == state

    now = retired_at + POLICY.retention
    released = lifecycle.release(state, now, POLICY)
    slot = released.slot(SEL1)
    assert (slot.status, slot.since, slot.key) == (Status.EMPTY, now, None)
    assert slot.published == ""  # still p=: it had a key
    assert released.slot(SEL2) == state.slot(SEL2)
    event = released.history[-1]
    assert (event.step, event.at, event.before, event.after) == (
        "release", now, Status.RETIRING, Status.EMPTY)


# --- the schedule: advance --------------------------------------------------------------------


def test_advance_takes_mosa_through_a_whole_rotation() -> None:
    """The GitLab schedule, run now and then: each run takes every step whose gate is met."""
    ok = everywhere()

    # Day 0: no keys. The first run only asks for them.
    step = lifecycle.advance(new_state(), ok, T0, POLICY, TTL, SPEC)
    assert [n.key_id for n in step.needs] == ["sel1-mosa.1", "sel2-mosa.1"]
    state = place_all(step, T0)

    # Published; one domain's CNAME is not there yet: sel1 signs at once (first key).
    partial = everywhere(sel1_mosa=verified("shop.mosamuseum.com"))
    step = lifecycle.advance(state, partial, T0 + timedelta(minutes=5), POLICY, TTL, SPEC)
    assert not step.needs and not step.refusals
    assert statuses(step.state) == (Status.SIGNING, Status.PUBLISHED)
    state = step.state
    signing_since = T0 + timedelta(minutes=5)

    # Day 179: nothing to do.
    before_due = signing_since + POLICY.rotation_interval - timedelta(seconds=1)
    step = lifecycle.advance(state, ok, before_due, POLICY, TTL, SPEC)
    assert not step.needs and not step.refusals
    assert statuses(step.state) == (Status.SIGNING, Status.PUBLISHED)
    state = step.state

    # Day 180: the signing key is due; a new key on sel2 (replacing the never-used spare).
    due = signing_since + POLICY.rotation_interval
    step = lifecycle.advance(state, ok, due, POLICY, TTL, SPEC)
    assert [(n.label, n.key_id, n.step) for n in step.needs] == [(SEL2, "sel2-mosa.2", "rotate")]
    state = place_all(step, due)
    assert state.rotating_to == SEL2

    # It verifies; the gate starts. Waits are refusals of the step, not errors.
    live_at = due + timedelta(minutes=1)
    step = lifecycle.advance(state, ok, live_at, POLICY, TTL, SPEC)
    assert codes(step) == ["keys.gate"] and not step.needs
    assert step.refusals[0].until == live_at + GATE
    state = step.state

    # After the gate: signing moves; the old key stands by (its retirement waits the grace).
    switch_at = live_at + GATE
    step = lifecycle.advance(state, ok, switch_at, POLICY, TTL, SPEC)
    assert codes(step) == ["keys.grace"]
    assert step.refusals[0].until == switch_at + POLICY.grace
    assert statuses(step.state) == (Status.STANDBY, Status.SIGNING)
    state = step.state

    # After the grace: sel1's p= is emptied.
    step = lifecycle.advance(state, ok, switch_at + POLICY.grace, POLICY, TTL, SPEC)
    assert not step.refusals and not step.needs
    assert statuses(step.state) == (Status.RETIRING, Status.SIGNING)
    assert step.state.slot(SEL1).published == ""
    state = step.state

    # After the retention: sel1 is free again, and no new onboarding happens.
    released_at = switch_at + POLICY.grace + POLICY.retention
    step = lifecycle.advance(state, ok, released_at, POLICY, TTL, SPEC)
    assert not step.refusals and not step.needs
    assert statuses(step.state) == (Status.EMPTY, Status.SIGNING)

    # Every transition is in the audit trail, with its time and reason.
    trail = [(e.step, e.selector, e.before.value, e.after.value, e.key)
             for e in step.state.history]
    assert trail == [
        ("generate", SEL1, "empty", "published", "sel1-mosa.1"),
        ("generate", SEL2, "empty", "published", "sel2-mosa.1"),
        ("observe", SEL2, "published", "published", "sel2-mosa.1"),  # the spare verified
        ("activate", SEL1, "published", "signing", "sel1-mosa.1"),
        ("observe", SEL1, "signing", "signing", "sel1-mosa.1"),  # its last domain, later
        ("rotate", SEL2, "published", "published", "sel2-mosa.2"),
        ("observe", SEL2, "published", "published", "sel2-mosa.2"),
        ("activate", SEL1, "signing", "standby", "sel1-mosa.1"),
        ("activate", SEL2, "published", "signing", "sel2-mosa.2"),
        ("retire", SEL1, "standby", "retiring", "sel1-mosa.1"),
        ("release", SEL1, "retiring", "empty", None),
    ]
    times = [e.at for e in step.state.history]
    assert times == sorted(times)
    assert times[0] == T0 and times[-1] == released_at
    assert times[2] == times[3] == signing_since
    assert times[4] == before_due
    assert times[7] == times[8] == switch_at
    assert all(e.reason for e in step.state.history)
    assert "scheduled rotation" in step.state.history[5].reason


def test_advance_waits_on_a_switch_whose_domains_do_not_all_verify() -> None:
    due = T0 + POLICY.rotation_interval
    state = rotated_to_sel2(due)
    obs = everywhere(sel2_mosa=verified("shop.mosamuseum.com"))
    step = lifecycle.advance(state, obs, due + timedelta(days=3), POLICY, TTL, SPEC)
    assert codes(step) == ["keys.not-verified"]
    assert statuses(step.state) == (Status.SIGNING, Status.PUBLISHED)


# --- an emergency -----------------------------------------------------------------------------


@pytest.mark.parametrize("idle", ["standby", "retiring"])
def test_emergency_rotation_skips_the_idle_selectors_waits(idle: str) -> None:
    """sel2 signs; its key leaked. sel1 still stands by (grace) or is revoked (retention):
    an emergency takes it anyway."""
    live_at = T0 + timedelta(days=180)
    standby_since = live_at + GATE
    state = switched(live_at)
    now = standby_since + timedelta(hours=1)
    if idle == "retiring":
        now = standby_since + POLICY.grace + timedelta(hours=1)
        state = lifecycle.retire(state, standby_since + POLICY.grace, POLICY).state
    assert lifecycle.rotate(state, now, POLICY, SPEC).refusals  # normally refused

    step = lifecycle.rotate(state, now, POLICY, SPEC, emergency=True)
    assert not step.refusals
    assert [(n.label, n.key_id) for n in step.needs] == [(SEL1, "sel1-mosa.2")]
    assert step.state.emergency == SEL2
    assert "emergency" in step.needs[0].reason
    placed = place_all(step, now)
    assert (placed.rotating_to, placed.emergency) == (SEL1, SEL2)
    assert lifecycle.rotate(placed, now, POLICY, SPEC, emergency=True).needs == ()  # once

    # Not verified yet: the leaked key keeps signing (nothing else can).
    unverified = everywhere(sel1_mosa=verified(key_ok=False))
    waiting = lifecycle.advance(placed, unverified, now + timedelta(minutes=1), POLICY, TTL, SPEC)
    assert codes(waiting) == ["keys.not-verified"]
    assert waiting.state.signing is not None and waiting.state.signing.label == SEL2

    # It verifies: in one advance, sel1 signs with no gate and the leaked key is revoked.
    at = now + timedelta(minutes=2)
    step = lifecycle.advance(waiting.state, everywhere(), at, POLICY, TTL, SPEC)
    assert not step.refusals and not step.needs
    new, leaked = step.state.slot(SEL1), step.state.slot(SEL2)
    assert (new.status, new.since, new.key and new.key.id) == (Status.SIGNING, at,
                                                               "sel1-mosa.2")
    assert (leaked.status, leaked.since, leaked.key, leaked.published) == (
        Status.RETIRING, at, None, "")
    assert (step.state.emergency, step.state.rotating_to) == (None, None)
    last = step.state.history[-4:]
    assert [(e.step, e.selector, e.after) for e in last] == [
        ("observe", SEL1, Status.PUBLISHED),
        ("activate", SEL2, Status.STANDBY),
        ("activate", SEL1, Status.SIGNING),
        ("retire", SEL2, Status.RETIRING),
    ]
    assert all(e.at == at for e in last)
    assert "emergency" in last[2].reason and "emergency" in last[3].reason


# --- policy and spec --------------------------------------------------------------------------


def test_propagation_gate_defaults_to_the_ttl_with_a_four_hour_floor() -> None:
    policy = KeyPolicy()
    assert policy.gate(300) == timedelta(hours=4)
    assert policy.gate(4 * 3600) == timedelta(hours=4)
    assert policy.gate(86400) == timedelta(days=1)
    explicit = KeyPolicy(propagation_gate=timedelta(minutes=30))
    assert explicit.gate(86400) == timedelta(minutes=30)  # an explicit value wins, both ways
    assert KeyPolicy(propagation_gate=timedelta(days=2)).gate(300) == timedelta(days=2)


def test_rsa_1024_is_refused() -> None:
    with pytest.raises(ValueError, match="1024"):
        KeySpec("rsa", 1024)
    with pytest.raises(ValueError):
        KeySpec.of("rsa", 1024)
    with pytest.raises(ValueError):
        KeySpec("dsa", 2048)
    assert str(KeySpec.of("rsa", 4096)) == "rsa-4096"
    assert KeySpec.of("ed25519") == KeySpec("ed25519", 256)


# --- the state's JSON -------------------------------------------------------------------------


def _story_states() -> list[InstitutionKeys]:
    live_at = T0 + timedelta(days=180)
    switched_state = switched(live_at)
    retired = lifecycle.retire(switched_state, live_at + GATE + POLICY.grace, POLICY).state
    emergency = lifecycle.rotate(switched_state, live_at + GATE, POLICY, SPEC,
                                 emergency=True, reason="leaked in a ticket")
    ed = place_all(lifecycle.onboard(new_state(), KeySpec.of("ed25519")), T0)
    return [new_state(), onboarded(), rotated_to_sel2(live_at), switched_state, retired,
            place_all(emergency, live_at + GATE), replace(ed, version=41)]


def test_state_json_round_trip_is_identity() -> None:
    for state in _story_states():
        data = state.to_json()
        assert from_json(data) == state
        assert from_json(json.loads(json.dumps(data))) == state  # through text, as stored
        assert json.loads(json.dumps(data)) == data


GARBAGE: list[Any] = [
    None, 42, "state", [], {},
    {"format": 2, "institution": "mosa", "version": 1, "selectors": {}},
    {"format": 1},
    {"format": 1, "institution": "mosa", "version": "one", "selectors": {}},
    {"format": 1, "institution": "mosa", "version": 1, "selectors": []},
    {"format": 1, "institution": "mosa", "version": 1, "selectors": {"sel1-mosa": None}},
    {"format": 1, "institution": "mosa", "version": 1,
     "selectors": {"sel1-mosa": {"status": "burning"}}},
    {"format": 1, "institution": "mosa", "version": 1,
     "selectors": {"sel1-mosa": {"status": "empty", "since": "yesterday"}}},
    {"format": 1, "institution": "mosa", "version": 1,
     "selectors": {"sel1-mosa": {"status": "published", "key": {"id": "sel1-mosa.1"}}}},
    {"format": 1, "institution": "mosa", "version": 1, "selectors": {}, "history": [7]},
]


@pytest.mark.parametrize("data", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_does_not_read_as_a_state(data: Any) -> None:
    with pytest.raises(StateError):
        from_json(data)


KEY_JSON = {"id": "sel1-mosa.1", "algorithm": "rsa", "bits": 2048, "public": "PUB="}
NULL_TIMES: list[Any] = [
    {"format": 1, "institution": "mosa", "version": 1, "selectors": {
        "sel1-mosa": {"status": "published", "key": {**KEY_JSON, "created": None}}}},
    {"format": 1, "institution": "mosa", "version": 1, "selectors": {}, "history": [
        {"at": None, "step": "generate", "selector": "sel1-mosa", "from": "empty",
         "to": "published", "key": None, "reason": "x"}]},
]


@pytest.mark.parametrize("data", NULL_TIMES, ids=["key-created-null", "event-at-null"])
def test_a_null_time_does_not_read_as_a_state(data: Any) -> None:
    with pytest.raises(StateError):
        from_json(data)
