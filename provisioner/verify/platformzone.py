"""Records the platform publishes in its own zones, checked on their own (DESIGN §4).

- A DKIM key record, ``sel1-<institution>._domainkey.<dkim zone>`` (check ``dkim``): the record a
  customer's selector CNAME leads to, judged as that check judges it (RFC 6376 §3.6.1, RFC 8301),
  and holding the configured key (``key-mismatch``).
- A DMARC report authorisation, ``<domain>._report._dmarc.<host>`` (check ``dmarc``): RFC 7489
  §7.1 counts any TXT record there that starts with ``v=DMARC1``.
- The platform's own SPF record (check ``spf``): one record, with the expected terms, and
  ``check_host()`` giving ``pass`` for each sending IP (RFC 7208).

A customer's DKIM and DMARC checks read the same names, through the first platform server that
answers; these checks ask every server of the platform zone, and name the record itself, so a
key rotation or a new authorisation is verified even when no customer zone changed.
"""

from __future__ import annotations

from provisioner.model import Platform, Record
from provisioner.spf import parse
from provisioner.verify.dkim import check_key_at
from provisioner.verify.dkimkey import DkimKeyError, parse_tag_list
from provisioner.verify.dmarc import is_dmarc
from provisioner.verify.results import CheckResult, Status, not_there, status_of_lookup, success
from provisioner.verify.spfcheck import one_spf_record, passes_for_senders
from provisioner.verify.view import View


def check_dkim_key(view: View, record: Record) -> CheckResult:
    """The key record ``record`` (role DKIM_KEY): its ``p=`` must be the one the expansion wrote."""
    name = record.fqdn.rstrip(".")
    expected = tuple(str(v) for v in record.values)
    return check_key_at(view, name, name, _public_key(expected[0]), expected, (),
                        show_key=True)


def _public_key(text: str) -> str | None:
    """The ``p=`` of an expected key record (``""``: revoked on purpose); None when it has
    none to compare with."""
    try:
        return dict(parse_tag_list(text)).get("p")
    except DkimKeyError:
        return None


def check_report_authorisation(view: View, record: Record) -> CheckResult:
    """The report authorisation ``record`` (role DMARC_REPORT_AUTH), RFC 7489 §7.1: a TXT that
    starts with ``v=DMARC1`` authorises, whatever else is there; none yet is pending; TXT records
    that all start otherwise are ``mismatch`` (``quoted`` when it is only the quotes)."""
    name = record.fqdn.rstrip(".")
    expected = tuple(str(v) for v in record.values)
    answer, chain = view.follow(name, "TXT")
    if answer.reason:
        return CheckResult("dmarc", name, status_of_lookup(answer.reason), answer.reason,
                           not_there(f"no report authorisation at {name} yet ({answer.reason})",
                                     "TXT", name, answer.reason), expected)
    texts = tuple(str(v) for v in answer.values)
    records = tuple(t for t in texts if is_dmarc(t))
    if records:
        via = f" via {' -> '.join(chain)}" if chain else ""
        return success("dmarc", name, f"reports authorised (RFC 7489 §7.1){via}",
                       expected, records)
    quoted = tuple(t for t in texts if is_dmarc(t.strip('"')))
    if quoted:
        return CheckResult("dmarc", name, Status.FAILED, "quoted",
                           "the authorisation is wrapped in literal quotes: publish it without "
                           "them", expected, quoted)
    return CheckResult("dmarc", name, Status.FAILED, "mismatch",
                       f"{len(texts)} TXT record(s) at {name}, none starts with v=DMARC1: "
                       "receivers do not send the reports (RFC 7489 §7.1)", expected, texts)


def check_domain_connect_key(view: View, record: Record) -> CheckResult:
    """The Domain Connect signing key (role DOMAIN_CONNECT_KEY): the TXT set at its name must
    be exactly the expected fragments, or hosts rebuild another key (or none) and refuse
    every signed link."""
    name = record.fqdn.rstrip(".")
    expected = tuple(str(v) for v in record.values)
    answer, _ = view.follow(name, "TXT")
    if answer.reason:
        return CheckResult("domainconnect", name, status_of_lookup(answer.reason),
                           answer.reason,
                           not_there(f"no signing key at {name} yet ({answer.reason})", "TXT",
                                     name, answer.reason),
                           expected)
    found = tuple(str(v) for v in answer.values)
    if sorted(found) == sorted(expected):
        return success("domainconnect", name, f"the signing key's {len(found)} fragment(s) "
                       "are published", expected, found)
    return CheckResult("domainconnect", name, Status.FAILED, "mismatch",
                       f"the TXT set at {name} is not the signing key's {len(expected)} "
                       "fragment(s): DNS hosts would refuse every signed link", expected, found)


def check_platform_spf(view: View, record: Record, platform: Platform) -> CheckResult:
    """The platform's SPF record ``record`` (role PLATFORM_SPF), RFC 7208: exactly one, holding
    the expected terms and no others (``mismatch``), and ``pass`` for every sending IP.

    Terms are compared as a set, each as its qualifier, name and value, case-insensitive; their
    order is judged by ``check_host()``, which sees an IP listed after ``-all``.
    """
    name = record.fqdn.rstrip(".")
    expected = tuple(str(v) for v in record.values)
    spf = one_spf_record(view, name, expected)
    if isinstance(spf, CheckResult):
        return spf
    found = (spf,)
    want, have = _terms(expected[0]), _terms(spf)
    if want != have:
        diffs = [f"missing {t}" for t in sorted(want - have)]
        diffs += [f"unexpected {t}" for t in sorted(have - want)]
        return CheckResult("spf", name, Status.FAILED, "mismatch", "; ".join(diffs),
                           expected, found)
    return passes_for_senders(view, name, platform.sending_ips, expected, found)


def _terms(text: str) -> frozenset[str]:
    """The record's terms in one spelling: ``ip4:192.0.2.1`` and ``+IP4:192.0.2.1`` are one."""
    out = set()
    for t in parse(text).terms:
        qualifier = "" if t.qualifier == "+" else t.qualifier
        sep = "=" if t.kind == "modifier" else ":"
        value = t.value or ""
        if value and not value.startswith("/"):
            value = sep + value
        out.add(f"{qualifier}{t.name}{value.lower()}")
    return frozenset(out)
