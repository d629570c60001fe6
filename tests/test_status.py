"""`provisioner status` and `provisioner readiness` (issue 14) against a real PowerDNS: each
record's state as SES names it, since when (kept across runs), readiness from DNS (PTR with
forward-confirmed reverse DNS included), and the static page in headless Chromium: search,
filter, a failed record with its reason, loading fast with many institutions."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from tests.octodns_project import declare, run, write_project
from tests.servers import PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures
from tests.test_instructions_browser import ARGS, CHROMIUM
from tests.test_instructions_live import ACME, _platform

MOSA = """
    institution: mosa
    name: Mosa Museum
    domains:
      mosamuseum.com:
        dns: managed
        dmarc:
          policy: quarantine
    """


def _fleet(root: Path, server: PdnsServer, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(root, {"powerdns": server.target_options()}, default="powerdns")
    declare(root, "mosa", MOSA)
    declare(root, "acme", ACME)
    _platform(server)
    server.request("PATCH", "zones/secutix.com.", {"rrsets": [
        {"name": "mail.secutix.com.", "type": "A", "ttl": 3600, "changetype": "REPLACE",
         "records": [{"content": "192.28.148.112", "disabled": False}]}]})
    server.create_zone("148.28.192.in-addr.arpa", [("112", "PTR", 3600, ["mail.secutix.com."])])
    server.create_zone("mosamuseum.com")
    server.create_zone("sel.example")
    # the DKIM keys of mosa (the fixture publishes acme's)
    from tests.octodns_project import dkim_public_key

    server.request("PATCH", "zones/dkim.secutix.com.", {"rrsets": [
        {"name": f"sel{i}-mosa._domainkey.dkim.secutix.com.", "type": "TXT", "ttl": 3600,
         "changetype": "REPLACE",
         "records": [{"content": f'"v=DKIM1; k=rsa; p={dkim_public_key()}"',
                      "disabled": False}]} for i in (1, 2)]})
    server.create_zone("acme.example", [("_dmarc", "TXT", 3600, ['"v=DMARC1; p=none"'])])
    assert run(root, capsys, "apply", "--no-verify").code == 0


def test_no_answer_is_unknown_never_not_ready(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no server answering, readiness says unknown (exit 1, as drift does), never that
    the records fail; verify's reasons say the records are not known, not that none exist."""
    import socket

    write_project(tmp_path, {"local": {"class": "octodns.provider.yaml.YamlProvider",
                                       "directory": str(tmp_path / "dns")}}, default="local")
    declare(tmp_path, "mosa", MOSA)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        where = ("--nameserver", f"127.0.0.1:{silent.getsockname()[1]}", "--timeout", "0.1")
        text = run(tmp_path, capsys, "readiness", *where)
        doc = run(tmp_path, capsys, "readiness", "--format", "json", *where)
        junit = run(tmp_path, capsys, "readiness", "--format", "junit", *where)
        (tmp_path / "s.json").write_text("{truncated")  # a state file cut short
        status = run(tmp_path, capsys, "status", "--state", str(tmp_path / "s.json"), *where)
        a_dir = run(tmp_path, capsys, "status", "--state", str(tmp_path), *where)
    assert text.code == 1, text.out + text.err
    assert "mosa mosamuseum.com: UNKNOWN" in text.out and "FAIL" not in text.out
    assert "1 unknown (no server answered)" in text.err
    rows = {r["key"]: r for r in json.loads(doc.out)[0]["rows"]}
    assert rows["spf"]["unknown"] and rows["spf"]["ok"] is None
    assert rows["spf"]["detail"].startswith("unknown: mosamuseum.com: no answer")
    assert rows["ptr"]["unknown"] and "no answer for its PTR" in rows["ptr"]["detail"]
    suite = ET.fromstring(junit.out).find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and int(suite.get("errors", 0))
    document = json.loads(status.out)
    assert document["summary"]["unknown"] == 1 and document["summary"]["ready"] == 0
    spf = next(r for r in document["institutions"][0]["domains"][0]["records"]
               if r["check"] == "spf")
    assert spf["status"] == "temporary failure"
    assert spf["message"].startswith("TXT at mosamuseum.com not known: the servers gave no "
                                     "answer")
    assert "no answer: not known this run" in status.err
    assert "is not a status state file (not its JSON): it is replaced" in status.err
    assert json.loads((tmp_path / "s.json").read_text())["since"]
    assert a_dir.code == 1 and "is a directory; give a file" in a_dir.err
    # a timeout past what the OS takes is refused at once (it was an OverflowError traceback)
    for command in ("readiness", "status", "verify", "drift"):
        huge = run(tmp_path, capsys, command, "--timeout", "3e6")
        assert huge.code == 1 and "at most 3600 (an hour)" in huge.err, huge.err
        assert "Traceback" not in huge.err


def _status(root: Path, server: PdnsServer, capsys: pytest.CaptureFixture[str],
            *args: str) -> Any:
    return run(root, capsys, "status", "--nameserver", f"127.0.0.1:{server.dns_port}",
               "--timeout", "0.5", "--state", str(root / "state.json"), *args)


def test_status_states_since_and_readiness(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    _fleet(tmp_path, pdns, capsys)
    first = _status(tmp_path, pdns, capsys)
    assert first.code == 0, first.err
    doc = json.loads(first.out)
    by = {i["code"]: i for i in doc["institutions"]}
    mosa = by["mosa"]["domains"][0]
    assert {r["status"] for r in mosa["records"]} == {"success"}
    assert mosa["ready"] is True and mosa["dns"] == "managed"
    assert mosa["dmarc"]["rung"] == "quarantine"
    mosa_rows = {r["key"]: r for r in mosa["readiness"]}
    assert mosa_rows["return-path"]["ok"] is None  # none declared: not judged
    acme = by["acme"]["domains"][0]
    states = {(r["check"], r["name"]): r for r in acme["records"]}
    assert states[("dmarc", "_dmarc.acme.example")]["status"] == "failed"
    assert states[("dmarc", "_dmarc.acme.example")]["reason"]
    assert states[("dkim", "stxsel1._domainkey.acme.example")]["status"] == "pending"
    assert acme["ready"] is False and acme["dns"] == "external"
    rows = {r["key"]: r for r in acme["readiness"]}
    assert rows["ptr"]["ok"] is True and "resolves back" in rows["ptr"]["detail"]
    assert rows["unsubscribe"]["ok"] is None and rows["unsubscribe"]["from_dns"] is False
    assert doc["summary"]["institutions"] == 2 and doc["summary"]["ready"] == 1

    # since when: kept across runs while the state holds, moved when it changes
    since = states[("dmarc", "_dmarc.acme.example")]["since"]
    time.sleep(1.1)
    pdns.request("PATCH", "zones/acme.example.", {"rrsets": [
        {"name": "stxsel1._domainkey.acme.example.", "type": "CNAME", "ttl": 3600,
         "changetype": "REPLACE", "records": [
             {"content": "sel1-acme._domainkey.dkim.secutix.com.", "disabled": False}]}]})
    second = json.loads(_status(tmp_path, pdns, capsys).out)
    again = {(r["check"], r["name"]): r for i in second["institutions"] if i["code"] == "acme"
             for r in i["domains"][0]["records"]}
    assert again[("dmarc", "_dmarc.acme.example")]["since"] == since
    moved = again[("dkim", "stxsel1._domainkey.acme.example")]
    assert moved["status"] == "success" and moved["since"] > since

    # readiness alone, in its three forms; exit 2 while a domain is not ready
    ready = run(tmp_path, capsys, "readiness", "--nameserver", f"127.0.0.1:{pdns.dns_port}",
                "--timeout", "0.5")
    assert ready.code == 2
    assert "mosa mosamuseum.com: ready" in ready.out and "acme acme.example: NOT READY" in \
        ready.out
    assert "(not from DNS)" in ready.out
    one = run(tmp_path, capsys, "readiness", "mosa", "--format", "json", "--nameserver",
              f"127.0.0.1:{pdns.dns_port}", "--timeout", "0.5")
    assert one.code == 0 and json.loads(one.out)[0]["ready"] is True
    junit = run(tmp_path, capsys, "readiness", "--format", "junit", "--nameserver",
                f"127.0.0.1:{pdns.dns_port}", "--timeout", "0.5")
    suites = ET.fromstring(junit.out)
    assert {s.get("name") for s in suites} == {"mosa mosamuseum.com", "acme acme.example"}


def test_the_page_searches_filters_and_shows_reasons(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run scripts/install-system-deps")
    from playwright.sync_api import sync_playwright

    _fleet(tmp_path, pdns, capsys)
    out = tmp_path / "site"
    made = _status(tmp_path, pdns, capsys, "--format", "html", "--output", str(out))
    assert made.code == 0, made.err
    page_file = out / "index.html"
    text = page_file.read_text()
    assert "http://" not in text and "https://" not in text.split("<script")[0]
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = context.new_page()
            page.goto(page_file.as_uri())
            page.wait_for_selector("body[data-rendered=yes]")
            assert page.locator(".card").count() == 2
            assert "institutions: 2" in page.locator("#summary").inner_text()
            page.fill("#q", "acme")
            assert page.locator(".card").count() == 1
            failed = page.locator(".card[data-code=acme] tr[data-status=failed]").first
            assert "dmarc _dmarc.acme.example" in failed.inner_text()
            assert len(failed.locator("td").nth(2).inner_text()) > 3  # the reason shown
            page.fill("#q", "")
            page.select_option("#state", "pending")
            assert [c.get_attribute("data-code") for c in page.locator(".card").all()] == \
                ["acme"]
            page.select_option("#state", "")
            page.select_option("#ready", "ready")
            assert [c.get_attribute("data-code") for c in page.locator(".card").all()] == \
                ["mosa"]
            page.select_option("#ready", "")
            shot = tmp_path / "status.png"
            page.screenshot(path=str(shot), full_page=True)
            docs = os.environ.get("INSTRUCTIONS_SCREENSHOT_DIR")
            if docs:
                import shutil

                shutil.copy(shot, Path(docs) / "status-page.png")
        finally:
            context.close()


def test_key_age_and_next_rotation_come_from_the_key_state(tmp_path: Path) -> None:
    import shutil
    from datetime import UTC, datetime, timedelta

    from provisioner import status
    from provisioner.config import load_project
    from provisioner.keys.state import InstitutionKeys, KeyInfo, Slot
    from provisioner.keys.state import Status as KeyStatus
    from provisioner.verify.results import Report
    from tests.conftest import REPO

    shutil.copy(REPO / "provisioner.yaml", tmp_path / "provisioner.yaml")
    shutil.copytree(REPO / "zones", tmp_path / "zones")
    project = load_project(tmp_path / "provisioner.yaml")
    now = datetime(2026, 12, 2, tzinfo=UTC)
    made = now - timedelta(days=40)
    state = InstitutionKeys("mosa", (
        Slot("sel1-mosa", KeyStatus.SIGNING, made,
             KeyInfo("sel1-mosa.1", "rsa", 1024, "AAAA", made)),
        Slot("sel2-mosa", KeyStatus.EMPTY)))
    doc = status.build(project, Report(()), {"mosa": state}, [], now)
    mosa = next(i for i in doc["institutions"] if i["code"] == "mosa")
    assert mosa["keys"] == [{"selector": "sel1-mosa", "status": "signing", "key": "sel1-mosa.1",
                             "spec": "rsa-1024", "age_days": 40,
                             "next_rotation": "2027-04-21T00:00:00Z"}]  # 180 days after made
    size = next(r for r in mosa["domains"][0]["readiness"] if r["key"] == "key-size")
    assert size["ok"] is True and size["warning"] is True and "rotate to 2048" in size["detail"]
