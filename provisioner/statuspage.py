"""The status page: one static HTML file, the data embedded, no external resource.

It works from a GitLab Pages artifact (or any file server, or the file opened directly): the
status document is a JSON block in the page (``</`` escaped, so no value can end it), and a
small script renders a page of matching institutions at a time, every value inserted as text
(``textContent``), never as HTML. Search (code, name, domain), filters (record state, readiness,
managed or external), a fleet summary at the top; 10,000 institutions load in well under a
second because only the first page of cards is built.
"""

from __future__ import annotations

import html
import json
from typing import Any

_CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#111;background:#fafafa}
header{background:#123;color:#fff;padding:1em 1.5em}header h1{margin:0 0 .3em;font-size:1.4em}
.summary span{display:inline-block;margin:.2em 1em .2em 0}
.controls{padding:.8em 1.5em;background:#fff;border-bottom:1px solid #ddd;position:sticky;top:0}
.controls input,.controls select{font-size:1em;padding:.3em;margin-right:.6em}
main{padding:1em 1.5em}.card{background:#fff;border:1px solid #ddd;border-radius:.3em;
margin:.6em 0;padding:.6em 1em}.card h2{font-size:1.1em;margin:.2em 0}
table{border-collapse:collapse;width:100%;margin:.4em 0}td,th{border-bottom:1px solid #eee;
padding:.2em .4em;text-align:left;vertical-align:top;font-size:.92em}
.success,.ok{color:#064}.failed,.no{color:#a00;font-weight:bold}.pending{color:#850}
.temporary-failure,.unknown{color:#850}.muted{color:#666}.badge{display:inline-block;
padding:0 .4em;border-radius:.2em;background:#eee;margin-left:.4em;font-size:.85em}
.badge.ready{background:#cfe8d6}.badge.not-ready{background:#f6d0d0}
button{font-size:1em;padding:.4em 1em;margin:1em 0}
"""

_JS = r"""
const data = JSON.parse(document.getElementById('status-data').textContent);
const el = (tag, text, cls) => { const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls; return e; };
const PAGE = 100;
let shown = PAGE, matches = [];
function summary() {
  const s = data.summary, box = document.getElementById('summary');
  const parts = [['institutions', s.institutions], ['domains', s.domains],
    ['ready', s.ready + ' of ' + s.domains + (s.unknown ? ' (' + s.unknown +
      ' unknown: no answer)' : '')], ['records', s.records],
    ['success', s.success], ['pending', s.pending], ['failed', s.failed],
    ['temporary failure', s['temporary failure']]];
  for (const [k, v] of parts) box.appendChild(el('span', k + ': ' + v));
  box.appendChild(el('span', 'generated ' + data.generated, 'muted'));
}
function keep(inst, q, state, ready, dns) {
  if (q) { const hay = [inst.code, inst.name, ...inst.domains.map(d => d.domain)]
      .join(' ').toLowerCase(); if (!hay.includes(q)) return false; }
  return inst.domains.some(d =>
    (!dns || d.dns === dns) &&
    (!ready || (ready === 'ready') === d.ready) &&
    (!state || d.records.some(r => r.status === state)));
}
function card(inst) {
  const c = el('div', null, 'card'); c.dataset.code = inst.code;
  const h = el('h2', inst.name); h.appendChild(el('span', inst.code, 'badge')); c.appendChild(h);
  if (inst.keys.length) {
    const k = el('div', null, 'muted');
    k.textContent = 'DKIM: ' + inst.keys.map(x => x.selector + ' ' + x.status + ' ' + x.spec +
      ', ' + x.age_days + ' days' + (x.next_rotation ? ', next rotation ' +
      x.next_rotation.slice(0, 10) : '')).join('; ');
    c.appendChild(k);
  }
  for (const d of inst.domains) {
    const head = el('h3', d.domain);
    head.appendChild(el('span', d.dns, 'badge'));
    head.appendChild(el('span', 'DMARC ' + d.dmarc.rung, 'badge'));
    head.appendChild(el('span', d.ready ? 'ready' : d.unknown ? 'not ready: unknown'
      : 'not ready', 'badge ' + (d.ready ? 'ready' : 'not-ready')));
    c.appendChild(head);
    const t = el('table', null, 'records');
    const hr = el('tr'); for (const x of ['record', 'state', 'reason', 'since'])
      hr.appendChild(el('th', x)); t.appendChild(hr);
    for (const r of d.records) {
      const tr = el('tr'); tr.dataset.status = r.status;
      tr.appendChild(el('td', r.check + ' ' + r.name));
      tr.appendChild(el('td', r.status, r.status.replace(' ', '-')));
      tr.appendChild(el('td', r.status === 'success' ? '' : r.reason + (r.message ? ': ' +
        r.message : '')));
      tr.appendChild(el('td', r.since.slice(0, 16).replace('T', ' '), 'muted'));
      t.appendChild(tr);
    }
    c.appendChild(t);
    const rt = el('table', null, 'readiness');
    for (const row of d.readiness) {
      const tr = el('tr');
      tr.appendChild(el('td', row.label));
      tr.appendChild(el('td', row.unknown ? 'unknown' : row.ok === null ? 'n/a' : row.ok ?
        (row.warning ? 'ok (warning)' : 'ok') : 'no',
        row.ok === null ? 'unknown' : row.ok ? 'ok' : 'no'));
      tr.appendChild(el('td', row.detail));
      tr.appendChild(el('td', row.from_dns ? 'checked from DNS' : 'not checkable from DNS',
        'muted'));
      rt.appendChild(tr);
    }
    c.appendChild(rt);
  }
  return c;
}
function render() {
  const q = document.getElementById('q').value.trim().toLowerCase();
  const state = document.getElementById('state').value;
  const ready = document.getElementById('ready').value;
  const dns = document.getElementById('dns').value;
  matches = data.institutions.filter(i => keep(i, q, state, ready, dns));
  const list = document.getElementById('list'); list.replaceChildren();
  for (const inst of matches.slice(0, shown)) list.appendChild(card(inst));
  document.getElementById('count').textContent = matches.length + ' institution(s)' +
    (matches.length > shown ? ', first ' + shown + ' shown' : '');
  document.getElementById('more').hidden = matches.length <= shown;
}
summary();
for (const id of ['q', 'state', 'ready', 'dns'])
  document.getElementById(id).addEventListener('input', () => { shown = PAGE; render(); });
document.getElementById('more').addEventListener('click', () => { shown += PAGE; render(); });
render();
document.body.dataset.renderedMs = String(Math.round(performance.now()));
document.body.dataset.rendered = 'yes';
"""


def page(document: dict[str, Any]) -> str:
    # every <, > and & as a JSON escape: no value can end the block ("</script") or switch
    # the tokenizer's script states ("<!--")
    blob = (json.dumps({k: v for k, v in document.items() if k != "since"},
                       ensure_ascii=False, separators=(",", ":"))
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
    title = html.escape(f"{document.get('platform', '')} sending domains: status")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title><style>{_CSS}</style></head><body>
<header><h1>{title}</h1><div class="summary" id="summary"></div></header>
<div class="controls">
<input id="q" type="search" placeholder="institution, name or domain" aria-label="search">
<select id="state" aria-label="record state"><option value="">any record state</option>
<option>success</option><option>pending</option><option>failed</option>
<option>temporary failure</option></select>
<select id="ready" aria-label="readiness"><option value="">ready or not</option>
<option value="ready">ready</option><option value="not ready">not ready</option></select>
<select id="dns" aria-label="dns"><option value="">managed or external</option>
<option>managed</option><option>external</option></select>
<span id="count" class="muted"></span></div>
<main id="list"></main><main><button id="more" hidden>show more</button></main>
<script type="application/json" id="status-data">{blob}</script>
<script>{_JS}</script>
</body></html>
"""
