"""Benchmark: the status page for 10,000 institutions, built and opened.

The fleet's declarations are generated (benchmarks/bench_plan.make_project's form, local
target); the live verification is stood in by a report of the same shape as verify's (one
domain per institution, 7 checks each, 3 % failing, 2 % pending): the page's cost is the
document and the HTML, measured here, while verify's own speed is bench_verify's. Goals from
issue 14: built in under 5 s, opened (parsed and first page rendered, in Debian's Chromium)
in under 1 s. A plain page of the same records as one HTML table, also opened, is the peer:
what a naive static report costs.

    .venv/bin/python benchmarks/bench_status.py [--institutions 10000]
"""

from __future__ import annotations

import argparse
import gzip
import html
import logging
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from provisioner import status, statuspage  # noqa: E402
from provisioner.config import load_project  # noqa: E402
from provisioner.verify.results import CheckResult, DomainReport, Report, Status  # noqa: E402
from tests.octodns_project import write_project  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]


def fleet(root: Path, n: int) -> None:
    write_project(root, {"local": {"class": "octodns.provider.yaml.YamlProvider",
                                   "directory": "./build/dns"}}, default="local")
    for i in range(n):
        (root / "zones" / f"inst{i:05d}.yaml").write_text(
            f"institution: inst{i:05d}\nname: Institution {i}\ndomains:\n"
            f"  inst{i:05d}.example:\n    dns: {'external' if i % 5 == 0 else 'managed'}\n"
            "    return_path: mail\n    dmarc: {policy: quarantine}\n")


def report(project: object, rng: random.Random) -> Report:
    domains = []
    for inst in project.institutions:  # type: ignore[attr-defined]
        d = inst.domains[0].name
        checks = []
        for check, name in (("spf", d), ("spf", f"mail.{d}"), ("dkim", f"stxsel1._domainkey.{d}"),
                            ("dkim", f"stxsel2._domainkey.{d}"), ("dmarc", f"_dmarc.{d}"),
                            ("mx", f"mail.{d}"), ("mx", d)):
            roll = rng.random()
            if roll < 0.03:
                checks.append(CheckResult(check, name, Status.FAILED, "mismatch",
                                          "p=none instead of p=quarantine"))
            elif roll < 0.05:
                checks.append(CheckResult(check, name, Status.PENDING, "NXDOMAIN",
                                          f"no record at {name}"))
            else:
                checks.append(CheckResult(check, name, Status.SUCCESS, "ok", ""))
        domains.append(DomainReport(inst.code, d, tuple(checks)))
    return Report(tuple(domains))


def naive(document: dict) -> str:  # type: ignore[type-arg]
    rows = "".join(
        f"<tr><td>{html.escape(i['code'])}</td><td>{html.escape(d['domain'])}</td>"
        f"<td>{html.escape(r['check'] + ' ' + r['name'])}</td><td>{r['status']}</td>"
        f"<td>{html.escape(r['reason'])}</td></tr>"
        for i in document["institutions"] for d in i["domains"] for r in d["records"])
    return (f"<!doctype html><html><body><table>{rows}</table><script>"
            "document.body.dataset.renderedMs=String(Math.round(performance.now()));"
            "document.body.dataset.rendered='yes'</script></body></html>")


def opened(path: Path, profile: Path) -> float:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = context.new_page()
            best = float("inf")
            for _ in range(3):
                page.goto(path.as_uri())
                page.wait_for_selector("body[data-rendered=yes]", timeout=60_000)
                best = min(best, float(page.evaluate("document.body.dataset.renderedMs")))
            return best / 1000
        finally:
            context.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--institutions", type=int, default=10_000)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fleet(root, args.institutions)
        project = load_project(root / "provisioner.yaml")
        rep = report(project, random.Random(7))
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        document = status.build(project, rep, {}, [{"ip": "192.28.148.112", "ok": True,
                                                    "detail": "PTR resolves back"}], now)
        text = statuspage.page(document)
        built = time.perf_counter() - t0
        page = root / "index.html"
        page.write_text(text, encoding="utf-8")
        peer = root / "naive.html"
        peer.write_text(naive(document), encoding="utf-8")
        ours_open = opened(page, root / "p1")
        peer_open = opened(peer, root / "p2")
        n = args.institutions
        print(f"status page for {n} institutions ({document['summary']['records']} records):")
        print(f"  built (document + HTML)        {built:6.2f} s   goal < 5 s")
        print(f"  page size                      {len(text.encode()) / 2**20:6.1f} MiB, "
              f"{len(gzip.compress(text.encode(), 9)) / 2**20:.1f} MiB gzipped (as the pages "
              "job leaves it beside the page for GitLab Pages to serve)")
        print(f"  opened in Chromium (rendered)  {ours_open:6.2f} s   goal < 1 s")
        print(f"  peer: one static table         {peer_open:6.2f} s   "
              f"({peer.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
