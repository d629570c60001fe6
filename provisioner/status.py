"""Where each institution stands (DESIGN §12): records, keys, DMARC, bulk-sender readiness.

Built from one live verification of the fleet (or a shard), the key state, and the
declarations. Each record's state is named as SES names it (success, pending, failed,
temporary failure) with its reason, and *since when*: the previous run's state file is read
and a state keeps its date until it changes.

Readiness for Google's, Yahoo's and Microsoft's bulk-sender rules, as far as DNS can show:
SPF and DKIM passing, DMARC at least ``none`` and aligned, keys of at least 1024 bits (a
warning under 2048), the return-path MX, and forward-confirmed reverse DNS for the platform's
sending IPs. What DNS cannot show (one-click unsubscribe, the spam rate, TLS) is listed as not
checkable from DNS, never as passed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from provisioner.config import Project
from provisioner.model import DnsMode
from provisioner.verify import Report

SES = {"success": "success", "pending": "pending", "failed": "failed",
       "temporary_failure": "temporary failure"}
NOT_FROM_DNS = (
    ("unsubscribe", "one-click unsubscribe (RFC 8058) in marketing mail: a header of each "
                    "message, not DNS"),
    ("spam-rate", "a spam rate under 0.3 % (Google Postmaster Tools): the receivers' data"),
    ("tls", "TLS for SMTP: the sending servers' configuration"),
)


@dataclass(frozen=True)
class Row:
    """One readiness criterion: ``ok`` True/False, or None when it cannot be judged: not
    applicable or not checkable from DNS, or ``unknown`` (no server answered this run)."""

    key: str
    label: str
    ok: bool | None
    detail: str
    from_dns: bool = True
    warning: bool = False
    unknown: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "ok": self.ok, "detail": self.detail,
                "from_dns": self.from_dns, "warning": self.warning, "unknown": self.unknown}


def readiness(checks: Sequence[Mapping[str, Any]], key_bits: Iterable[int],
              ptr: Sequence[Mapping[str, Any]], managed_rp: bool, domain: str = ""
              ) -> list[Row]:
    """The rows for one domain, from its checks (verify's JSON form)."""
    def by(kind: str) -> list[Mapping[str, Any]]:
        return [c for c in checks if c["check"] == kind]

    def passing(kind: str, label: str, key: str) -> Row:
        found = by(kind)
        if not found:
            return Row(key, label, None, "not declared")
        bad = [c for c in found if c["status"] != "success"]
        if not bad:
            return Row(key, label, True, f"{len(found)} record(s) pass")
        known = [c for c in bad if c["status"] != "temporary_failure"]
        if not known:  # a record nobody could read is neither passing nor failing
            return _unknown(key, label, bad[0])
        return Row(key, label, False, f"{known[0]['name']}: {known[0]['reason']}")

    rows = [passing("spf", "SPF passes for the platform's IPs", "spf"),
            passing("dkim", "DKIM keys published and reachable", "dkim"),
            passing("dmarc", "DMARC published (at least p=none) and aligned", "dmarc")]
    bits = sorted(set(key_bits))
    if not bits:
        rows.append(Row("key-size", "DKIM keys of at least 1024 bits", None,
                        "no key in the key state", from_dns=False))
    else:
        small = [b for b in bits if b < 1024]
        weak = [b for b in bits if 1024 <= b < 2048]
        rows.append(Row("key-size", "DKIM keys of at least 1024 bits", not small,
                        f"{', '.join(map(str, bits))} bits" + (
                            "; under 2048: rotate to 2048" if weak else ""),
                        from_dns=False, warning=bool(weak)))
    # the return path's MX, not the sender domain's own (checked as a courtesy)
    mx = [c for c in by("mx") if c["name"].rstrip(".") != domain]
    if managed_rp or mx:
        bad = [c for c in mx if c["status"] != "success"]
        known = [c for c in bad if c["status"] != "temporary_failure"]
        if bad and not known:
            rows.append(_unknown("return-path", "return-path MX", bad[0]))
        else:
            rows.append(Row("return-path", "return-path MX", not bad and bool(mx),
                            known[0]["reason"] if bad else f"{len(mx)} MX check(s) pass"))
    else:
        rows.append(Row("return-path", "return-path MX", None, "no return path declared"))
    if ptr:
        label = "PTR with forward-confirmed reverse DNS for the sending IPs"
        bad = [p for p in ptr if not p["ok"]]
        detail = "; ".join(f"{p['ip']}: {p['detail']}" for p in (bad or ptr))
        if bad and all(p.get("unknown") for p in bad):
            rows.append(Row("ptr", label, None, "unknown: " + detail, unknown=True))
        else:
            rows.append(Row("ptr", label, not bad, detail))
    else:
        rows.append(Row("ptr", "PTR with forward-confirmed reverse DNS for the sending IPs",
                        None, "no sending_ips in provisioner.yaml"))
    rows += [Row(k, label, None, "not checkable from DNS", from_dns=False)
             for k, label in NOT_FROM_DNS]
    return rows


def _unknown(key: str, label: str, check: Mapping[str, Any]) -> Row:
    return Row(key, label, None, f"unknown: {check['name']}: no answer ({check['reason']})",
               unknown=True)


def ready(rows: Sequence[Row]) -> bool:
    """Every criterion met or not applicable; a criterion nobody could check is not ready."""
    return all(r.ok is not False and not r.unknown for r in rows)


def unknown(rows: Sequence[Row]) -> bool:
    """Not ready only for want of an answer: nothing failed, something went unchecked."""
    return any(r.unknown for r in rows) and all(r.ok is not False for r in rows)


def check_ptr(client: Any, ips: Sequence[str]) -> list[dict[str, Any]]:
    """Forward-confirmed reverse DNS (FCrDNS) of each sending IP, through the recursive
    servers: its PTR names, one of which resolves back to it."""
    import ipaddress

    from provisioner.dnsclient import NOERROR, Query, fqdn

    servers = client.recursive_servers()
    out: list[dict[str, Any]] = []
    if not servers:
        return [{"ip": ip, "ok": False, "unknown": True, "detail": "no resolver to ask"}
                for ip in ips]
    server = servers[0]
    for ip in ips:
        rev = ipaddress.ip_address(ip).reverse_pointer + "."
        q = Query(server, fqdn(rev), "PTR")
        answer = client.lookup_many([q])[q]
        names = [str(v) for v in answer.values] if answer.status == NOERROR else []
        if not names:
            answered = answer.status in (NOERROR, "NXDOMAIN")  # NOERROR here: no PTR data
            out.append({"ip": ip, "ok": False, "unknown": not answered,
                        "detail": f"no PTR ({answer.status})" if answered else
                        f"no answer for its PTR ({answer.status})"})
            continue
        rtype = "AAAA" if ":" in ip else "A"
        confirmed = None
        wanted = ipaddress.ip_address(ip)
        for name in names:
            fq = Query(server, fqdn(name), rtype)
            forward = client.lookup_many([fq])[fq]
            addresses = set()
            for v in forward.values:
                try:
                    addresses.add(ipaddress.ip_address(str(v)))
                except ValueError:
                    continue
            if wanted in addresses:
                confirmed = name
                break
        out.append({"ip": ip, "ok": confirmed is not None,
                    "detail": f"PTR {confirmed} resolves back" if confirmed else
                    f"PTR {names[0]} does not resolve back to {ip}"})
    return out


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def build(project: Project, report: Report, states: Mapping[str, Any], ptr: list[dict[str, Any]],
          now: datetime, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The status document: per institution and domain, and the fleet summary."""
    previous_since = (previous or {}).get("since", {})
    since: dict[str, dict[str, str]] = {}
    checks_of: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for checked in report.domains:
        checks_of[(checked.institution or "", checked.domain)] = [c.to_json()
                                                                  for c in checked.checks]
    institutions = []
    counts = {"institutions": 0, "domains": 0, "ready": 0, "unknown": 0, "records": 0,
              **{v: 0 for v in SES.values()}}
    from provisioner.keys.service import policy_of

    for inst in project.institutions:
        state = states.get(inst.code)
        policy = policy_of(project, inst)
        keys = []
        bits: list[int] = []
        if state is not None:
            for slot in state.slots:
                if slot.key is None:
                    continue
                bits.append(slot.key.bits if slot.key.algorithm == "rsa" else 2048)
                age = (now - slot.key.created).days
                keys.append({"selector": slot.label, "status": slot.status.value,
                             "key": slot.key.id, "spec": slot.key.spec, "age_days": age,
                             "next_rotation": _stamp(slot.key.created +
                                                     policy.rotation_interval)
                             if slot.status.value == "signing" else None})
        domains = []
        for dom in inst.domains:
            checks = checks_of.get((inst.code, dom.name), [])
            records = []
            for c in checks:
                key = f"{inst.code}|{dom.name}|{c['check']}|{c['name']}"
                status = SES.get(c["status"], c["status"])
                old = previous_since.get(key)
                when = old["since"] if old and old.get("status") == status else _stamp(now)
                since[key] = {"status": status, "since": when}
                records.append({"check": c["check"], "name": c["name"], "status": status,
                                "reason": c["reason"], "message": c["message"],
                                "since": when})
                counts[status] = counts.get(status, 0) + 1
                counts["records"] += 1
            rows = readiness(checks, bits, ptr, dom.return_path is not None, dom.name)
            ok = ready(rows)
            counts["domains"] += 1
            counts["ready"] += ok
            counts["unknown"] += unknown(rows)
            domains.append({
                "domain": dom.name, "dns": "external" if dom.dns is DnsMode.EXTERNAL
                else "managed",
                # the ramp's rung: none, quarantine; t=y, quarantine, reject; t=y, reject
                "dmarc": {"policy": dom.dmarc.policy,
                          "subdomain_policy": dom.dmarc.subdomain_policy,
                          "testing": dom.dmarc.testing,
                          "rung": dom.dmarc.policy + ("; t=y" if dom.dmarc.testing
                                                      and dom.dmarc.policy != "none" else "")},
                "records": records, "ready": ok, "unknown": unknown(rows),
                "readiness": [r.to_json() for r in rows]})
        counts["institutions"] += 1
        institutions.append({"code": inst.code, "name": inst.name, "keys": keys,
                             "domains": domains})
    return {"generated": _stamp(now), "platform": project.platform.name, "summary": counts,
            "ptr": ptr, "institutions": institutions, "since": since}


def read_previous(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
