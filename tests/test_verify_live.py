"""`provisioner verify` against a real PowerDNS: one zone per failure class, and a healthy one.

Each test publishes what a DNS administrator might have typed for the sample institution
``mosa`` (mosamuseum.com), runs the command as a user does, and reads the check a user would
look at: its status and its reason.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import os
import selectors
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from dns import message as dns_message

from provisioner.config import load_project
from provisioner.dnsclient import DnsClient, Server
from provisioner.verify import runner, verify_records
from tests.conftest import Project, cli
from tests.pdns_local import PowerDNS, clear

Rows = list[tuple[str, str, str]]
DKIM_ZONE = "dkim.secutix.com"


def rsa_key(bits: int) -> str:
    """A public key of ``bits`` bits (under 1024 only a modulus: cryptography makes none)."""
    if bits < 1024:
        key = rsa.RSAPublicNumbers(65537, (1 << (bits - 1)) | 0xF00D1).public_key()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    return base64.b64encode(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
                            ).decode()


KEY_2048 = rsa_key(2048)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerDNS]:
    pdns = PowerDNS(tmp_path_factory.mktemp("pdns-verify")).start()
    yield pdns
    pdns.stop()


@pytest.fixture
def dns(server: PowerDNS) -> Iterator[PowerDNS]:
    clear(server)
    yield server
    clear(server)


def healthy(key: str = KEY_2048) -> dict[str, Rows]:
    """Zones as a careful administrator publishes them for ``mosa`` (and the platform's)."""
    return {
        "mosamuseum.com": [
            ("", "TXT", "v=spf1 include:spf.secutix.com ~all"),
            ("", "MX", "10 mx.mosamuseum.com."),
            ("stxsel1._domainkey", "CNAME", "sel1-mosa._domainkey.dkim.secutix.com."),
            ("stxsel2._domainkey", "CNAME", "sel2-mosa._domainkey.dkim.secutix.com."),
            ("_dmarc", "TXT", "v=DMARC1; p=none; "
             "rua=mailto:dmarc@mosamuseum.com,mailto:reports@dmarc.secutix.com"),
        ],
        "secutix.com": [("spf", "TXT", "v=spf1 ip4:192.28.148.112 -all")],
        DKIM_ZONE: [(f"sel{i}-mosa._domainkey", "TXT", f"v=DKIM1; k=rsa; p={key}")
                    for i in (1, 2)],
        "dmarc.secutix.com": [("mosamuseum.com._report._dmarc", "TXT", "v=DMARC1")],
    }


def publish(dns: PowerDNS, zones: dict[str, Rows]) -> None:
    dns.add_zones(zones.items())


def change(zones: dict[str, Rows], zone: str, name: str, rtype: str,
           *values: str) -> dict[str, Rows]:
    """The zones with (name, rtype) replaced by ``values`` (none: removed)."""
    rows = [r for r in zones[zone] if (r[0], r[1]) != (name, rtype)]
    zones[zone] = rows + [(name, rtype, v) for v in values]
    return zones


def mosa_project(project: Project, extra: str = "") -> Project:
    project.zone("mosa", f"""
        institution: mosa
        name: Mosa Museum
        domains:
          mosamuseum.com:
            dns: managed
            dmarc:
              policy: none
              rua: [mailto:dmarc@mosamuseum.com]
        {extra}
    """)
    for other in project.zones.glob("*.yaml"):
        if other.stem != "mosa":
            other.unlink()
    return project


def verify(project: Project, capsys: pytest.CaptureFixture[str],
           *servers: str) -> dict[str, dict[str, Any]]:
    """Run ``verify --format json``; the checks by (check, name) and the exit code."""
    args = [a for s in servers for a in ("--nameserver", s)]
    result = cli(project, capsys, "verify", *args, "--timeout", "0.3", "--format", "json")
    assert result.code != 1, result.err
    report = json.loads(result.out)
    checks = {f"{c['check']} {c['name']}": c for d in report["domains"] for c in d["checks"]}
    checks["exit"] = {"code": result.code}
    return checks


def status(checks: dict[str, dict[str, Any]], key: str) -> tuple[str, str]:
    return checks[key]["status"], checks[key]["reason"]


SPF = "spf mosamuseum.com"
SEL1 = "dkim stxsel1._domainkey.mosamuseum.com"
DMARC = "dmarc _dmarc.mosamuseum.com"
MX = "mx mosamuseum.com"


def test_healthy_zone_succeeds_and_exits_0(dns: PowerDNS, project: Project,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    publish(dns, healthy())
    checks = verify(mosa_project(project), capsys, dns.address)
    assert checks.pop("exit")["code"] == 0
    assert {k: c["status"] for k, c in checks.items()} == {
        SPF: "success", SEL1: "success", "dkim stxsel2._domainkey.mosamuseum.com": "success",
        DMARC: "success", MX: "success",
        "dmarc mosamuseum.com._report._dmarc.dmarc.secutix.com": "success"}
    assert checks[SPF]["found"] == ["v=spf1 include:spf.secutix.com ~all"]
    assert "2048 bits" in checks[SEL1]["message"]


def test_nothing_published_is_pending_and_exits_2(dns: PowerDNS, project: Project,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    publish(dns, {"mosamuseum.com": [], **{k: v for k, v in healthy().items()
                                           if k != "mosamuseum.com"}})
    checks = verify(mosa_project(project), capsys, dns.address)
    assert checks["exit"]["code"] == 2
    assert status(checks, SPF) == ("pending", "NODATA")
    assert status(checks, SEL1) == ("pending", "NXDOMAIN")
    assert status(checks, DMARC) == ("pending", "NXDOMAIN")
    assert checks[SPF]["expected"] == ["v=spf1 include:spf.secutix.com ~all"]


def test_zone_the_server_does_not_serve_is_a_temporary_failure(
        dns: PowerDNS, project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    checks = verify(mosa_project(project), capsys, dns.address)
    assert status(checks, SPF) == ("temporary_failure", "REFUSED")
    assert checks["exit"]["code"] == 2


def test_two_spf_records_fail(dns: PowerDNS, project: Project,
                              capsys: pytest.CaptureFixture[str]) -> None:
    publish(dns, change(healthy(), "mosamuseum.com", "", "TXT",
                        "v=spf1 include:spf.secutix.com ~all", "v=spf1 mx -all"))
    assert status(verify(mosa_project(project), capsys, dns.address), SPF) == (
        "failed", "multiple-records")


def test_spf_without_the_platform_fails_with_mismatch(
        dns: PowerDNS, project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    publish(dns, change(healthy(), "mosamuseum.com", "", "TXT", "v=spf1 mx ~all"))
    checks = verify(mosa_project(project), capsys, dns.address)
    assert status(checks, SPF) == ("failed", "mismatch")
    assert "include:spf.secutix.com" in checks[SPF]["message"]


def test_customer_mechanisms_beside_ours_still_pass(
        dns: PowerDNS, project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    zones = change(healthy(), "mosamuseum.com", "", "TXT",
                   "v=spf1 ip4:203.0.113.0/24 include:spf.secutix.com ~all", "google-site=x")
    publish(dns, zones)
    assert status(verify(mosa_project(project), capsys, dns.address), SPF) == ("success", "ok")


def test_eleven_dns_lookups_fail_with_lookup_limit(
        dns: PowerDNS, project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    zones = healthy()
    terms = " ".join(f"a:h{i}.mosamuseum.com" for i in range(10))
    change(zones, "mosamuseum.com", "", "TXT", f"v=spf1 {terms} include:spf.secutix.com ~all")
    zones["mosamuseum.com"] += [(f"h{i}", "A", f"203.0.113.{i}") for i in range(10)]
    publish(dns, zones)
    checks = verify(mosa_project(project), capsys, dns.address)
    assert status(checks, SPF) == ("failed", "lookup-limit")


def test_three_void_lookups_fail_with_void_lookup_limit(
        dns: PowerDNS, project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    terms = " ".join(f"a:gone{i}.mosamuseum.com" for i in range(3))
    publish(dns, change(healthy(), "mosamuseum.com", "", "TXT",
                        f"v=spf1 {terms} include:spf.secutix.com ~all"))
    checks = verify(mosa_project(project), capsys, dns.address)
    assert status(checks, SPF) == ("failed", "void-lookup-limit")


@pytest.mark.parametrize(
    ("name", "target", "reason"),
    [
        ("stxsel1._domainkey.mosamuseum.com.mosamuseum.com.",
         "sel1-mosa._domainkey.dkim.secutix.com.", "zone-doubled"),
        ("stxsel1._domainkey", "sel1-mosa._domainkey.dkim.secutix.com.mosamuseum.com.",
         "missing-trailing-dot"),
        ("stxsel1._domainkey", "sel1-other._domainkey.dkim.secutix.com.", "mismatch"),
    ],
)
def test_dkim_cname_mistakes_are_named(dns: PowerDNS, project: Project,
                                       capsys: pytest.CaptureFixture[str], name: str,
                                       target: str, reason: str) -> None:
    zones = change(healthy(), "mosamuseum.com", "stxsel1._domainkey", "CNAME")
    zones["mosamuseum.com"].append((name, "CNAME", target))
    publish(dns, zones)
    assert status(verify(mosa_project(project), capsys, dns.address), SEL1) == ("failed", reason)


@pytest.mark.parametrize(
    ("key_text", "reason"),
    [
        (f"v=DKIM1; k=rsa; p={rsa_key(512)}", "weak-key"),
        ("v=DKIM1; k=rsa; p=", "revoked"),
        ("v=DKIM1; k=rsa; p=not*base64", "syntax"),
        ("k=rsa; v=DKIM1; p=AAAA", "syntax"),
    ],
)
def test_bad_key_records_fail(dns: PowerDNS, project: Project,
                              capsys: pytest.CaptureFixture[str], key_text: str,
                              reason: str) -> None:
    publish(dns, change(healthy(), DKIM_ZONE, "sel1-mosa._domainkey", "TXT", key_text))
    assert status(verify(mosa_project(project), capsys, dns.address), SEL1) == ("failed", reason)


def test_key_in_literal_quotes_fails(dns: PowerDNS, project: Project,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    key = rsa_key(1024)
    raw = f'"\\"v=DKIM1; k=rsa; p={key[:150]}" "{key[150:]}\\""'  # as a careless UI stores it
    publish(dns, change(healthy(), DKIM_ZONE, "sel1-mosa._domainkey", "TXT", raw))
    assert status(verify(mosa_project(project), capsys, dns.address), SEL1) == ("failed", "quoted")


def test_1024_bit_key_succeeds_with_a_warning(dns: PowerDNS, project: Project,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    publish(dns, healthy(key=rsa_key(1024)))
    checks = verify(mosa_project(project), capsys, dns.address)
    assert status(checks, SEL1) == ("success", "ok")
    assert "RFC 8301" in checks[SEL1]["warnings"][0]


def test_key_that_is_not_the_platforms_fails(dns: PowerDNS, project: Project) -> None:
    publish(dns, healthy())
    loaded = load_project(mosa_project(project).config)
    platform = replace(loaded.platform, dkim_public_keys={"sel1-mosa": rsa_key(2048)})
    report = verify_records(loaded.records(), platform, nameservers=[Server.parse(dns.address)])
    checks = {c.name: c for c in report.domains[0].checks if c.check == "dkim"}
    assert (checks["stxsel1._domainkey.mosamuseum.com"].reason,
            checks["stxsel2._domainkey.mosamuseum.com"].reason) == ("key-mismatch", "ok")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("v=DMARC1; p=none; rua=mailto:dmarc@mosamuseum.com", "v=DMARC1; p=reject"),
         ("failed", "multiple-records")),
        (("v=DMARC1; p=reject; rua=mailto:dmarc@mosamuseum.com,"
          "mailto:reports@dmarc.secutix.com",), ("failed", "mismatch")),
        # pct= is obsolete (RFC 9989): receivers ignore it, whatever its value: a warning
        (("v=DMARC1; p=none; pct=150; rua=mailto:dmarc@mosamuseum.com,"
          "mailto:reports@dmarc.secutix.com",), ("success", "ok")),
        (("v=DMARC1; p=none; np=reject; psd=n; t=y; rua=mailto:dmarc@mosamuseum.com,"
          "mailto:reports@dmarc.secutix.com",), ("success", "ok")),
        (("v=DMARC1; p=none; rua=mailto:dmarc@mosamuseum.com,"
          "mailto:reports@dmarc.secutix.com,mailto:x@reports.example.org",),
         ("failed", "not-authorised")),
        # tag names and keywords are case-insensitive in the ABNF (the version is not)
        (("V=DMARC1; P=None; RUA=mailto:dmarc@mosamuseum.com,"
          "mailto:reports@dmarc.secutix.com",), ("success", "ok")),
    ],
    ids=["two-records", "other-policy", "bad-pct", "rfc9989-tags", "unauthorised-rua",
         "uppercase-tags"],
)
def test_dmarc_record_classes(dns: PowerDNS, project: Project,
                              capsys: pytest.CaptureFixture[str], values: tuple[str, ...],
                              expected: tuple[str, str]) -> None:
    zones = change(healthy(), "mosamuseum.com", "_dmarc", "TXT", *values)
    zones["example.org"] = []
    publish(dns, zones)
    assert status(verify(mosa_project(project), capsys, dns.address), DMARC) == expected


def test_platform_report_authorisation_missing_is_pending(
        dns: PowerDNS, project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    zones = healthy()
    zones["dmarc.secutix.com"] = []
    publish(dns, zones)
    assert status(verify(mosa_project(project), capsys, dns.address), DMARC) == (
        "pending", "NXDOMAIN")


def return_path_project(project: Project) -> Project:
    project.zone("mosa", """
        institution: mosa
        name: Mosa Museum
        domains:
          mosamuseum.com:
            dns: managed
            return_path: mail
            dmarc:
              policy: none
              rua: [mailto:dmarc@mosamuseum.com]
              alignment: {spf: strict}
    """)
    for other in project.zones.glob("*.yaml"):
        if other.stem != "mosa":
            other.unlink()
    return project


def with_return_path(zones: dict[str, Rows], exchange: str) -> dict[str, Rows]:
    change(zones, "mosamuseum.com", "_dmarc", "TXT", "v=DMARC1; p=none; aspf=s; "
           "rua=mailto:dmarc@mosamuseum.com,mailto:reports@dmarc.secutix.com")
    zones["mosamuseum.com"] += [("mail", "MX", f"10 {exchange}"),
                                ("mail", "TXT", "v=spf1 include:spf.secutix.com -all")]
    return zones


def test_return_path_mx_and_strict_spf_alignment(dns: PowerDNS, project: Project,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    return_path_project(project)
    publish(dns, with_return_path(healthy(), "bounce.secutix.com."))
    checks = verify(project, capsys, dns.address)
    assert status(checks, "mx mail.mosamuseum.com") == ("success", "ok")
    assert status(checks, "spf mail.mosamuseum.com") == ("success", "ok")
    assert status(checks, DMARC) == ("success", "ok")
    assert "SPF can never align" in checks[DMARC]["warnings"][0]


def test_return_path_mx_elsewhere_fails(dns: PowerDNS, project: Project,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    return_path_project(project)
    publish(dns, with_return_path(healthy(), "mx.mosamuseum.com."))
    checks = verify(project, capsys, dns.address)
    assert status(checks, "mx mail.mosamuseum.com") == ("failed", "mismatch")
    assert checks["mx mail.mosamuseum.com"]["found"] == ["10 mx.mosamuseum.com."]


def test_sender_domain_without_mx_or_address_warns(dns: PowerDNS, project: Project,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    publish(dns, change(healthy(), "mosamuseum.com", "", "MX"))
    checks = verify(mosa_project(project), capsys, dns.address)
    assert status(checks, MX) == ("success", "ok")
    assert "neither MX nor address" in checks[MX]["warnings"][0]
    assert checks["exit"]["code"] == 0


@pytest.fixture
def second(tmp_path: Path) -> Iterator[PowerDNS]:
    pdns = PowerDNS(tmp_path / "second").start()
    yield pdns
    pdns.stop()


def test_servers_that_disagree_are_reported(dns: PowerDNS, second: PowerDNS, project: Project,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    publish(dns, healthy())
    publish(second, change(healthy(), "mosamuseum.com", "_dmarc", "TXT"))
    checks = verify(mosa_project(project), capsys, dns.address, second.address)
    assert status(checks, DMARC) == ("pending", "servers-disagree")
    views = {v["server"]: (v["status"], v["reason"]) for v in checks[DMARC]["servers"]}
    assert views == {dns.address: ("success", "ok"), second.address: ("pending", "NXDOMAIN")}
    assert status(checks, SPF) == ("success", "ok")


@pytest.fixture
def silent() -> Iterator[str]:
    """A UDP port that receives and never answers: a server that times out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_a_server_that_times_out_does_not_hide_the_others(
        dns: PowerDNS, silent: str, project: Project,
        capsys: pytest.CaptureFixture[str]) -> None:
    publish(dns, healthy())
    checks = verify(mosa_project(project), capsys, silent, dns.address)
    views = {v["server"]: (v["status"], v["reason"]) for v in checks[SPF]["servers"]}
    assert views == {silent: ("temporary_failure", "timeout"), dns.address: ("success", "ok")}
    assert status(checks, SPF) == ("temporary_failure", "servers-disagree")


def test_a_dead_server_is_given_up_once_not_once_per_round(
        dns: PowerDNS, project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    """An SPF include chain outside every known zone is followed one level per lookup round,
    each asked of the silent server first. Once it has been declared down, the later rounds
    must not wait for it again: it never hears the names that only later rounds need."""
    zones = change(healthy(), "mosamuseum.com", "", "TXT",
                   "v=spf1 include:a.partner.example include:spf.secutix.com ~all")
    zones["partner.example"] = [("a", "TXT", "v=spf1 include:b.partner.example -all"),
                                ("b", "TXT", "v=spf1 include:c.partner.example -all"),
                                ("c", "TXT", "v=spf1 -all")]
    publish(dns, zones)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        silent = f"127.0.0.1:{sock.getsockname()[1]}"
        checks = verify(mosa_project(project), capsys, silent, dns.address)
        sock.setblocking(False)
        heard = set()
        with contextlib.suppress(BlockingIOError):
            while True:
                heard.add(str(dns_message.from_wire(sock.recv(4096)).question[0].name))
    views = {v["server"]: (v["status"], v["reason"]) for v in checks[SPF]["servers"]}
    assert views == {silent: ("temporary_failure", "timeout"), dns.address: ("success", "ok")}
    assert "mosamuseum.com." in heard
    assert not heard & {"a.partner.example.", "b.partner.example.", "c.partner.example."}


class LossyLink:
    """A UDP relay on 127.0.0.1 in front of PowerDNS that loses the first datagram of some
    questions: every question (a query's bytes after its ID) when ``every`` is 1, every other
    distinct question when it is 2. Later copies of a question pass, as on a lossy link."""

    def __init__(self, upstream: PowerDNS, every: int) -> None:
        self.every = every
        self.seen: set[bytes] = set()
        self.dropped: list[bytes] = []
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.connect(("127.0.0.1", upstream.port))
        self.client: tuple[str, int] | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._relay, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.front.getsockname()[1]}"

    def _relay(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.front, selectors.EVENT_READ)
            selector.register(self.back, selectors.EVENT_READ)
            while not self.stopping.is_set():
                for key, _ in selector.select(0.05):
                    if key.fileobj is self.back:
                        if self.client:
                            self.front.sendto(self.back.recv(65535), self.client)
                        continue
                    wire, self.client = self.front.recvfrom(65535)
                    question = wire[2:]
                    if question not in self.seen:
                        self.seen.add(question)
                        if len(self.seen) % self.every == 0:
                            self.dropped.append(question)
                            continue
                    self.back.send(wire)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.front.close()
        self.back.close()


@pytest.mark.parametrize("every", [2, 1], ids=["every-other-question", "every-question"])
def test_lost_datagrams_are_sent_again_after_the_servers_rto(
        dns: PowerDNS, project: Project, every: int) -> None:
    """Each lost datagram is retransmitted once, the answers are those of a clean link, and
    the RTO learnt from the answers is far below the 1 s timeout: a loss costs tens of ms."""
    loaded = load_project(mosa_project(project).config)
    publish(dns, change(healthy(), "mosamuseum.com", "_dmarc", "TXT"))
    clean = verify_records(loaded.records(), loaded.platform,
                           nameservers=[Server.parse(dns.address)], timeout=1.0)
    link = LossyLink(dns, every)
    try:
        server = Server.parse(link.address)
        with DnsClient(nameservers=[server], timeout=1.0, attempts=3) as client:
            lossy = verify_records(loaded.records(), loaded.platform, client=client)
            retransmits, rto = client.retransmits, client.engine.rto(server)
    finally:
        link.close()
    outcome = [[(c.check, c.name, c.status, c.reason) for c in d.checks] for d in lossy.domains]
    assert outcome == [[(c.check, c.name, c.status, c.reason) for c in d.checks]
                       for d in clean.domains]
    assert any(c.status.value == "pending" for d in lossy.domains for c in d.checks)
    assert len(link.dropped) >= 3
    # One copy more per lost datagram; a spurious one or two under a loaded CI machine is fine.
    assert len(link.dropped) <= retransmits <= len(link.dropped) + 2
    assert rto <= 0.1


def test_wait_polls_until_the_records_appear(dns: PowerDNS, project: Project) -> None:
    loaded = load_project(mosa_project(project).config)
    publish(dns, {"mosamuseum.com": []})
    pauses: list[float] = []

    def sleep(seconds: float) -> None:  # the records get published while verify waits
        pauses.append(seconds)
        if len(pauses) == 2:
            clear(dns)
            publish(dns, healthy())

    report = verify_records(loaded.records(), loaded.platform, wait=60, sleep=sleep,
                            nameservers=[Server.parse(dns.address)])
    assert report.ok
    assert pauses == [1.0, 2.0]


def _ours(obj: object) -> bool:
    """An object of provisioner's, or a frame or function of its code (other garbage in the
    process, from pytest or a library, is not the pass's)."""
    code = getattr(obj, "f_code", None) or getattr(obj, "__code__", None)
    if code is not None:
        return "/provisioner/" in code.co_filename
    return type(obj).__module__.startswith("provisioner")


def test_a_pass_makes_no_reference_cycles(dns: PowerDNS, silent: str, project: Project) -> None:
    """verify moves what a pass leaves to the collector's permanent generation (see
    runner._collector_paused): safe only while a pass, failures and timeouts included, makes
    no garbage that only the cyclic collector could free."""
    loaded = load_project(mosa_project(project).config)
    publish(dns, change(healthy(), "mosamuseum.com", "_dmarc", "TXT", "v=DMARC1; p=bogus"))
    gc.unfreeze()
    gc.collect()
    report = verify_records(loaded.records(), loaded.platform, timeout=0.2,
                            nameservers=[Server.parse(dns.address), Server.parse(silent)])
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        cycles = sorted({type(o).__name__ for o in gc.garbage if _ours(o)})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not report.ok
    assert cycles == []


@pytest.fixture
def forking(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Worker processes for any size of pass; records how many processes each pass used."""
    used: list[int] = []
    real = runner._in_processes

    def spy(tasks: Any, client: DnsClient) -> Any:
        used.append(len(tasks))
        return real(tasks, client)

    monkeypatch.setattr(runner, "MIN_PLANS_PER_JOB", 1)
    monkeypatch.setattr(runner, "_in_processes", spy)
    return used


def test_worker_processes_give_the_same_report(dns: PowerDNS, second: PowerDNS,
                                               project: Project, forking: list[int]) -> None:
    """Every sample institution (mosa published, one DMARC record differing on the second
    server, the others not at all): 2 and 3 processes report exactly what one does, in the
    same order, and a --wait pass over the failures forks too."""
    publish(dns, healthy())
    publish(second, change(healthy(), "mosamuseum.com", "_dmarc", "TXT"))
    loaded = load_project(project.config)
    servers = [Server.parse(dns.address), Server.parse(second.address)]
    alone = verify_records(loaded.records(), loaded.platform, nameservers=servers, jobs=1)
    assert forking == []
    for jobs in (2, 3):
        shared = verify_records(loaded.records(), loaded.platform, nameservers=servers,
                                jobs=jobs, wait=1.5, sleep=lambda _: None)
        assert shared.to_json()["domains"] == alone.to_json()["domains"]
    assert forking == [2, 2, 3, 3]  # first pass, then the --wait pass, each time
    statuses = {c.status.value for d in alone.domains for c in d.checks}
    assert statuses >= {"success", "pending"} and len(alone.domains) > 6


@pytest.mark.parametrize("how", ["raises", "dies"])
def test_a_failed_worker_leaves_its_share_to_the_parent(
        dns: PowerDNS, project: Project, forking: list[int], how: str,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    publish(dns, healthy())
    loaded = load_project(project.config)
    servers = [Server.parse(dns.address)]
    alone = verify_records(loaded.records(), loaded.platform, nameservers=servers, jobs=1)

    def broken(self: DnsClient) -> None:  # runs in the forked worker only
        if how == "dies":
            os._exit(3)
        raise RuntimeError("no sockets here")

    monkeypatch.setattr(DnsClient, "after_fork", broken)
    shared = verify_records(loaded.records(), loaded.platform, nameservers=servers, jobs=2)
    assert forking == [2]
    assert shared.to_json()["domains"] == alone.to_json()["domains"]
    assert "verify worker failed" in caplog.text


def test_junit_and_text_formats(dns: PowerDNS, project: Project,
                                capsys: pytest.CaptureFixture[str]) -> None:
    publish(dns, change(healthy(), "mosamuseum.com", "_dmarc", "TXT"))
    mosa_project(project)
    junit = cli(project, capsys, "verify", "--nameserver", dns.address, "--format", "junit")
    assert junit.code == 2
    suite = ET.fromstring(junit.out).find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["dmarc _dmarc.mosamuseum.com"]
    text = cli(project, capsys, "verify", "--nameserver", dns.address)
    assert text.code == 2
    line = next(x for x in text.out.splitlines() if "_dmarc.mosamuseum.com" in x)
    assert line.split()[:5] == ["PENDING", "mosa", "dmarc", "_dmarc.mosamuseum.com", "NXDOMAIN"]


@pytest.mark.parametrize("value", ["not a server:x", "127.0.0.1:99999", ""])
def test_bad_nameserver_is_a_one_line_error(project: Project, capsys: pytest.CaptureFixture[str],
                                            value: str) -> None:
    result = cli(project, capsys, "verify", "--nameserver", value)
    assert result.code == 1
    assert len(result.err_lines) == 1 and "--nameserver" in result.err



@pytest.mark.parametrize("args", [("--jobs", "0"), ("--timeout", "0"), ("--wait", "-1")])
def test_bad_numbers_are_a_one_line_error(project: Project, capsys: pytest.CaptureFixture[str],
                                          args: tuple[str, str]) -> None:
    result = cli(project, capsys, "verify", "--nameserver", "127.0.0.1:9", *args)
    assert result.code == 1
    assert len(result.err_lines) == 1 and args[0] in result.err


@pytest.mark.parametrize(("parent_record", "expected"), [
    # the parent publishes DMARC: the tree walk finds mosamuseum.com for both names
    (True, ("success", "ok")),
    # no record above the sender: each name is its own organisation, so authorisation needed
    (False, ("failed", "not-authorised")),
])
def test_a_sibling_report_address_needs_no_authorisation_in_one_organisation(
        dns: PowerDNS, project: Project, capsys: pytest.CaptureFixture[str],
        parent_record: bool, expected: tuple[str, str]) -> None:
    """RFC 9989 §4.10: the organisational domain comes from the DNS tree walk, so
    news.mosamuseum.com reporting to reports.mosamuseum.com stays in one organisation."""
    project.zone("mosa", """
        institution: mosa
        name: Mosa Museum
        domains:
          news.mosamuseum.com:
            zone: mosamuseum.com
            dns: managed
            dmarc:
              policy: none
              rua: [mailto:agg@reports.mosamuseum.com]
    """)
    for other in project.zones.glob("*.yaml"):
        if other.stem != "mosa":
            other.unlink()
    zones = healthy()
    rows = [r for r in zones["mosamuseum.com"] if r[0] != "_dmarc" or parent_record]
    rows += [("news", "TXT", "v=spf1 include:spf.secutix.com ~all"),
             ("stxsel1._domainkey.news", "CNAME", "sel1-mosa._domainkey.dkim.secutix.com."),
             ("stxsel2._domainkey.news", "CNAME", "sel2-mosa._domainkey.dkim.secutix.com."),
             ("_dmarc.news", "TXT", "v=DMARC1; p=none; rua=mailto:agg@reports.mosamuseum.com,"
                                    "mailto:reports@dmarc.secutix.com")]
    zones["mosamuseum.com"] = rows
    zones["dmarc.secutix.com"] = [("news.mosamuseum.com._report._dmarc", "TXT", "v=DMARC1")]
    publish(dns, zones)
    checks = verify(project, capsys, dns.address)
    assert status(checks, "dmarc _dmarc.news.mosamuseum.com") == expected, {
        k: (c["status"], c["reason"], c["message"]) for k, c in checks.items() if k != "exit"}
