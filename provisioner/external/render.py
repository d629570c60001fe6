"""The instructions in four formats that carry the same records, statuses and warnings.

- markdown, for a ticket or an e-mail;
- a standalone printable HTML page (no external resource; a name never breaks inside a label:
  line-break opportunities only after dots and separators);
- a BIND zone snippet, for administrators who edit zone files (steps to remove as comments);
- JSON, for support tooling (docs/cli.md).

Every sentence goes through the translator (:mod:`provisioner.external.i18n`); every value from
a file or from live DNS is escaped for its format.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from provisioner.escape import md_code, md_text, terminal
from provisioner.external import InstitutionAdvice
from provisioner.external.advice import Action, DomainAdvice, Note, Step
from provisioner.external.i18n import N_, Translate, translator
from provisioner.names import to_unicode

ACTION = {Action.ADD: N_("add"), Action.KEEP: N_("already right"),
          Action.REPLACE: N_("replace"), Action.REMOVE: N_("remove")}
NOW = N_("Now at the DNS host:")
FOUND = N_("The check found:")
REPORTS = N_("Report addresses")
AFTERWARDS = N_("Afterwards")
WARNING = N_("Warning")
ONE_CLICK = N_("Set up with one click")
STATUS = {"done": N_("done"), "to do": N_("to do"), "wrong": N_("wrong"),
          "unknown": N_("unknown"), "": N_("not checked")}


def say(t: Translate, esc: Callable[[str], str], message: str, **fields: Any) -> str:
    """``message`` translated, its fields escaped for the format by ``esc``."""
    return t(message).format(**{k: v if isinstance(v, int) else esc(str(v))
                                for k, v in fields.items()})


def _plain(text: str) -> str:
    return text


def _md(text: str) -> str:
    return md_code(text)


def _html(text: str) -> str:
    return f"<code>{_breakable(text)}</code>"


def _escaped(t: Translate) -> Translate:
    """The translator with the product's own text HTML-escaped (fields are escaped apart)."""
    def escaped(message: str, **fields: Any) -> str:
        return html.escape(t(message), quote=False) if not fields else html.escape(
            t(message, **fields), quote=False)
    return escaped


def _status(step: Step) -> str:
    if step.action is Action.REMOVE:
        return ""
    return step.status


def closing(advice: InstitutionAdvice, t: Translate, esc: Callable[[str], str] = _plain) -> str:
    external = advice.external
    if not external:
        return say(t, esc, N_("Every domain of {code} is published by the platform: "
                              "nothing to do."), code=advice.code)
    steps = [s for d in external for s in d.steps if s.action is not Action.REMOVE]
    if advice.finished is None:
        return say(t, esc, N_("Status not checked: {count} record(s) to publish."),
                   count=len(steps))
    if advice.finished:
        return say(t, esc, N_("Finished: every record of {code} is live and right."),
                   code=advice.code)
    left = sum(1 for s in steps if s.status != "done")
    if advice.unknown:
        return say(t, esc, N_("Not finished: {left} of {count} record(s) not confirmed yet (some "
                    "servers did not answer)."), left=left, count=len(steps))
    return say(t, esc, N_("Not finished: {left} of {count} record(s) still to do or wrong."),
             left=left, count=len(steps))


def _host_lines(dom: DomainAdvice, t: Translate, esc: Callable[[str], str] = _plain
                ) -> list[str]:
    lines = []
    if dom.host.key == "generic":
        lines.append(say(t, esc, N_("DNS host not recognised from its name servers ({ns}): "
                                    "the steps below apply to any DNS host."),
                         ns=", ".join(dom.ns) or "-"))
    else:
        lines.append(say(t, esc, N_("DNS host: {host} (from the name servers {ns})."),
                         host=dom.host.name, ns=", ".join(dom.ns)))
    lines.append(say(t, esc, N_("Type each Host exactly as shown, relative to the zone "
                                "{zone}: @ means {zone} itself. Most DNS hosts add the zone "
                                "name themselves: typing the full name creates {doubled}."),
                     zone=dom.zone, doubled=f"_dmarc.{dom.zone}.{dom.zone}"))
    if dom.host.mx_priority_field:
        lines.append(t(N_("MX: type the priority in its own field and the server name as the "
                          "value.")))
    else:
        lines.append(t(N_("MX: type the priority and the server name together as the value "
                          "(10 bounce.example.net.).")))
    if dom.host.txt_quotes:
        lines.append(t(N_("TXT: type the value in double quotes.")))
    else:
        lines.append(t(N_("TXT: type the value without quotes; long values stay on one line.")))
    lines.append(t(N_("TTL is in seconds (3600 = one hour); a shorter or longer TTL offered by "
                      "your host's form is fine.")))
    lines += [t(n) for n in dom.host.notes]
    return lines


GROUPS = {"dkim": N_("DKIM"), "spf": N_("SPF"), "returnpath": N_("return path"),
          "dmarc": N_("DMARC")}


def _one_click(dom: DomainAdvice, t: Translate, esc: Callable[[str], str] = _plain
               ) -> tuple[str | None, list[str]]:
    """(the link or None, the sentences about it) for a domain."""
    oc = dom.one_click
    if oc is None:
        return None, []
    lines: list[str] = []
    if oc.url:
        from urllib.parse import urlsplit

        lines.append(say(t, esc, N_("One-click set-up: your DNS host supports Domain Connect. "
                                    "The link opens {site}, where you confirm; it applies: "
                                    "{groups}."), site=urlsplit(oc.url).hostname or "",
                         groups=", ".join(t(GROUPS[g]) for g in oc.groups)))
    else:
        lines.append(say(t, esc, N_("One-click set-up is not available ({why}): follow the "
                                    "steps below."), why=oc.reason))
    for group, why in oc.left_out:
        lines.append(say(t, esc, N_("Not in the link: {group} ({why}); follow its steps "
                                    "below."), group=t(GROUPS[group]), why=why))
    return oc.url, lines


def _warnings(advice: InstitutionAdvice, t: Translate,
              esc: Callable[[str], str] = _plain) -> list[str]:
    out = []
    for domain, host in advice.report_authorisations:
        out.append(say(t, esc, N_("DMARC reports for {domain} go to {host}, outside your "
                                  "domain: {host} must publish {authorisation} TXT v=DMARC1, "
                                  "or receivers send it no reports (RFC 7489 §7.1)."),
                       domain=domain, host=host,
                       authorisation=f"{domain}._report._dmarc.{host}"))
    return out


# --- markdown ---------------------------------------------------------------------------------


def markdown(advice: InstitutionAdvice, lang: str = "en") -> str:
    t = translator(lang)
    title = say(t, md_text, N_("DNS records for {name} ({code})"), name=advice.name,
                code=advice.code)
    out = [f"# {title}", ""]
    out.append(say(t, md_text, N_("{platform} sends e-mail on behalf of the domains below. "
                                  "Receivers (Gmail, Yahoo, Outlook) deliver it only when these "
                                  "records are published in each domain's DNS."),
                   platform=advice.platform))
    for dom in advice.domains:
        shown = to_unicode(dom.domain)
        # a validated host name: letters, digits, dots and hyphens, safe as it is
        heading = shown if shown == dom.domain else f"{shown} ({dom.domain})"
        out += ["", f"## {heading}", ""]
        if dom.managed:
            out.append(t(N_("These records are published by the platform: nothing to do.")))
            continue
        out += [f"- {line}" for line in _host_lines(dom, t, _md)]
        url, said = _one_click(dom, t, _md)
        if said:
            out.append("")
            if url:
                out.append(f"**[{t(ONE_CLICK)}](<{terminal(url, newlines=False)}>)**")
                out.append("")
            out += [f"- {line}" for line in said]
        out += ["", "| # | " + " | ".join(t(h) for h in (
            N_("Status"), N_("Action"), N_("Host"), N_("Type"), N_("Priority"), N_("Value"),
            N_("TTL (s)"))) + " |", "|---|---|---|---|---|---|---|---|"]
        for i, step in enumerate(dom.steps, start=1):
            out.append(f"| {i} | {t(STATUS[_status(step)])} | "
                       f"{t(ACTION[step.action])} | {md_code(step.host)} | {step.type} | "
                       f"{step.priority if step.priority is not None else ''} | "
                       f"{md_code(step.value)} | {step.ttl} |")
        out.append("")
        for i, step in enumerate(dom.steps, start=1):
            if step.current and step.action is not Action.ADD:
                out.append(f"- {i}. {t(NOW)} " + ", ".join(md_code(c) for c in step.current))
            if step.found and step.status in ("wrong", "to do") and \
                    set(step.found) != set(step.current):
                out.append(f"- {i}. {t(FOUND)} " + ", ".join(md_code(c) for c in step.found))
            for n in step.notes:
                mark = "**" + t(WARNING) + "**: " if n.warning else ""
                out.append(f"- {i}. {mark}{n.text(t, _md)}")
        for n in dom.notes:
            mark = "**" + t(WARNING) + "**: " if n.warning else ""
            out.append(f"- {mark}{n.text(t, _md)}")
    warnings = _warnings(advice, t, _md)
    if warnings:
        out += ["", f"## {t(REPORTS)}", ""]
        out += [f"- {w}" for w in warnings]
    out += ["", f"## {t(AFTERWARDS)}", "",
            t(N_("Changes can take up to 48 hours to be visible everywhere. The "
                         "platform checks the records on your authoritative servers and tells "
                 "you when every one is live; DKIM signing starts then.")),
            "", f"**{closing(advice, t, _md)}**", ""]
    return "\n".join(out)


# --- HTML -------------------------------------------------------------------------------------


_SEGMENT = re.compile(r"[^.;,:=\s]*[.;,:=\s]*")


def _breakable(text: str) -> str:
    """Escaped ``text`` that may break only after a dot or a separator, never inside a label:
    each segment is unbreakable (a hyphen included), with a break opportunity between them."""
    parts = [p for p in _SEGMENT.findall(terminal(text, newlines=False)) if p]
    return "<wbr>".join(f'<span class="nb">{html.escape(p)}</span>' for p in parts)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:62em;margin:2em auto;padding:0 1em;
line-height:1.4;color:#111}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:1em 0}
td,th{border:1px solid #999;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#eee}code{font-family:ui-monospace,monospace}.nb,td.host{white-space:nowrap}
.done{color:#064}.wrong,.to-do{color:#a00}.unknown{color:#850}.warning{color:#a00}
.closing{font-weight:bold;font-size:1.1em}
.one-click a{display:inline-block;padding:.5em 1em;background:#064;color:#fff;border-radius:.3em;
text-decoration:none;font-weight:bold}
@media (max-width:40em){table.records,table.records tbody,table.records tr,
table.records td{display:block;width:auto}table.records thead{display:none}
table.records tr{border:1px solid #999;margin:.6em 0;padding:.2em 0}
table.records td{border:none;padding:.1em .5em}table.records td:first-child{font-weight:bold}
table.records td[data-label]::before{content:attr(data-label) ": ";color:#555}
table.records td:empty{display:none}}
@media print{body{margin:0;max-width:none}a{color:inherit}h2{break-after:avoid}
tr{break-inside:avoid}}
"""


def html_page(advice: InstitutionAdvice, lang: str = "en") -> str:
    t = translator(lang)
    e = html.escape
    title = t(N_("DNS records for {name} ({code})"), name=advice.name, code=advice.code)
    out = ["<!doctype html>", f'<html lang="{e(lang)}"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width,initial-scale=1">',
           f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{e(title)}</h1>",
           "<p>" + e(t(N_("{platform} sends e-mail on behalf of the domains below. Receivers "
                          "(Gmail, Yahoo, Outlook) deliver it only when these records are "
                          "published in each domain's DNS."), platform=advice.platform))
           + "</p>"]
    for dom in advice.domains:
        shown = to_unicode(dom.domain)
        heading = shown if shown == dom.domain else f"{shown} ({dom.domain})"
        out.append(f"<h2>{e(heading)}</h2>")
        if dom.managed:
            out.append("<p>" + e(t(N_("These records are published by the platform: nothing "
                                      "to do."))) + "</p>")
            continue
        out.append("<ul>" + "".join(f"<li>{line}</li>"
                                    for line in _host_lines(dom, _escaped(t), _html)) + "</ul>")
        heads = (N_("#"), N_("Status"), N_("Action"), N_("Host"), N_("Type"), N_("Priority"),
                 N_("Value"), N_("TTL (s)"))
        url, said = _one_click(dom, _escaped(t), _html)
        if said:
            if url:
                out.append(f'<p class="one-click"><a href="{e(url)}">'
                           f"{e(t(ONE_CLICK))}</a></p>")
            out.append("<ul>" + "".join(f"<li>{line}</li>" for line in said) + "</ul>")
        label = [e(t(h)) for h in heads]
        out.append('<table class="records"><thead><tr>'
                   + "".join(f"<th>{e(t(h))}</th>" for h in heads) + "</tr></thead><tbody>")
        for i, step in enumerate(dom.steps, start=1):
            status = _status(step)
            out.append(
                f'<tr data-host="{e(step.host)}" data-type="{e(step.type)}" '
                f'data-status="{e(status)}" data-action="{e(step.action.value)}">'
                f"<td>{i}</td>"
                f'<td class="{e(status.replace(" ", "-"))}" data-label="{label[1]}">'
                f"{e(t(STATUS[status]))}</td>"
                f'<td data-label="{label[2]}">{e(t(ACTION[step.action]))}</td>'
                f'<td class="host" data-label="{label[3]}"><code>{e(step.host)}</code></td>'
                f'<td data-label="{label[4]}">{e(step.type)}</td>'
                f'<td data-label="{label[5]}">'
                f"{'' if step.priority is None else step.priority}</td>"
                f'<td class="value" data-label="{label[6]}"><code>{_breakable(step.value)}'
                f"</code></td>"
                f'<td data-label="{label[7]}">{step.ttl}</td></tr>')
        out.append("</tbody></table>")
        items = []
        for i, step in enumerate(dom.steps, start=1):
            if step.current and step.action is not Action.ADD:
                items.append(f"<li>{i}. {e(t(NOW))} " + ", ".join(
                    _html(c) for c in step.current) + "</li>")
            if step.found and step.status in ("wrong", "to do") and \
                    set(step.found) != set(step.current):
                items.append(f"<li>{i}. {e(t(FOUND))} " + ", ".join(
                    _html(c) for c in step.found) + "</li>")
            for n in step.notes:
                mark = (f'<strong class="warning">{e(t(WARNING))}</strong>: '
                        if n.warning else "")
                items.append(f'<li class="note">{i}. {mark}{n.text(_escaped(t), _html)}</li>')
        for n in dom.notes:
            mark = (f'<strong class="warning">{e(t(WARNING))}</strong>: ' if n.warning
                    else "")
            items.append(f'<li class="note">{mark}{e(n.text(t))}</li>')
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
    warnings = _warnings(advice, _escaped(t), _html)
    if warnings:
        out.append(f"<h2>{e(t(REPORTS))}</h2><ul>"
                   + "".join(f'<li class="note">{w}</li>' for w in warnings) + "</ul>")
    out.append(f"<h2>{e(t(AFTERWARDS))}</h2>")
    out.append("<p>" + e(t(N_("Changes can take up to 48 hours to be visible everywhere. The "
                              "platform checks the records on your authoritative servers and "
                              "tells you when every one is live; DKIM signing starts then.")))
               + "</p>")
    out.append(f'<p class="closing">{closing(advice, _escaped(t), _html)}</p></body></html>')
    return "\n".join(out) + "\n"


# --- BIND -------------------------------------------------------------------------------------


def _txt(value: str) -> str:
    """A TXT value as zone-file character strings: the UTF-8 octets cut at 255 (RFC 1035
    §3.3.14), then each piece quoted, ``"`` and ``\\`` escaped and every octet outside
    printable ASCII written ``\\DDD``: no value can close its quotes or start a new line."""
    octets = value.encode("utf-8")
    pieces = [octets[i:i + 255] for i in range(0, len(octets), 255)] or [b""]

    def quoted(piece: bytes) -> str:
        out = []
        for byte in piece:
            if byte in (0x22, 0x5C):
                out.append("\\" + chr(byte))
            elif 0x20 <= byte < 0x7F:
                out.append(chr(byte))
            else:
                out.append(f"\\{byte:03d}")
        return '"' + "".join(out) + '"'

    return " ".join(quoted(p) for p in pieces)


def _comment(text: str) -> str:
    return "; " + terminal(text, newlines=False)


def bind(advice: InstitutionAdvice, lang: str = "en") -> str:
    t = translator(lang)
    out = [_comment(t(N_("DNS records for {name} ({code})"), name=advice.name,
                      code=advice.code))]
    for dom in advice.external:
        out += ["", f"$ORIGIN {dom.zone}.", _comment(_host_lines(dom, t)[0])]
        url, said = _one_click(dom, t)
        out += [_comment(line) for line in said]
        if url:
            out.append(_comment(url))
        for i, step in enumerate(dom.steps, start=1):
            status = _status(step)
            head = f"{i}. {t(ACTION[step.action])}" + (f", {t(STATUS[status])}" if status
                                                       else "")
            out.append(_comment(head))
            for n in step.notes:
                prefix = t(WARNING) + ": " if n.warning else ""
                out.append(_comment(f"   {prefix}{n.text(t)}"))
            if step.current and step.action is not Action.ADD:
                out.append(_comment(f"   {t(NOW)} "
                                    + " | ".join(step.current)))
            line = _rr(step)
            out.append(_comment(line) if step.action is Action.REMOVE else line)
        for n in dom.notes:
            out.append(_comment(f"{t(WARNING)}: {n.text(t)}" if n.warning else n.text(t)))
    for w in _warnings(advice, t):
        out.append(_comment(w))
    out += ["", _comment(closing(advice, t)), ""]
    return "\n".join(out)


def _rr(step: Step) -> str:
    owner = step.fqdn
    if step.type == "TXT":
        data = _txt(step.value)
    elif step.type == "MX":
        data = f"{step.priority} {_name(step.value)}"
    else:
        data = _name(step.value)
    return f"{owner} {step.ttl} IN {step.type} {data}"


def _name(value: str) -> str:
    """A domain name for the zone file: only what a host name holds (a live CNAME target is
    hostile input), fully qualified."""
    safe = "".join(c if c.isalnum() or c in "-._" else f"\\{ord(c):03d}" if ord(c) < 256
                   else "?" for c in value)
    return safe if safe.endswith(".") else safe + "."


# --- JSON -------------------------------------------------------------------------------------


def to_json(advice: InstitutionAdvice, lang: str = "en") -> dict[str, Any]:
    t = translator(lang)

    def notes(items: tuple[Note, ...]) -> list[dict[str, Any]]:
        return [{"message": n.text(t), "id": n.message, "warning": n.warning} for n in items]

    return {
        "institution": advice.code, "name": advice.name, "lang": lang,
        "checked": advice.checked, "finished": advice.finished,
        "closing": closing(advice, t),
        "domains": [{
            "domain": d.domain, "zone": d.zone, "dns": "managed" if d.managed else "external",
            "host": None if d.managed else {"key": d.host.key, "name": d.host.name or None,
                                             "ns": list(d.ns),
                                             "mx_priority_field": d.host.mx_priority_field,
                                             "txt_quotes": d.host.txt_quotes},
            "form": [] if d.managed else _host_lines(d, t),
            "records": [{
                "host": s.host, "fqdn": s.fqdn, "type": s.type, "ttl": s.ttl,
                "priority": s.priority, "value": s.value, "action": s.action.value,
                "status": _status(s) or None, "current": list(s.current),
                "found": list(s.found), "role": s.role.value, "notes": notes(s.notes),
            } for s in d.steps],
            "notes": notes(d.notes),
            "spf_lookups": {k.rstrip("."): v for k, v in d.spf_lookups.items()},
            "one_click": None if d.one_click is None else {
                "url": d.one_click.url, "groups": list(d.one_click.groups),
                "left_out": [{"group": g, "why": w} for g, w in d.one_click.left_out],
                "reason": d.one_click.reason, "host": d.one_click.host_name,
                "said": _one_click(d, t)[1]},
        } for d in advice.domains],
        "report_authorisations": [{"domain": d, "destination": h}
                                  for d, h in advice.report_authorisations],
        "warnings": _warnings(advice, t),
    }


def json_text(advice: InstitutionAdvice, lang: str = "en") -> str:
    return json.dumps(to_json(advice, lang), indent=2, ensure_ascii=False) + "\n"


def lines_of(advice: InstitutionAdvice) -> Iterator[tuple[str, str, str, str]]:
    """(host, type, value, status) of every step: what the four formats must all carry."""
    for d in advice.external:
        for s in d.steps:
            yield (s.host, s.type, s.display_value, _status(s))
