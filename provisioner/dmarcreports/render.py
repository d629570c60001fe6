"""``dmarc report`` and ``dmarc recommend`` as text, JSON and HTML.

The HTML is one self-contained page: its chart of the daily pass rates is an SVG drawn by
matplotlib and inlined (no script, no font, no external resource), so it opens from a CI
artifact or a mail attachment as it is. Every value from a report (reporters' names, reverse
DNS) is escaped: a report is anybody's input.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from typing import Any

from provisioner.dmarcreports.analyse import DomainReport, Recommendation


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} %"


def text(reports: Sequence[DomainReport], since: str, until: str, top: int = 5) -> str:
    lines: list[str] = []
    for rep in reports:
        doc = rep.to_json()
        p = doc["platform"]
        lines.append(f"{rep.institution} {rep.domain} ({doc['dns']}, {rep.declared}), "
                     f"{since} to {until}: {doc['volume']} message(s), "
                     f"{_rate(doc['pass_rate'])} DMARC pass; the platform "
                     f"{_rate(p['aligned_rate'])} aligned of {p['volume']}; "
                     f"{len(doc['reporters'])} reporter(s)")
        for day in doc["daily"]:
            lines.append(f"  {day['day']}  {day['volume']:>9}  {_rate(day['pass_rate']):>9}"
                         f"  seen: {day['rung_seen']}")
        failing = doc["failing_sources"][:top]
        if failing:
            lines.append("  failing sources, by volume:")
            for s in failing:
                why = f" (explained: {s['explained']})" if s["explained"] else ""
                lines.append(f"    {s['failed']:>9}  {s['failed_share_of_volume']:.2f} %  "
                             f"{s['kind']}: {s['name']}, {s['ip_count']} IP(s){why}")
    return "\n".join(lines)


def recommendations_text(recs: Sequence[Recommendation]) -> str:
    lines: list[str] = []
    for rec in recs:
        if rec.recommended:
            head = f"raise to '{rec.next}'"
        elif rec.next is None:
            head = "at the last rung"
        else:
            head = f"stay at '{rec.current}' ({len(rec.blocking)} check(s) block '{rec.next}')"
        lines.append(f"{rec.institution} {rec.domain}: {head}")
        for c in rec.checks:
            lines.append(f"  {'ok  ' if c.ok else 'WAIT'} {c.name}: {c.measured} "
                         f"(wanted: {c.wanted})")
    return "\n".join(lines)


def chart_svg(rep: DomainReport) -> str:
    """The daily DMARC pass rate (and the platform's aligned mail) as an inline SVG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    days = sorted(rep.days)

    def rate(table: dict[str, list[int]], day: str) -> float:
        volume, passed = table.get(day, (0, 0))
        return 100.0 * passed / volume if volume else float("nan")

    rates = [rate(rep.days, d) for d in days]
    platform = [rate(rep.platform_days, d) for d in days]
    fig = Figure(figsize=(7.5, 2.8), dpi=96)
    ax = fig.add_subplot()
    volume = ax.twinx()
    volume.bar(range(len(days)), [rep.days[d][0] for d in days], color="#d9e3ea", width=0.8,
               label="messages")
    volume.set_ylabel("messages", fontsize=8)
    ax.set_zorder(volume.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot(range(len(days)), rates, marker="o", markersize=3, color="#1f6f8b",
            label="DMARC pass, all mail")
    ax.plot(range(len(days)), platform, marker="s", markersize=2, color="#2e8540",
            linestyle="--", label="the platform, aligned")
    low = min([r for r in rates + platform if r == r] or [0.0])
    ax.set_ylim(max(0.0, min(90.0, low) - 5.0), 100.5)
    ax.set_ylabel("% pass")
    step = max(1, len(days) // 8)
    ax.set_xticks(range(0, len(days), step), [d[5:] for d in days[::step]], fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    buffer = io.StringIO()
    # svg.fonttype none: text as text, no embedded glyph paths; hashsalt: the same page twice
    # is the same bytes.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "dmarc"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.find("<svg"):]
    svg = re.sub(r"<!--.*?-->|<metadata>.*?</metadata>", "", svg, flags=re.S)
    # The RDF namespaces of the metadata just removed: nothing in the page names a URL.
    return re.sub(r'\s+xmlns:(?:dc|cc|rdf)="[^"]*"', "", svg)


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .5em;
text-align:left}td.n{text-align:right}.ok{color:#176b25}.wait{color:#9a5b00}
section{margin-bottom:2.5em}.chart svg{max-width:100%;height:auto}"""


def page(reports: Sequence[DomainReport], recs: Sequence[Recommendation], since: str,
         until: str, charts: bool = True) -> str:
    e = html.escape
    by_key = {(r.institution, r.domain): r for r in recs}
    parts = [f"<!doctype html><html lang=en><meta charset=utf-8>"
             f"<meta name=viewport content='width=device-width'>"
             f"<title>DMARC reports {e(since)} to {e(until)}</title><style>{_CSS}</style>"
             f"<h1>DMARC aggregate reports, {e(since)} to {e(until)}</h1>"]
    if not reports:
        parts.append("<p id=empty>No report in this period.</p>")
    for rep in reports:
        doc = rep.to_json()
        p = doc["platform"]
        parts.append(f"<section class=domain data-institution='{e(rep.institution)}' "
                     f"data-domain='{e(rep.domain)}'><h2>{e(rep.institution)}: "
                     f"{e(rep.domain)}</h2><p>{doc['volume']} message(s), "
                     f"<b class=pass-rate>{e(_rate(doc['pass_rate']))}</b> DMARC pass; the "
                     f"platform {e(_rate(p['aligned_rate']))} aligned of {p['volume']}; "
                     f"{len(doc['reporters'])} reporter(s): "
                     f"{e(', '.join(doc['reporters']))}. Declared: "
                     f"<code>{e(rep.declared)}</code> ({e(doc['dns'])} DNS).</p>")
        if charts and rep.days:
            parts.append(f"<figure class=chart aria-label='daily pass rate'>{chart_svg(rep)}"
                         "<figcaption>Daily DMARC pass rate</figcaption></figure>")
        parts.append("<table class=daily><tr><th>day<th>messages<th>pass<th>rung seen")
        for day in doc["daily"]:
            parts.append(f"<tr><td>{e(day['day'])}<td class=n>{day['volume']}<td class=n>"
                         f"{e(_rate(day['pass_rate']))}<td>{e(str(day['rung_seen']))}")
        parts.append("</table><h3>Sources</h3><table class=sources><tr><th>source<th>kind"
                     "<th>messages<th>failing<th>share failing<th>explained")
        for s in doc["sources"]:
            parts.append(f"<tr><td>{e(s['name'])}<td>{e(s['kind'])}<td class=n>{s['volume']}"
                         f"<td class=n>{s['failed']}<td class=n>"
                         f"{e(_rate(s['failed_share_of_volume']))}<td>"
                         f"{e(s['explained'] or '')}")
        parts.append("</table>")
        rec = by_key.get((rep.institution, rep.domain))
        if rec is not None:
            verdict = (f"raise to <code>{e(rec.next or '')}</code>" if rec.recommended
                       else "at the last rung" if rec.next is None
                       else f"stay at <code>{e(rec.current)}</code>")
            parts.append(f"<h3>Policy ramp: <span class=verdict>{verdict}</span></h3><ul>")
            for c in rec.checks:
                cls = "ok" if c.ok else "wait"
                parts.append(f"<li class={cls}>{'ok' if c.ok else 'wait'}: {e(c.name)}: "
                             f"{e(c.measured)} (wanted: {e(c.wanted)})")
            parts.append("</ul>")
        parts.append("</section>")
    return "".join(parts) + "</html>\n"


def report_json(reports: Sequence[DomainReport], recs: Sequence[Recommendation],
                since: str, until: str) -> dict[str, Any]:
    by_key = {(r.institution, r.domain): r.to_json() for r in recs}
    return {"since": since, "until": until,
            "domains": [{**rep.to_json(),
                         "ramp": by_key.get((rep.institution, rep.domain))}
                        for rep in reports]}
