"""DKIM selectors: the customer's CNAME, and the key record it leads to (RFC 6376 §3.6.2).

Common mistakes get their own reasons: ``zone-doubled`` (a relative name typed as absolute,
``stxsel1._domainkey.mosamuseum.com.mosamuseum.com``), ``missing-trailing-dot`` (a target typed
without its final dot, so the zone got appended), ``cname-conflict`` (a CNAME beside other data,
RFC 1034 §3.6.2), ``quoted`` (literal quotes inside the TXT value). A CNAME beside other data is
reported when the server shows both; PowerDNS, like most, serves only the CNAME.
"""

from __future__ import annotations

from provisioner.model import Platform, Record
from provisioner.verify.dkimkey import GOOD_RSA_BITS, DkimKeyError, parse_key_record
from provisioner.verify.results import CheckResult, Status, not_there, status_of_lookup, success
from provisioner.verify.view import View

_IGNORED_TYPES = {"RRSIG", "NSEC", "NSEC3"}


def check_dkim(view: View, record: Record, platform: Platform) -> CheckResult:
    name = record.fqdn.rstrip(".")
    target = str(record.values[0]).lower()
    expected = (target,)
    zone = record.zone.rstrip(".")
    # TXT rather than CNAME: one question shows the CNAME (and, in-zone, the key behind it),
    # a key published directly at the selector, and a CNAME that a server serves beside a TXT.
    # (ANY would show more, but PowerDNS sends it to TCP and others answer it minimally,
    # RFC 8482.)
    answer = view.answer(name, "TXT")
    owned = [(t, v) for o, t, v in answer.rrs if o == answer.query.name]
    if answer.temporary:
        return CheckResult("dkim", name, Status.TEMPORARY_FAILURE, answer.status,
                           f"{name}: {answer.status}", expected)
    cnames = [str(v) for t, v in owned if t == "CNAME"]
    others = sorted({t for t, _ in owned if t not in _IGNORED_TYPES and t != "CNAME"})
    if not owned:
        reason = "NODATA" if answer.status == "NOERROR" else answer.status
        doubled = view.answer(f"{name}.{zone}", "CNAME")
        if doubled.values:
            return CheckResult("dkim", name, Status.FAILED, "zone-doubled",
                               f"the CNAME was published at {name}.{zone}: the zone name is "
                               f"doubled; enter the host as a name relative to {zone}",
                               expected, tuple(str(v) for v in doubled.values))
        return CheckResult("dkim", name, status_of_lookup(reason), reason,
                           not_there(f"no CNAME at {name} ({reason})", "CNAME", name, reason),
                           expected)
    found = tuple(cnames) or tuple(f"{t} {v}" for t, v in owned if t not in _IGNORED_TYPES)
    if not cnames:
        return CheckResult("dkim", name, Status.FAILED, "mismatch",
                           f"expected a CNAME to {target}, found {', '.join(others)} records "
                           "instead", expected, found)
    if others:
        return CheckResult("dkim", name, Status.FAILED, "cname-conflict",
                           f"a CNAME cannot share its name with other data ({', '.join(others)}; "
                           "RFC 1034 §3.6.2): remove them", expected, found)
    got = cnames[0].lower()
    if got != target:
        if got == f"{target.rstrip('.')}.{zone}.":
            return CheckResult("dkim", name, Status.FAILED, "missing-trailing-dot",
                               f"the target was entered without its final dot, so {zone} was "
                               f"appended: enter {target}", expected, found)
        return CheckResult("dkim", name, Status.FAILED, "mismatch",
                           f"the CNAME points to {got}, expected {target}", expected, found)
    label = target.split("._domainkey.")[0]
    return check_key_at(view, name, target, platform.dkim_public_keys.get(label), expected,
                        found, absent="the CNAME is right; ")


def check_key_at(view: View, name: str, target: str, published: str | None,
                 expected: tuple[str, ...], found: tuple[str, ...], *, absent: str = "",
                 show_key: bool = False) -> CheckResult:
    """The DKIM check ``name`` judged by the key record at ``target`` (RFC 6376 §3.6.2.2):
    one TXT (``multiple-records``) that parses as a key record (:func:`parse_key_record`'s
    reasons), holding ``published`` (the platform's base64 key, when known: ``key-mismatch``).
    RSA under 2048 bits succeeds with a warning (RFC 8301 §3.2). No key record is pending.

    ``absent`` leads the message when there is no key record; the key record's text is added
    to ``found`` on failure, and on success too with ``show_key``.
    """
    keys, chain = view.follow(target, "TXT")
    if keys.reason:
        status = status_of_lookup(keys.reason)
        return CheckResult("dkim", name, status, keys.reason,
                           not_there(f"{absent}no key record at {target} yet ({keys.reason})",
                                     "TXT", target, keys.reason),
                           expected, found)
    texts = [str(v) for v in keys.values]
    if len(texts) > 1:
        return CheckResult("dkim", name, Status.FAILED, "multiple-records",
                           f"{len(texts)} TXT records at {target}: verifiers may pick either "
                           "(RFC 6376 §3.6.2.2)", expected, found + tuple(texts))
    label = target.split("._domainkey.")[0]
    try:
        key = parse_key_record(texts[0])
    except DkimKeyError as exc:
        if exc.code == "revoked" and published == "":
            # The key state revoked this selector (a rotation's retirement): p= is right.
            return success("dkim", name, f"{label} is revoked (p= empty) after a rotation, "
                           "as the key state says; mail is signed with the other selector",
                           expected, found + tuple(texts) if show_key else found)
        return CheckResult("dkim", name, Status.FAILED, exc.code, f"{target}: {exc}",
                           expected, found + tuple(texts))
    if published == "":
        return CheckResult("dkim", name, Status.FAILED, "key-mismatch",
                           f"{target} still publishes a key; the key state revoked {label} "
                           "(p= empty)", expected, found + tuple(texts))
    if published and "".join(published.split()) != key.public_key:
        return CheckResult("dkim", name, Status.FAILED, "key-mismatch",
                           f"the key at {target} is not the platform's key for {label}",
                           expected, found + tuple(texts))
    warnings: tuple[str, ...] = key.notes()
    if key.key_type == "rsa" and key.bits < GOOD_RSA_BITS:
        warnings += (f"RSA key of {key.bits} bits: use at least {GOOD_RSA_BITS} "
                     "(RFC 8301 §3.2)",)
    via = f" via {' -> '.join(chain)}" if chain else ""
    return success("dkim", name, f"{key.key_type} key of {key.bits} bits at {target}{via}",
                   expected, found + tuple(texts) if show_key else found, warnings)
