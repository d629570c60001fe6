"""SPF at a sender domain (and at its return-path subdomain): RFC 7208.

Success needs exactly one SPF record (two are a permerror, §4.5), every ``include:`` the
expansion writes (the platform's and the declared ones; the customer's other mechanisms may
stay, DESIGN §5), and ``check_host()`` giving ``pass`` for each of the platform's sending IPs
within the 10 DNS-lookup and 2 void-lookup limits (§4.6.4), counted by the evaluator across
includes and redirects.
"""

from __future__ import annotations

from functools import lru_cache

from provisioner.model import Platform, Record
from provisioner.spf import SpfSyntaxError, check_host, is_spf, parse
from provisioner.verify.results import CheckResult, Status, not_there, status_of_lookup, success
from provisioner.verify.view import View

_LIMITS = (("void lookups", "void-lookup-limit"), ("DNS-querying terms", "lookup-limit"),
           ("MX names", "lookup-limit"))  # the evaluator's words for the §4.6.4 limits


@lru_cache(maxsize=4096)  # a record's expected and found text are most often the same
def includes(text: str) -> tuple[str, ...]:
    """The targets of the record's include mechanisms (RFC 7208 §5.2), "+" qualifier or none."""
    out = []
    for term in text.split():
        term = term.lstrip("+").lower()
        if term.startswith("include:"):
            out.append(term[len("include:"):].rstrip("."))
    return tuple(out)


def check_spf(view: View, record: Record, platform: Platform) -> CheckResult:
    """The SPF check for the TXT record set ``record`` (role SPF or RETURN_PATH_SPF)."""
    name = record.fqdn.rstrip(".")
    expected = tuple(str(v) for v in record.values)
    spf = one_spf_record(view, name, expected)
    if isinstance(spf, CheckResult):
        return spf
    found = (spf,)
    missing = [i for i in includes(expected[0]) if i not in includes(spf)]
    if missing:
        return CheckResult("spf", name, Status.FAILED, "mismatch",
                           "missing " + ", ".join(f"include:{m}" for m in missing),
                           expected, found)
    return passes_for_senders(view, name, platform.sending_ips, expected, found)


def one_spf_record(view: View, name: str, expected: tuple[str, ...]) -> CheckResult | str:
    """The one SPF record at ``name``, known to parse; or the check's result saying why there
    is none: absent (pending), ``quoted``, ``multiple-records`` (a permerror, RFC 7208
    §4.5) or ``syntax``."""
    answer = view.answer(name, "TXT")
    if answer.reason:
        return CheckResult("spf", name, status_of_lookup(answer.reason), answer.reason,
                           not_there(f"no TXT records at {name} ({answer.reason})", "TXT", name,
                                     answer.reason), expected)
    texts = [str(v) for v in answer.values]
    spf = [t for t in texts if is_spf(t)]
    found = tuple(spf)
    if not spf:
        quoted = [t for t in texts if is_spf(t.strip('"'))]
        if quoted:
            return CheckResult("spf", name, Status.FAILED, "quoted",
                               "the SPF record is wrapped in literal quotes: publish it without "
                               "the extra quotation marks", expected, tuple(quoted))
        return CheckResult("spf", name, Status.PENDING, "NODATA",
                           f"{len(texts)} TXT record(s) at {name} but none starts with v=spf1",
                           expected, tuple(texts))
    if len(spf) > 1:
        return CheckResult("spf", name, Status.FAILED, "multiple-records",
                           f"{len(spf)} SPF records: receivers answer permerror (RFC 7208 §4.5); "
                           "merge them into one", expected, found)
    try:
        parse(spf[0])
    except SpfSyntaxError as exc:
        return CheckResult("spf", name, Status.FAILED, "syntax", str(exc), expected, found)
    return spf[0]


def passes_for_senders(view: View, name: str, ips: tuple[str, ...],
                       expected: tuple[str, ...], found: tuple[str, ...]) -> CheckResult:
    """The check succeeds when ``check_host()`` (RFC 7208 §4.6) of ``name`` gives ``pass`` for
    each of ``ips``, through ``view``; otherwise ``not-pass``, ``permerror``, ``lookup-limit``,
    ``void-lookup-limit`` (§4.6.4), or ``temperror`` (a temporary failure)."""
    notes = []
    for ip in ips:
        result = check_host(ip, name, f"postmaster@{name}", helo=name, resolver=view)
        counts = f"{result.lookups}/10 DNS lookups, {result.void_lookups}/2 void"
        if result.result == "pass":
            notes.append(f"pass for {ip} ({counts})")
            continue
        if result.result == "temperror":
            return CheckResult("spf", name, Status.TEMPORARY_FAILURE, "temperror",
                               f"check_host({ip}) temperror: {result.reason}", expected, found)
        reason = "permerror" if result.result == "permerror" else "not-pass"
        if result.result == "permerror":
            reason = next((code for words, code in _LIMITS if words in result.reason), reason)
        return CheckResult("spf", name, Status.FAILED, reason,
                           f"check_host({ip}) = {result.result}: {result.reason} ({counts})",
                           expected, found)
    return success("spf", name, "; ".join(notes) or "one SPF record", expected, found)
