"""The instructions page in a real browser (issue 13): Debian's Chromium, headless, driven by
Playwright for Python with its executable path set (Playwright never downloads a browser
here). The page loads nothing from outside, shows its records table, and no host name or value
breaks inside a DNS label, at a desktop width and a phone's."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.octodns_project import declare, write_project
from tests.servers import PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures
from tests.test_instructions_live import ACME, _instructions, _platform, _zone

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]

# Every line box of each code element: the characters before and after a break. A break is
# allowed only after a dot or a separator, never inside a label.
BREAKS = """
() => {
  const out = [];
  for (const code of document.querySelectorAll("table.records code")) {
    const text = code.textContent;
    const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
    let top = null, offset = 0;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (let i = 0; i < node.length; i++) {
        const range = document.createRange();
        range.setStart(node, i); range.setEnd(node, i + 1);
        const rect = range.getBoundingClientRect();
        if (rect.width === 0 && rect.height === 0) continue;
        if (top !== null && rect.top > top + 2) {
          out.push({text, before: text[offset + i - 1], after: text[offset + i]});
        }
        top = rect.top;
      }
      offset += node.length;
    }
  }
  return out;
}
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run scripts/install-system-deps")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield context
        finally:
            context.close()


def test_the_page_shows_its_table_and_never_breaks_a_label(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
    browser: object,
) -> None:
    write_project(tmp_path, {"powerdns": pdns.target_options()}, default="powerdns")
    declare(tmp_path, "acme", ACME)
    _platform(pdns, senders=3)
    _zone(pdns, [("", "TXT", ['"v=spf1 include:s1.example include:s2.example '
                              'include:s3.example ~all"']),
                 ("_dmarc", "TXT", ['"v=DMARC1; p=none; rua=mailto:agg@their-vendor.example"'])],
          ns=["ada.ns.cloudflare.com.", "bob.ns.cloudflare.com."])
    page_file = tmp_path / "acme.html"
    made = _instructions(tmp_path, pdns, capsys, "--format", "html", "--output",
                         str(page_file))
    assert made.code == 2, made.err
    docs = os.environ.get("INSTRUCTIONS_SCREENSHOT_DIR")
    if docs:  # the same instructions as markdown, for the README
        shown = _instructions(tmp_path, pdns, capsys)
        (Path(docs) / "instructions-example.md").write_text(shown.out, encoding="utf-8")
    page = browser.new_page()  # type: ignore[attr-defined]
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url)
            if not r.url.startswith("file://") else None)
    try:
        for width, name in ((1200, "desktop"), (390, "phone")):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(page_file.as_uri())
            rows = page.locator("table.records tbody tr")
            assert rows.count() == 6
            assert page.locator("table.records th").first.inner_text() in ("#", "n°")
            hosts = [rows.nth(i).get_attribute("data-host") for i in range(rows.count())]
            assert "stxsel1._domainkey" in hosts and "@" in hosts
            breaks = page.evaluate(BREAKS)
            bad = [b for b in breaks if b["before"] not in ".;,:= " and b["before"] is not None]
            assert bad == [], bad
            if name == "phone":
                assert breaks, "at 390 px the long values must wrap (at separators)"
            shot = tmp_path / f"instructions-{name}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if docs:  # refresh docs/instructions-*.png: the README shows them
                shutil.copy(shot, Path(docs) / shot.name)
        assert outside == []
    finally:
        page.close()
