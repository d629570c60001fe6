"""Ownership without a server: the SPF merge, the marker, the processor and the guard.

The zones here are octoDNS zones filled the way a target fills them; the plan is the one
octoDNS's YamlProvider computes against files in a temporary directory (a real provider).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from octodns.provider.yaml import YamlProvider
from octodns.record import Record as OctoRecord
from octodns.zone import Zone

from provisioner.octodns.guard import Guard, GuardedPlan, OwnershipViolation, check
from provisioner.octodns.ownership import MARKER_NAME, Claim, Ownership
from provisioner.octodns.spfmerge import is_spf, merge

# --- the SPF merge (RFC 7208) -----------------------------------------------------------------


def test_merge_adds_ours_before_their_all_and_keeps_their_terms() -> None:
    got = merge("v=spf1 ip4:192.0.2.0/24 include:_spf.google.com ~all",
                "v=spf1 include:_spf.google.com include:spf.secutix.com ~all")
    assert got.value == (
        "v=spf1 ip4:192.0.2.0/24 include:_spf.google.com include:spf.secutix.com ~all")
    assert got.undeclared == ("ip4:192.0.2.0/24",)


def test_merge_keeps_their_stricter_all_and_tightens_when_declared() -> None:
    assert merge("v=spf1 mx -all", "v=spf1 include:s.example ~all").value == \
        "v=spf1 mx include:s.example -all"
    assert merge("v=spf1 mx ~all", "v=spf1 include:s.example -all").value == \
        "v=spf1 mx include:s.example -all"


def test_merge_with_redirect_adds_no_all() -> None:
    # RFC 7208 §6.1: redirect= is ignored when an all mechanism is present.
    assert merge("v=spf1 mx redirect=_spf.example.org", "v=spf1 include:s.example ~all").value \
        == "v=spf1 mx include:s.example redirect=_spf.example.org"


def test_merge_is_idempotent_and_case_insensitive() -> None:
    ours = "v=spf1 include:spf.secutix.com ~all"
    once = merge("v=spf1 +INCLUDE:Spf.Secutix.com ~all", ours).value
    assert once == "v=spf1 +INCLUDE:Spf.Secutix.com ~all"
    assert merge(once, ours).value == once


def test_release_removes_only_ours() -> None:
    live = "v=spf1 include:_spf.google.com include:spf.secutix.com ~all"
    assert merge(live, None, released=["include:spf.secutix.com"]).value == \
        "v=spf1 include:_spf.google.com ~all"
    assert merge("v=spf1 include:spf.secutix.com ~all", None,
                 released=["include:spf.secutix.com"]).value is None


def test_is_spf_follows_rfc7208_4_5() -> None:
    assert is_spf("v=spf1") and is_spf("V=SPF1 -all")
    assert not is_spf("v=spf10 -all") and not is_spf("google-site-verification=x")


# --- the processor and the guard on a real octoDNS plan ---------------------------------------


def _zone(records: dict[str, dict[str, Any]]) -> Zone:
    zone = Zone("example.com.", set())
    for name, data in records.items():
        zone.add_record(OctoRecord.new(zone, name.split("/")[0], data, lenient=True))
    return zone


def _plan(tmp_path: Path, live: dict[str, dict[str, Any]], desired: Zone) -> Any:
    provider = YamlProvider("files", str(tmp_path), escaped_semicolons=False,
                            enforce_order=False, root_ns_warnings=False)
    if live:
        provider.apply(provider.plan(_zone(live)))
    plan = provider.plan(desired, processors=[Ownership("o")])
    return Guard("g").process_plan(plan, target=provider)


MARKER = {"type": "TXT", "ttl": 3600, "values": ["owns TXT _dmarc", "spf @ include:s.example"]}
CUSTOMER: dict[str, dict[str, Any]] = {
    "www": {"type": "A", "ttl": 300, "value": "192.0.2.1"},
    "": {"type": "TXT", "ttl": 300, "values": ["v=spf1 mx ~all", "site-verification=1"]},
    "_dmarc": {"type": "TXT", "ttl": 300, "value": "v=DMARC1\\; p=none"},
}


def test_processor_keeps_unowned_and_merges_apex(tmp_path: Path) -> None:
    desired = _zone({
        "": {"type": "TXT", "ttl": 3600, "value": "v=spf1 include:s.example ~all"},
        "_dmarc": {"type": "TXT", "ttl": 3600, "value": "v=DMARC1\\; p=reject"},
        MARKER_NAME: MARKER,
    })
    plan = _plan(tmp_path, CUSTOMER, desired)
    assert isinstance(plan, GuardedPlan) and plan.violations == ()
    by = {(c.record.name, c.__class__.__name__): c for c in plan.changes}
    assert set(by) == {("", "Update"), ("_dmarc", "Update"), (MARKER_NAME, "Create")}
    assert sorted(by[("", "Update")].new.values) == ["site-verification=1",
                                                     "v=spf1 mx include:s.example ~all"]
    assert by[("", "Update")].new.ttl == 300  # the customer's set keeps its TTL


def test_never_written_zone_plans_nothing(tmp_path: Path) -> None:
    assert _plan(tmp_path, CUSTOMER, _zone({})) is None


def test_guard_refuses_deleting_a_customer_record(tmp_path: Path) -> None:
    # Ownership is bypassed here: the guard must catch a plan that deletes what is not ours.
    provider = YamlProvider("files", str(tmp_path), escaped_semicolons=False,
                            enforce_order=False, root_ns_warnings=False)
    provider.apply(provider.plan(_zone({**CUSTOMER, MARKER_NAME: MARKER})))
    plan = provider.plan(_zone({MARKER_NAME: MARKER, "": CUSTOMER[""],
                                "_dmarc": CUSTOMER["_dmarc"]}))
    reasons = check(plan)
    assert reasons == ("delete of www A, a record the product does not own",)
    guarded = Guard("g").process_plan(plan, target=provider)
    with pytest.raises(OwnershipViolation, match="www A"):
        guarded.raise_if_unsafe()


def test_claim_round_trips_and_patterns_cover_names() -> None:
    claim = Claim(frozenset({("_dmarc", "TXT"), ("*._report._dmarc", "TXT")}),
                  frozenset({("", "include:s.example")}))
    assert Claim.parse(claim.values()) == claim
    assert claim.owns(("a.example._report._dmarc", "TXT"))
    assert not claim.owns(("a.example._report._dmarc", "CNAME"))
    assert claim.owns((MARKER_NAME, "TXT")) and not Claim().owns((MARKER_NAME, "TXT"))
