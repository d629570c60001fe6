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
from provisioner.octodns.ownership import MARKER_NAME, Claim, Ownership, SpfRefused
from provisioner.octodns.spfmerge import (
    LiveSpfError,
    combine,
    is_spf,
    live_spf,
    merge,
    parse_live,
)

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


# --- SPF through the RFC 7208 parser: malformed values are refused, several are merged ------


@pytest.mark.parametrize(("live", "what"), [
    ("v=spf1 include: ~all", "empty domain-spec"),
    ("v=spf1 ip4:999.1.1.1 ~all", "bad ip4-network '999.1.1.1'"),
    ("v=spf1 mx redirect _spf.example.org", "unknown mechanism 'redirect'"),
    ("v=spf1 include:_spf.google.com include:_spf.google.com\u00a0~all", "U+00A0"),
])
def test_merge_refuses_a_live_value_that_does_not_parse(live: str, what: str) -> None:
    with pytest.raises(LiveSpfError) as caught:
        merge(live, "v=spf1 include:spf.secutix.com ~all")
    message = str(caught.value)
    assert repr(live) in message and what in message and "permerror" in message
    assert caught.value.syntax is not None and caught.value.values == (live,)
    with pytest.raises(LiveSpfError):  # nor is a release written into one
        merge(live, None, released=["include:spf.secutix.com"])


def test_parse_live_refuses_two_spf_values() -> None:
    with pytest.raises(LiveSpfError, match=r"2 live SPF values .*RFC 7208 §4\.5"):
        parse_live(["v=spf1 mx ~all", "site=1", "v=spf1 include:_spf.google.com -all"])
    assert parse_live(["site=1", "v=spf1 mx ~all"]) == "v=spf1 mx ~all"
    assert parse_live(["site=1", "v=spf10 mx"]) is None


def test_combine_keeps_every_mechanism_once_in_order() -> None:
    got = combine(["v=spf1 mx include:a.example ~all",
                   "v=spf1 INCLUDE:A.example ip4:192.0.2.1 ~all"])
    assert got == "v=spf1 mx include:a.example ip4:192.0.2.1 ~all"
    # all terms that disagree: the declared one wins; without one, the strictest.
    two = ["v=spf1 mx ?all", "v=spf1 a -all"]
    assert combine(two, "v=spf1 include:s.example ~all") == "v=spf1 mx a ~all"
    assert combine(two) == "v=spf1 mx a -all"
    # modifiers after the all, each once; a redirect alone keeps the single-value rules.
    assert combine(["v=spf1 mx redirect=r.example", "v=spf1 a redirect=r.example"]) \
        == "v=spf1 mx a redirect=r.example"
    assert merge(combine(["v=spf1 mx redirect=r.example", "v=spf1 a"]),
                 "v=spf1 include:s.example -all").value \
        == "v=spf1 mx a include:s.example redirect=r.example"


def test_combine_refuses_what_cannot_be_one_value() -> None:
    with pytest.raises(LiveSpfError, match="'v=spf1 include: ~all' does not parse"):
        combine(["v=spf1 mx ~all", "v=spf1 include: ~all"])
    with pytest.raises(LiveSpfError, match="cannot be merged into one") as caught:
        combine(["v=spf1 redirect=a.example", "v=spf1 redirect=b.example"])
    assert "one redirect=" in caught.value.fix


def test_live_spf_says_when_it_combined() -> None:
    one = live_spf(["site=1", "v=spf1 mx ~all"])
    assert one.value == "v=spf1 mx ~all" and not one.combined
    two = live_spf(["v=spf1 mx ~all", "site=1", "v=spf1 a ~all"])
    assert two.value == "v=spf1 mx a ~all" and two.values == ("v=spf1 mx ~all", "v=spf1 a ~all")
    assert two.combined
    assert live_spf(["site=1"]).value is None


def test_merge_compares_parsed_terms_not_words() -> None:
    # ip4 networks and domains compare by their parts; a macro argument keeps its case.
    got = merge("v=spf1 -IP4:192.0.2.0/24 exists:%{i}.x.example ~all",
                "v=spf1 -ip4:192.0.2.0/24 exists:%{I}.x.example include:s.example ~all")
    assert got.value == ("v=spf1 -IP4:192.0.2.0/24 exists:%{i}.x.example "
                         "exists:%{I}.x.example include:s.example ~all")


def test_merge_with_redirect_keeps_the_redirect_last_and_says_why_no_all() -> None:
    got = merge("v=spf1 redirect=_spf.example.org exp=explain.example.org",
                "v=spf1 include:s.example -all")
    assert got.value == ("v=spf1 include:s.example redirect=_spf.example.org "
                         "exp=explain.example.org")
    assert any("redirect=_spf.example.org" in n and "§6.1" in n for n in got.notes)
    assert got.undeclared == ()  # modifiers are not mechanisms to declare
    # An all beside the redirect already disables it (§6.1): ours go before that all, as
    # anywhere else (where a modifier sits does not change evaluation).
    assert merge("v=spf1 mx redirect=r.example ~all", "v=spf1 include:s.example ~all").value \
        == "v=spf1 mx redirect=r.example include:s.example ~all"
    # Releasing ours from a redirecting record keeps the redirect.
    assert merge("v=spf1 include:s.example redirect=r.example", None,
                 released=["include:s.example"]).value == "v=spf1 redirect=r.example"


def test_merge_notes_a_value_over_the_lookup_limit() -> None:
    live = "v=spf1 " + " ".join(f"include:s{i}.example" for i in range(10)) + " ~all"
    got = merge(live, "v=spf1 include:spf.secutix.com ~all")
    assert any("11 DNS-lookup terms" in n for n in got.notes)


@pytest.mark.parametrize("apex", [
    ["v=spf1 include: ~all", "site-verification=1"],
    ["v=spf1 mx ~all", "v=spf1 include: ~all"],  # one of several values does not parse
])
def test_processor_refuses_the_zone_and_changes_nothing(tmp_path: Path, apex: list[str]) -> None:
    live = {**CUSTOMER, "": {"type": "TXT", "ttl": 300, "values": apex}}
    desired = _zone({
        "": {"type": "TXT", "ttl": 3600, "value": "v=spf1 include:s.example ~all"},
        MARKER_NAME: MARKER,
    })
    with pytest.raises(SpfRefused) as caught:
        _plan(tmp_path, live, desired)
    message = str(caught.value)
    assert message.startswith("zone example.com.: example.com. TXT: ")
    assert repr("v=spf1 include: ~all") in message
    assert "repair the record at the DNS host" in message and "\n" not in message
    assert caught.value.zone == "example.com." and caught.value.name == ""


def test_guard_still_sees_a_lost_term_of_an_unparsable_value(tmp_path: Path) -> None:
    # Ownership is bypassed: a plan that rewrites a malformed shared SPF must still be caught.
    provider = YamlProvider("files", str(tmp_path), escaped_semicolons=False,
                            enforce_order=False, root_ns_warnings=False)
    bad = {"type": "TXT", "ttl": 300, "values": ["v=spf1 include: mx ~all"]}
    provider.apply(provider.plan(_zone({"": bad, MARKER_NAME: MARKER})))
    plan = provider.plan(_zone({"": {"type": "TXT", "ttl": 300,
                                     "values": ["v=spf1 include:s.example ~all"]},
                                MARKER_NAME: MARKER}))
    assert check(plan) == ("update of @ TXT would drop include:, mx",)


APEX_DESIRED: dict[str, dict[str, Any]] = {
    "": {"type": "TXT", "ttl": 3600, "value": "v=spf1 include:s.example ~all"},
    "_dmarc": {"type": "TXT", "ttl": 3600, "value": "v=DMARC1\\; p=reject"},
    MARKER_NAME: MARKER,
}


def test_processor_merges_two_live_spf_values_into_one(tmp_path: Path) -> None:
    apex = ["v=spf1 mx -all", "site-verification=1", "v=spf1 ip4:192.0.2.7 include:s.example ~all"]
    live = {**CUSTOMER, "": {"type": "TXT", "ttl": 300, "values": apex}}
    ownership = Ownership("o")
    provider = YamlProvider("files", str(tmp_path), escaped_semicolons=False,
                            enforce_order=False, root_ns_warnings=False)
    provider.apply(provider.plan(_zone(live)))
    plan = Guard("g").process_plan(
        provider.plan(_zone(APEX_DESIRED), processors=[ownership]), target=provider)
    assert isinstance(plan, GuardedPlan) and plan.violations == ()  # no customer term lost
    by = {(c.record.name, c.__class__.__name__): c for c in plan.changes}
    new = [str(v) for v in by[("", "Update")].new.values]
    spf = [v for v in new if is_spf(v)]
    assert spf == ["v=spf1 ip4:192.0.2.7 include:s.example mx ~all"]  # declared ~all wins
    assert "site-verification=1" in new and len(new) == 2
    notes = ownership.notes.by_zone["example.com."]
    merged = [n for n in notes if n.code == "plan.spf-merged"]
    assert len(merged) == 1 and all(repr(v) in merged[0].message for v in apex if is_spf(v))
    provider.apply(plan)
    assert provider.plan(_zone(APEX_DESIRED), processors=[Ownership("o")]) is None


def test_processor_refuses_a_merge_over_the_lookup_limit(tmp_path: Path) -> None:
    apex = ["v=spf1 " + " ".join(f"include:a{i}.example" for i in range(5)) + " ~all",
            "v=spf1 " + " ".join(f"include:b{i}.example" for i in range(5)) + " ~all"]
    live = {**CUSTOMER, "": {"type": "TXT", "ttl": 300, "values": apex}}
    with pytest.raises(SpfRefused) as caught:
        _plan(tmp_path, live, _zone(APEX_DESIRED))
    message = str(caught.value)
    assert "11 DNS-lookup terms" in message and "flatten or drop some includes" in message
    assert all(repr(v) in message for v in apex)
