"""The guard: refuse plans that touch what the product does not own (DESIGN §5).

:class:`Ownership` should make such plans impossible; the guard checks the plan octoDNS actually
computed, independently, because a provider quirk or another processor could still produce one.
octoDNS's own safety check (``Plan.raise_if_unsafe``, 30 % of updates or deletes) skips zones
under 10 records, which is every customer zone, so the guard applies its own rules to every zone:

- no create, update or delete of a (name, type) set the product does not own;
- in a shared SPF set, every customer value and every customer SPF term stays;
- deleting more than :data:`DELETE_THRESHOLD` of the product's own sets in a zone (a removed
  declaration, a broken checkout) needs ``--force``;
- an institution zone the target does not have is an error, never created on the fly
  (octodns-route53 and octodns-powerdns would create it; it would not be delegated).

It plugs into octoDNS as a processor whose ``process_plan`` returns a :class:`GuardedPlan`: octoDNS
(and ``octodns-sync``) calls ``raise_if_unsafe`` unless ``--force``, so ``--force`` keeps its
octoDNS meaning.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from octodns.processor.base import (  # type: ignore[import-untyped,unused-ignore]
    BaseProcessor,
    ProcessorException,
)
from octodns.provider.plan import Plan, UnsafePlan  # type: ignore[import-untyped,unused-ignore]
from octodns.provider.yaml import YamlProvider  # type: ignore[import-untyped,unused-ignore]

from provisioner.octodns.convert import unescape
from provisioner.octodns.ownership import Claim, claim_of
from provisioner.octodns.spfmerge import TermKey, is_spf, key, mechanism_keys
from provisioner.spf import SpfSyntaxError, parse

DELETE_THRESHOLD = 0.3


class OwnershipViolation(UnsafePlan):  # type: ignore[misc]
    """The plan changes what the product does not own, or deletes too much of what it does."""


class MissingZone(ProcessorException):  # type: ignore[misc]
    """An institution zone that the target does not hold."""


class GuardedPlan(Plan):  # type: ignore[misc]
    """An octoDNS plan that also refuses the guard's violations unless forced."""

    violations: tuple[str, ...] = ()

    def raise_if_unsafe(self) -> None:
        if self.violations:
            zone = self.desired.decoded_name
            raise OwnershipViolation(
                f"[{zone}] " + "; ".join(self.violations) + " (review, then use --force)"
            )
        super().raise_if_unsafe()


def _txt(record: Any) -> list[str]:
    return [unescape(str(v)) for v in record.values]


def _spf_terms(values: Iterable[str]) -> dict[TermKey, str]:
    """The terms of the SPF values among ``values``, by key, as written.

    A value that does not parse (the ownership processor refuses those, but the guard does not
    trust it) is taken word by word: each word that parses alone keys as a term, any other by
    its text, so the guard still sees what would go.
    """
    out: dict[TermKey, str] = {}
    for v in values:
        if not is_spf(v):
            continue
        try:
            out.update((key(t), t.text) for t in parse(v).terms)
        except SpfSyntaxError:
            for word in v.split()[1:]:
                keys = mechanism_keys([word]) or {("text", "", word.lower(), None)}
                out.update((k, word) for k in keys)
    return out


def _shared_spf_kept(old: Any, new: Any | None, mechanisms: frozenset[str]) -> list[str]:
    """What a change to a shared SPF set would lose of the customer's (empty: nothing)."""
    old_values = _txt(old)
    new_values = _txt(new) if new is not None else []
    lost = [v for v in old_values if not is_spf(v) and v not in new_values]
    ours = mechanism_keys(mechanisms)
    theirs = {k: t for k, t in _spf_terms(old_values).items() if k not in ours}
    kept = _spf_terms(new_values)
    # The all term may be tightened as declared; any other missing term is a loss.
    lost += sorted(t for k, t in theirs.items()
                   if k not in kept and not (k[0] == "mechanism" and k[2] == "all"))
    if sum(1 for v in new_values if is_spf(v)) > 1:
        lost.append("(more than one SPF value)")
    return lost


def check(plan: Any) -> tuple[str, ...]:
    """The guard's violations in an octoDNS plan, as one-line reasons."""
    wanted, before = claim_of(plan.desired), claim_of(plan.existing)
    claim = wanted | before
    violations: list[str] = []
    deletes = 0
    for change in plan.changes:
        kind = change.__class__.__name__
        record = change.record
        pair = (record.name, record._type)
        shown = f"{record.name or '@'} {record._type}"
        if record._type == "TXT" and record.name in claim.spf_names and not claim.owns(pair):
            if kind != "Create":
                new = change.new if kind == "Update" else None
                lost = _shared_spf_kept(change.existing, new, claim.spf_mechanisms(record.name))
                if lost:
                    violations.append(f"{kind.lower()} of {shown} would drop {', '.join(lost)}")
            continue
        if not claim.owns(pair):
            violations.append(f"{kind.lower()} of {shown}, a record the product does not own")
        elif kind == "Delete":
            deletes += 1
    owned_existing = sum(1 for r in plan.existing.records if before.owns((r.name, r._type)))
    if deletes and deletes > DELETE_THRESHOLD * max(owned_existing, 1):
        violations.append(
            f"deletes {deletes} of the product's {owned_existing} record sets in the zone "
            f"(over {DELETE_THRESHOLD:.0%})"
        )
    return tuple(violations)


class Guard(BaseProcessor):  # type: ignore[misc]
    """octoDNS processor wrapping each plan in a :class:`GuardedPlan`.

    ``create_zones``: zones the target may create when missing (the platform's own zones);
    every other zone must already exist on the target, except on file targets (YamlProvider).
    """

    def __init__(self, id: str, create_zones: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(id, **kwargs)
        self.create_zones = frozenset(z.rstrip(".").lower() + "." for z in create_zones)

    def process_plan(
        self, plan: Any, sources: Any = None, target: Any = None, lenient: bool = False
    ) -> Any:
        if plan is None:
            return None
        zone = plan.desired.name
        if (
            plan.exists is False
            and zone not in self.create_zones
            and not isinstance(target, YamlProvider)
        ):
            raise MissingZone(
                f"zone {plan.desired.decoded_name} does not exist on target "
                f"{getattr(target, 'id', target)}: create it (and delegate it) first; "
                "the provisioner never creates an institution's zone"
            )
        guarded = GuardedPlan(
            plan.existing,
            plan.desired,
            plan.changes,
            plan.exists,
            update_pcent_threshold=plan.update_pcent_threshold,
            delete_pcent_threshold=plan.delete_pcent_threshold,
            meta=plan.meta,
        )
        guarded.violations = check(plan)
        return guarded


__all__ = ["Claim", "Guard", "GuardedPlan", "MissingZone", "OwnershipViolation", "check"]
