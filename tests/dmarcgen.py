"""Aggregate reports made for the tests and the benchmark, in the forms reporters send them:
RFC 9990 (``<version>2.0</version>``, ``testing``, ``np``) or RFC 7489 (``pct``), as plain
XML, gzip, zip, or a mail message carrying one of those."""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Row:
    ip: str
    count: int
    dkim: tuple[str, str, str] | None = None  # d=, selector, result
    spf: tuple[str, str] | None = None  # domain, result
    header_from: str = ""
    envelope_from: str = ""
    dkim_eval: str = "pass"
    spf_eval: str = "pass"
    disposition: str = "none"
    reasons: Sequence[str] = field(default_factory=tuple)


def platform_row(domain: str, count: int, ip: str = "192.28.148.112",
                 aligned: bool = True) -> Row:
    """Mail the platform sent for ``domain``: signed with stxsel1, bounced to bounce.<domain>."""
    return Row(ip, count, dkim=(domain, "stxsel1", "pass" if aligned else "fail"),
               spf=(f"bounce.{domain}", "pass"), header_from=domain,
               envelope_from=f"bounce.{domain}", dkim_eval="pass" if aligned else "fail",
               spf_eval="fail")


def other_row(domain: str, count: int, ip: str, passing: bool = False,
              reasons: Sequence[str] = ()) -> Row:
    """Mail from another sender: aligned SPF when ``passing``, else nothing aligned."""
    return Row(ip, count, dkim=None, spf=(domain if passing else "elsewhere.example",
                                          "pass" if passing else "fail"),
               header_from=domain, envelope_from=domain if passing else "elsewhere.example",
               dkim_eval="fail", spf_eval="pass" if passing else "fail",
               disposition="none", reasons=tuple(reasons))


def aggregate(domain: str, org: str, report_id: str, day: date, rows: Sequence[Row],
              policy: str = "none", testing: bool = False, form: str = "rfc9990") -> bytes:
    begin = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = begin + timedelta(days=1) - timedelta(seconds=1)
    policy_xml = [f"<domain>{escape(domain)}</domain>", "<adkim>r</adkim>", "<aspf>r</aspf>",
                  f"<p>{policy}</p>", f"<sp>{policy}</sp>"]
    if form == "rfc9990":
        policy_xml += [f"<np>{policy}</np>", f"<testing>{'y' if testing else 'n'}</testing>",
                       "<discovery_method>treewalk</discovery_method>"]
    else:
        policy_xml.append("<pct>100</pct>")
    out = ['<?xml version="1.0" encoding="UTF-8"?>', "<feedback>"]
    if form == "rfc9990":
        out.append("<version>2.0</version>")
    out += ["<report_metadata>", f"<org_name>{escape(org)}</org_name>",
            f"<email>noreply-dmarc@{escape(org)}</email>",
            f"<report_id>{escape(report_id)}</report_id>",
            f"<date_range><begin>{int(begin.timestamp())}</begin>"
            f"<end>{int(end.timestamp())}</end></date_range>", "</report_metadata>",
            "<policy_published>", *policy_xml, "</policy_published>"]
    for r in rows:
        reasons = "".join(f"<reason><type>{t}</type></reason>" for t in r.reasons)
        auth = ""
        if r.dkim:
            auth += (f"<dkim><domain>{r.dkim[0]}</domain><selector>{r.dkim[1]}</selector>"
                     f"<result>{r.dkim[2]}</result></dkim>")
        if r.spf:
            auth += (f"<spf><domain>{r.spf[0]}</domain><scope>mfrom</scope>"
                     f"<result>{r.spf[1]}</result></spf>")
        out.append(
            f"<record><row><source_ip>{r.ip}</source_ip><count>{r.count}</count>"
            f"<policy_evaluated><disposition>{r.disposition}</disposition>"
            f"<dkim>{r.dkim_eval}</dkim><spf>{r.spf_eval}</spf>{reasons}</policy_evaluated>"
            f"</row><identifiers><envelope_from>{r.envelope_from}</envelope_from>"
            f"<header_from>{r.header_from or domain}</header_from></identifiers>"
            f"<auth_results>{auth}</auth_results></record>")
    out.append("</feedback>")
    return "\n".join(out).encode()


def file_name(org: str, domain: str, day: date, report_id: str) -> str:
    begin = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    return f"{org}!{domain}!{begin}!{begin + 86399}!{report_id}.xml"


def gzipped(xml: bytes) -> bytes:
    return gzip.compress(xml, mtime=0)


def zipped(xml: bytes, name: str = "report.xml") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, xml)
    return buffer.getvalue()


def message(xml: bytes, domain: str, org: str, report_id: str, kind: str = "gzip") -> bytes:
    """A report mail as reporters send one (RFC 9990 §3.6): the report as an attachment."""
    msg = EmailMessage()
    msg["From"] = f"noreply-dmarc@{org}"
    msg["To"] = "reports@dmarc.secutix.com"
    msg["Subject"] = f"Report Domain: {domain} Submitter: {org} Report-ID: <{report_id}>"
    msg["Message-ID"] = f"<{report_id}@{org}>"
    msg.set_content(f"DMARC aggregate report for {domain}.")
    if kind == "gzip":
        msg.add_attachment(gzipped(xml), maintype="application", subtype="gzip",
                           filename=f"{org}!{domain}!{report_id}.xml.gz")
    elif kind == "zip":
        msg.add_attachment(zipped(xml), maintype="application", subtype="zip",
                           filename=f"{org}!{domain}!{report_id}.zip")
    else:
        msg.add_attachment(xml, maintype="text", subtype="xml",
                           filename=f"{org}!{domain}!{report_id}.xml")
    return msg.as_bytes()


def sample(out: str, days: int = 20, today: date | None = None) -> int:
    """The README's sample: ``days`` days of reports for mosamuseum.com from two reporters,
    the platform's mail aligned, a small sender failing. Returns the files written."""
    from pathlib import Path

    end = today or datetime.now(UTC).date()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for i in range(days):
        day = end - timedelta(days=i)
        for org in ("google.com", "yahoo.com"):
            rows = [platform_row("mosamuseum.com", 1200 + 37 * (days - i)),
                    other_row("mosamuseum.com", 40, "192.0.2.80", passing=True),
                    other_row("mosamuseum.com", 3, "203.0.113.9")]
            xml = aggregate("mosamuseum.com", org, f"{org}-{day}", day, rows)
            name = file_name(org, "mosamuseum.com", day, str(i)) + ".gz"
            (folder / name).write_bytes(gzipped(xml))
            n += 1
    return n


if __name__ == "__main__":
    import sys

    print(f"{sample(sys.argv[1] if len(sys.argv) > 1 else 'build/sample-reports')} "
          "sample reports written", file=sys.stderr)
