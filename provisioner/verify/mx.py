"""MX: the return-path subdomain points at the platform; the sender domain can receive replies.

RFC 5321 §5.1: without MX a domain's address records act as an implicit MX; with neither, or
with a null MX (RFC 7505), replies and bounces to the sender domain fail, and some receivers
refuse mail from it: a warning, not a failure, since the platform's mail still authenticates.
"""

from __future__ import annotations

from provisioner.model import MxValue, Record
from provisioner.verify.results import CheckResult, Status, not_there, status_of_lookup, success
from provisioner.verify.view import View


def _mx_text(values: tuple[object, ...]) -> tuple[str, ...]:
    return tuple(f"{p} {x}" for p, x in sorted(v for v in values if isinstance(v, tuple)))


def check_return_path_mx(view: View, record: Record) -> CheckResult:
    name = record.fqdn.rstrip(".")
    expected = tuple(str(v) for v in record.values)
    want = {v.exchange.lower() for v in record.values if isinstance(v, MxValue)}
    answer = view.answer(name, "MX")
    if answer.reason:
        return CheckResult("mx", name, status_of_lookup(answer.reason), answer.reason,
                           not_there(f"no MX at {name} ({answer.reason})", "MX", name,
                                     answer.reason), expected)
    found = _mx_text(answer.values)
    exchanges = {str(x).lower() for _, x in answer.values}
    if not want & exchanges:
        near = [x for x in exchanges if any(x == f"{w.rstrip('.')}.{record.zone}" for w in want)]
        reason = "missing-trailing-dot" if near else "mismatch"
        return CheckResult("mx", name, Status.FAILED, reason,
                           f"the MX of {name} does not point at {', '.join(sorted(want))}",
                           expected, found)
    warnings: tuple[str, ...] = ()
    if exchanges - want:
        warnings = (f"other MX beside the platform's: {', '.join(sorted(exchanges - want))}",)
    return success("mx", name, "points at the platform", expected, found, warnings)


def check_sender_mx(view: View, domain: str) -> CheckResult:
    answer = view.answer(domain, "MX")
    if answer.temporary:
        return CheckResult("mx", domain, Status.TEMPORARY_FAILURE, answer.status,
                           f"MX of {domain}: {answer.status}")
    found = _mx_text(answer.values)
    if answer.values:
        if all(str(x) == "." for _, x in answer.values):
            return success("mx", domain, "null MX", (), found, (
                f"{domain} publishes a null MX (RFC 7505): replies to its senders bounce",))
        return success("mx", domain, f"{len(found)} MX", (), found)
    addresses: list[str] = []
    for rdtype in ("A", "AAAA"):
        address = view.answer(domain, rdtype)
        if address.temporary:
            return CheckResult("mx", domain, Status.TEMPORARY_FAILURE, address.status,
                               f"{rdtype} of {domain}: {address.status}")
        addresses += [str(v) for v in address.values]
    if addresses:
        return success("mx", domain, "no MX; the address acts as an implicit MX", (),
                       tuple(addresses), (f"{domain} has no MX, only an address (RFC 5321 §5.1)",))
    reason = answer.reason or "NODATA"
    if reason == "NXDOMAIN":
        return CheckResult("mx", domain, status_of_lookup(reason), reason,
                           f"{domain} does not exist (NXDOMAIN)")
    return success("mx", domain, "no MX and no address", (), (), (
        f"{domain} has neither MX nor address: replies fail and some receivers refuse its mail "
        "(RFC 5321 §5.1)",))
