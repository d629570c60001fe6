"""DMARC at ``_dmarc.<domain>``: RFC 7489 §6.3 tags (and RFC 9989's np, psd, t), the declared
policy, external report destinations' authorisation (§7.1) and alignment that cannot pass."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from provisioner.model import is_within
from provisioner.verify.dkimkey import DkimKeyError, parse_tag_list
from provisioner.verify.results import CheckResult, Status, not_there, status_of_lookup, success
from provisioner.verify.view import View

_POLICY = {"none", "quarantine", "reject"}
_URI = re.compile(r"^[a-z][a-z0-9+.-]*:[^\s,!]+(![0-9]+[kmgt]?)?$", re.IGNORECASE)
_VALID: dict[str, Callable[[str], bool]] = {
    "v": lambda v: v == "DMARC1",
    "p": lambda v: v in _POLICY,
    "sp": lambda v: v in _POLICY,
    "np": lambda v: v in _POLICY,  # RFC 9989 §4.7
    "adkim": lambda v: v in ("r", "s"),
    "aspf": lambda v: v in ("r", "s"),
    "fo": lambda v: all(p in ("0", "1", "d", "s") for p in v.split(":")),
    "rua": lambda v: all(_URI.match(u.strip()) for u in v.split(",")),
    "ruf": lambda v: all(_URI.match(u.strip()) for u in v.split(",")),
    "psd": lambda v: v in ("y", "n", "u"),  # RFC 9989 §4.7
    "t": lambda v: v in ("y", "n"),  # RFC 9989 §4.7
}
_COMPARED = ("p", "sp", "np", "adkim", "aspf", "t", "psd", "fo")
#: Tags RFC 9989 removed: receivers ignore them, so a live one is a warning, never published.
OBSOLETE = {"pct": "pct= (the share of mail the policy applies to) is obsolete: RFC 9989 "
                   "receivers apply the policy to all mail; use t=y to test a policy",
            "rf": "rf= is obsolete (RFC 9989): receivers ignore it",
            "ri": "ri= is obsolete (RFC 9989): receivers send aggregate reports daily"}


@dataclass(frozen=True, slots=True)
class DmarcContext:
    """What the declaration says beyond the record: return path, DKIM, our authorisations."""

    domain: str
    return_path: str | None
    dkim: bool
    published_authorisations: frozenset[str]  # fqdns of D._report._dmarc.<host> we publish


# The tag name is case-insensitive (a quoted ABNF string), the version literal is not
# (%x44.4d.41.52.43.31, RFC 9989 §4.7).
_DMARC1 = re.compile(r"^[vV]\s*=\s*DMARC1\s*(;|$)")


def is_dmarc(text: str) -> bool:
    """RFC 7489 §6.6.3: records not starting with ``v=DMARC1`` are discarded."""
    return _DMARC1.match(text) is not None


# The expected text is read by plan() and then by the check, once every domain is planned:
# the cache holds a 10,000-domain pass (a record's tags take about 500 octets).
@lru_cache(maxsize=16384)
def parse_dmarc(text: str) -> Mapping[str, str]:
    """Tags of a DMARC record; ``ValueError`` naming the first bad one."""
    try:
        tags = parse_tag_list(text)
    except DkimKeyError as exc:
        raise ValueError(str(exc)) from None
    values: dict[str, str] = {}
    for name, value in tags:
        name = name.lower()
        check = _VALID.get(name)
        if check is not None and not check(value if name in ("rua", "ruf", "v") else value.lower()):
            raise ValueError(f"{name}={value} is not a valid value (RFC 7489 §6.3)")
        values[name] = value
    if tags[0][0].lower() != "v":
        raise ValueError("v=DMARC1 must be the first tag (RFC 7489 §6.3)")
    if "p" not in values:
        raise ValueError("no p= tag: the policy is required (RFC 7489 §6.3)")
    return MappingProxyType(values)


def report_authorisations(domain: str, text: str) -> list[str]:
    """The names where ``text``'s external report destinations authorise ``domain`` (§7.1)."""
    try:
        tags = parse_dmarc(text)
    except ValueError:
        return []
    return [f"{domain}._report._dmarc.{host}" for host in _hosts(tags)
            if not (is_within(host, domain) or is_within(domain, host))]


def _hosts(tags: Mapping[str, str]) -> list[str]:
    hosts: list[str] = []
    for key in ("rua", "ruf"):
        for uri in tags.get(key, "").split(","):
            uri = uri.strip()
            if uri.lower().startswith("mailto:"):
                host = uri.partition("@")[2].partition("!")[0].lower().rstrip(".")
                if host and host not in hosts:
                    hosts.append(host)
    return hosts


def organizational_domain(view: View, domain: str) -> str:
    """The organisational domain of ``domain`` by RFC 9989's DNS tree walk (§4.10), not a
    public-suffix list: ``_dmarc.<name>`` for the domain and its parents (at most 8 queries:
    a longer name jumps to its 7-label ancestor). A record with ``psd=n`` names it; one with
    ``psd=y`` (a public suffix's) names the domain one label below; otherwise the name with
    the fewest labels that has a DMARC record; with none at all, the domain itself."""
    labels = domain.rstrip(".").lower().split(".")
    names = [".".join(labels[i:]) for i in range(len(labels))]
    if len(names) > 8:
        names = [names[0], *names[-7:]]
    found: str | None = None
    below: str | None = None
    for name in names:
        answer = view.answer(f"_dmarc.{name}", "TXT")
        records = [str(v) for v in answer.values if is_dmarc(str(v))] if not answer.reason \
            else []
        tags: Mapping[str, str] = {}
        if len(records) == 1:
            try:
                tags = parse_dmarc(records[0])
            except ValueError:
                tags = {}
        if tags:
            psd = tags.get("psd", "u").lower()
            if psd == "n":
                return name
            if psd == "y":
                return below or name
            found = name
        below = name
    return found or domain.rstrip(".").lower()


def same_organization(view: View, a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` share an organisational domain (RFC 9989 §4.10): a report
    address there needs no authorisation record (§7.1 of RFC 7489, RFC 9990)."""
    if is_within(a, b) or is_within(b, a):
        return True
    return organizational_domain(view, a) == organizational_domain(view, b)


def check_dmarc(view: View, name: str, expected_text: str, ctx: DmarcContext) -> CheckResult:
    expected = (expected_text,)
    answer = view.answer(name, "TXT")
    if answer.reason:
        return CheckResult("dmarc", name, status_of_lookup(answer.reason), answer.reason,
                           not_there(f"no TXT records at {name} ({answer.reason})", "TXT", name,
                                     answer.reason), expected)
    texts = [str(v) for v in answer.values]
    records = [t for t in texts if is_dmarc(t)]
    if not records:
        quoted = [t for t in texts if is_dmarc(t.strip('"'))]
        if quoted:
            return CheckResult("dmarc", name, Status.FAILED, "quoted", "the DMARC record is "
                               "wrapped in literal quotes: publish it without them",
                               expected, tuple(quoted))
        return CheckResult("dmarc", name, Status.PENDING, "NODATA",
                           f"{len(texts)} TXT record(s) at {name}, none starts with v=DMARC1",
                           expected, tuple(texts))
    found = tuple(records)
    if len(records) > 1:
        return CheckResult("dmarc", name, Status.FAILED, "multiple-records",
                           f"{len(records)} DMARC records: receivers ignore them all "
                           "(RFC 7489 §6.6.3)", expected, found)
    want = parse_dmarc(expected_text)
    try:
        tags = want if records[0] == expected_text else parse_dmarc(records[0])
    except ValueError as exc:
        return CheckResult("dmarc", name, Status.FAILED, "syntax", str(exc), expected, found)
    diffs = [f"{k}={tags.get(k, '(absent)')} instead of {k}={want[k]}"
             for k in _COMPARED if k in want and tags.get(k, "").lower() != want[k].lower()]
    # a live t=y we did not declare: receivers apply a less strict policy than declared
    # (with p=none there is none less strict: nothing changes)
    if "t" not in want and tags.get("t", "n").lower() == "y" and \
            want.get("p", "none").lower() != "none":
        diffs.append("t=y (testing) instead of no t=")
    have = {u.strip().lower() for u in tags.get("rua", "").split(",")}
    diffs += [f"rua lacks {u}" for u in want.get("rua", "").split(",")
              if u.strip() and u.strip().lower() not in have]
    if diffs:
        return CheckResult("dmarc", name, Status.FAILED, "mismatch", "; ".join(diffs),
                           expected, found)
    warnings = [OBSOLETE.get(k, f"unknown tag {k}= is ignored by receivers")
                for k in tags if k not in _VALID or k in OBSOLETE]
    if tags.get("aspf", "r").lower() == "s" and ctx.return_path:
        text = (f"aspf=s with the return path {ctx.return_path}: SPF can never align "
                "(RFC 7489 §3.1.2)")
        if not ctx.dkim:
            return CheckResult("dmarc", name, Status.FAILED, "alignment", text +
                               " and DKIM is off, so DMARC cannot pass", expected, found)
        warnings.append(text + "; only DKIM can pass DMARC")
    for host in _hosts(tags):
        if same_organization(view, host, ctx.domain):
            continue
        auth_name = f"{ctx.domain}._report._dmarc.{host}"
        auth, _ = view.follow(auth_name, "TXT")
        if auth.temporary:
            return CheckResult("dmarc", name, Status.TEMPORARY_FAILURE, auth.status,
                               f"{auth_name}: {auth.status}", expected, found)
        if not any(is_dmarc(str(v)) for v in auth.values):
            # Ours and absent: not published yet. Ours and present but wrong: the platform's
            # record is broken (as its own check says). Theirs: not authorised either way.
            ours = auth_name in ctx.published_authorisations
            status, reason = Status.FAILED, "not-authorised"
            if ours:
                status, reason = ((Status.PENDING, auth.reason) if auth.reason
                                  else (Status.FAILED, "mismatch"))
            return CheckResult("dmarc", name, status, reason,
                               f"{host} has not authorised reports for {ctx.domain}: no v=DMARC1 "
                               f"at {auth_name} (RFC 7489 §7.1)", expected, found)
    return success("dmarc", name, f"p={tags['p']}", expected, found, tuple(warnings))
