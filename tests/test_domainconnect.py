"""Domain Connect (issue 13): the platform's template from provisioner.yaml, checked against the
Templates repository's schema and the linter's rules (one broken template per rule); its signing
key published through plan and apply; the signed apply URL verified by domainconnectzone's own
signature check through DNS; discovery against a loopback HTTPS server in the DNS host's role;
the apply simulated on the institution's zone before the link is offered."""

from __future__ import annotations

import copy
import datetime
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from provisioner import domainconnect
from provisioner.config import load_project
from provisioner.domainconnect import lint, sign
from tests.conftest import REPO
from tests.octodns_project import declare, run, write_project
from tests.servers import PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures
from tests.test_instructions_live import ACME, _platform, _zone

DC = """
domain_connect:
  provider_id: secutix.com
  service_id: mailauth
  service_name: E-mail sending
  sync_pub_key_domain: dmarc.secutix.com
"""


def _sample(tmp_path: Path, extra: str = DC) -> Any:
    import shutil

    shutil.copytree(REPO / "zones", tmp_path / "zones")
    (tmp_path / "provisioner.yaml").write_text((REPO / "provisioner.yaml").read_text() + extra)
    project = load_project(tmp_path / "provisioner.yaml")
    assert project.ok, [str(p) for p in project.problems]
    return project


def test_the_template_follows_the_rules_and_passes_schema_and_linter(tmp_path: Path) -> None:
    platform = _sample(tmp_path).platform
    template = domainconnect.template(platform)
    assert lint.check(template, domainconnect.file_name(platform)) == []
    by_group: dict[str, list[dict[str, Any]]] = {}
    for r in template["records"]:
        by_group.setdefault(r["groupId"], []).append(r)
    assert set(by_group) == {"dkim", "spf", "returnpath", "dmarc"}
    assert [(r["type"], r["host"], r["pointsTo"]) for r in by_group["dkim"]] == [
        ("CNAME", "stxsel1._domainkey", "sel1-%code%._domainkey.dkim.secutix.com"),
        ("CNAME", "stxsel2._domainkey", "sel2-%code%._domainkey.dkim.secutix.com")]
    assert not any(r["type"] == "TXT" and "v=spf1" in r.get("data", "")
                   for r in template["records"])
    assert {(r["type"], r["host"]) for r in by_group["spf"] + by_group["returnpath"]} == {
        ("SPFM", "@"), ("MX", "bounce"), ("SPFM", "bounce")}
    (dmarc,) = by_group["dmarc"]
    assert dmarc["txtConflictMatchingMode"] == "All" and dmarc["essential"] == "OnApply"
    assert template["syncPubKeyDomain"] == "dmarc.secutix.com"


def test_the_version_goes_up_only_when_the_records_change(tmp_path: Path) -> None:
    platform = _sample(tmp_path).platform
    out = tmp_path / "dc"
    path, version, changed = domainconnect.write(platform, out)
    assert (version, changed) == (1, True) and path.name == "secutix.com.mailauth.json"
    assert domainconnect.write(platform, out)[1:] == (1, False)
    (tmp_path / "provisioner.yaml").write_text((tmp_path / "provisioner.yaml").read_text()
                                               .replace("bounce.secutix.com", "rp.secutix.com"))
    moved = load_project(tmp_path / "provisioner.yaml").platform
    assert domainconnect.write(moved, out)[1:] == (2, True)
    assert json.loads(path.read_text())["version"] == 2


def _with(template: dict[str, Any], change: Any) -> dict[str, Any]:
    broken = copy.deepcopy(template)
    change(broken)
    return broken


def _record(template: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(r for r in template["records"] if r["type"] == rtype)


BROKEN = [
    ("DCTL1014", lambda t: t["records"].append(
        {"groupId": "spf", "type": "TXT", "host": "@", "data": "v=spf1 include:x.example ~all",
         "ttl": 3600})),
    ("DCTL1017", lambda t: _record(t, "SPFM").update(spfRules="v=spf1 include:x.example")),
    ("DCTL1017", lambda t: _record(t, "SPFM").update(spfRules="include:x.example ~all")),
    ("DCTL1017", lambda t: _record(t, "SPFM").update(spfRules="include:x.example foo=bar")),
    ("DCTL1018", lambda t: _record(t, "SPFM").update(spfRules="redirect=a.example "
                                                               "redirect=b.example")),
    ("DCTL1024", lambda t: _record(t, "MX").update(host="bounce.%host%")),
    ("DCTL1040", lambda t: _record(t, "CNAME").update(pointsTo="%target%")),
    ("DCTL1040", lambda t: _record(t, "MX").update(host="%rp%")),
    ("DCTL1028", lambda t: t.update(warnPhishing=True)),
    ("DCTL1029", lambda t: t.pop("syncPubKeyDomain")),
    ("DCTL1030", lambda t: t.update(records=[])),
    ("DCTL1011", lambda t: t["records"].append(
        {"groupId": "dkim", "type": "TXT", "host": "stxsel1._domainkey", "data": "x",
         "ttl": 3600})),
    ("DCTL1013", lambda t: _record(t, "TXT").update(txtConflictMatchingMode="Prefix")),
    ("DCTL1009", lambda t: _record(t, "TXT").update(groupId="%g%")),
    ("schema", lambda t: t.pop("providerName")),
    ("schema", lambda t: _record(t, "MX").pop("priority")),
]


@pytest.mark.parametrize(("code", "change"), BROKEN)
def test_each_rule_catches_its_broken_template(tmp_path: Path, code: str, change: Any) -> None:
    platform = _sample(tmp_path).platform
    template = domainconnect.template(platform)
    found = lint.check(_with(template, change), domainconnect.file_name(platform))
    assert code in {f.code for f in found}, found


def test_a_misnamed_file_is_dctl1003(tmp_path: Path) -> None:
    platform = _sample(tmp_path).platform
    found = lint.check(domainconnect.template(platform), "secutix.json")
    assert [f.code for f in found] == ["DCTL1003"]


def test_the_cli_writes_checks_and_lints(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    _sample(tmp_path)
    assert run(tmp_path, capsys, "domainconnect", "template", "--check").code == 1
    made = run(tmp_path, capsys, "domainconnect", "template")
    assert made.code == 0 and "wrote" in made.out and "(version 1)" in made.out, made.err
    assert run(tmp_path, capsys, "domainconnect", "template", "--check").code == 0
    path = tmp_path / "domainconnect" / "secutix.com.mailauth.json"
    bad = json.loads(path.read_text())
    bad["records"][2]["spfRules"] = "v=spf1 -all"
    path.write_text(json.dumps(bad))
    linted = run(tmp_path, capsys, "domainconnect", "lint")
    assert linted.code == 1 and "DCTL1017" in linted.err
    assert run(tmp_path, capsys, "domainconnect", "template", "--check").code == 1


# --- signing, discovery, simulation against PowerDNS and a loopback HTTPS host ------------------


@pytest.fixture
def https_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A DNS host's Domain Connect API on https://localhost:PORT (self-signed, trusted through
    REQUESTS_CA_BUNDLE): settings for acme.example, and the platform's template."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    state: dict[str, Any] = {"templates": {"secutix.com/mailauth"}, "asked": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["asked"].append(self.path)
            port = self.server.server_address[1]
            if self.path == "/v2/acme.example/settings":
                body = json.dumps({"providerName": "Loopback DNS", "providerId": "loopback",
                                   "urlSyncUX": f"https://localhost:{port}/sync",
                                   "urlAPI": f"https://localhost:{port}/api"}).encode()
                body = state.get("settings", body)
                if callable(body):
                    body = body(port)
                code = 200
            elif self.path.startswith("/api/v2/domainTemplates/providers/"):
                rest = self.path.removeprefix("/api/v2/domainTemplates/providers/")
                provider, _, service = rest.partition("/services/")
                code = 200 if f"{provider}/{service}" in state["templates"] else 404
                body = b"{}"
            else:
                code, body = 404, b"{}"
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "cert.pem"))
    state["port"] = server.server_address[1]
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _dc_project(root: Path, server: PdnsServer, capsys: pytest.CaptureFixture[str]) -> str:
    """A platform with Domain Connect, its signing key made and published through apply."""
    write_project(root, {"powerdns": server.target_options()}, default="powerdns")
    declare(root, "acme", ACME.replace("return_path: mail", "return_path: bounce")
            .replace("        spf:\n          include: [_spf.google.com]\n", ""))
    config = root / "provisioner.yaml"
    config.write_text(config.read_text() + DC)
    made = run(root, capsys, "domainconnect", "keygen")
    assert made.code == 0, made.err
    public = made.out.split("public_key:")[1].strip()
    assert "PRIVATE" not in made.out + made.err
    config.write_text(config.read_text() + f"  public_key: {public}\n")
    return public


def test_signed_link_after_discovery_and_simulation(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
    https_host: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dns.resolver
    from domainconnectzone.DomainConnectImpl import DomainConnect

    public = _dc_project(tmp_path, pdns, capsys)
    _platform(pdns)
    port = https_host["port"]
    _zone(pdns, [("_domainconnect", "TXT", [f'"localhost:{port}"'])])
    # The public key through the product's own plan and apply, into the platform zone.
    applied = run(tmp_path, capsys, "apply", "--no-verify", "--target", "powerdns")
    assert applied.code == 0, applied.err
    fragments = pdns.rrsets("dmarc.secutix.com.")[("_dck1", "TXT")][1]
    assert "".join(sorted(f.strip('"') for f in fragments)).count("a=RS256") == len(fragments)

    def key_check() -> dict[str, Any]:
        verified = run(tmp_path, capsys, "verify", "--nameserver", f"127.0.0.1:{pdns.dns_port}",
                       "--timeout", "0.5", "--format", "json")
        return next(c for d in json.loads(verified.out)["domains"] for c in d["checks"]
                    if c["check"] == "domainconnect")

    assert key_check()["status"] == "success"

    shown = run(tmp_path, capsys, "instructions", "acme", "--nameserver",
                f"127.0.0.1:{pdns.dns_port}", "--timeout", "0.5", "--format", "json")
    (dom,) = json.loads(shown.out)["domains"]
    oc = dom["one_click"]
    assert oc["reason"] == "supported" and oc["host"] == "Loopback DNS", oc
    # SPFM writes ~all on a name with no SPF yet: the return path's declared -all cannot come
    # through Domain Connect, so that group is left to the manual steps, and says why.
    assert oc["groups"] == ["dkim", "spf", "dmarc"], oc["left_out"]
    assert [g["group"] for g in oc["left_out"]] == ["returnpath"]
    assert "include:spf.secutix.com -all is needed" in oc["left_out"][0]["why"]
    url = urlsplit(oc["url"])
    assert (url.scheme, url.netloc) == ("https", f"localhost:{port}")
    assert url.path == "/sync/v2/domainTemplates/providers/secutix.com/services/mailauth/apply"
    assert "+" not in url.query  # spaces (none here) would be %20
    query, _, rest = url.query.partition("&sig=")
    signature, _, key = rest.partition("&key=")
    assert key == "_dck1"
    params = dict(parse_qsl(query))
    assert params == {"domain": "acme.example", "code": "acme", "dmarc_policy": "quarantine",
                      "dmarc_rua": "mailto:dmarc@acme.example,",
                      "groupId": "dkim,spf,dmarc"}
    # domainconnectzone checks the signature as a DNS host does: public key from DNS.
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = pdns.dns_port
    monkeypatch.setattr(dns.resolver, "default_resolver", resolver)
    template = domainconnect.template(load_project(tmp_path / "provisioner.yaml").platform)
    from urllib.parse import unquote

    DomainConnect(template=template).verify_sig(query, unquote(signature), key)
    with pytest.raises(Exception, match="Signature not valid"):
        DomainConnect(template=template).verify_sig(query.replace("quarantine", "none"),
                                                    unquote(signature), key)
    assert public in "".join(f.strip('"').split("d=")[1] for f in sorted(
        fragments, key=lambda f: int(f.strip('"').split(",")[0][2:])))
    # a fragment changed at the host: verify says so (hosts would refuse every link)
    pdns.request("PATCH", "zones/dmarc.secutix.com.", {"rrsets": [
        {"name": "_dck1.dmarc.secutix.com.", "type": "TXT", "ttl": 3600,
         "changetype": "REPLACE", "records": [{"content": '"p=1,a=RS256,d=AAAA"',
                                                "disabled": False}]}]})
    assert (key_check()["status"], key_check()["reason"]) == ("failed", "mismatch")
    # the link is in the markdown and the HTML too
    md = run(tmp_path, capsys, "instructions", "acme", "--nameserver",
             f"127.0.0.1:{pdns.dns_port}", "--timeout", "0.5").out
    assert f"(<https://localhost:{port}/sync/v2/" in md and "One-click set-up" in md


def test_a_stronger_dmarc_keeps_its_group_out_of_the_link(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
    https_host: dict[str, Any],
) -> None:
    _dc_project(tmp_path, pdns, capsys)
    _platform(pdns)
    _zone(pdns, [("_domainconnect", "TXT", [f'"localhost:{https_host["port"]}"']),
                 ("_dmarc", "TXT", ['"v=DMARC1; p=reject; rua=mailto:dmarc@acme.example"'])])
    shown = run(tmp_path, capsys, "instructions", "acme", "--nameserver",
                f"127.0.0.1:{pdns.dns_port}", "--timeout", "0.5", "--format", "json")
    oc = json.loads(shown.out)["domains"][0]["one_click"]
    assert oc["groups"] == ["dkim", "spf"]
    assert [g["group"] for g in oc["left_out"]] == ["returnpath", "dmarc"]
    assert "p=reject" in oc["left_out"][1]["why"]


@pytest.mark.parametrize(("state", "reason"), [
    ("no record", "no _domainconnect record"),
    ("no template", "the host does not have the template (HTTP 404)"),
])
def test_hosts_without_the_template_get_the_manual_steps(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
    https_host: dict[str, Any], state: str, reason: str,
) -> None:
    _dc_project(tmp_path, pdns, capsys)
    _platform(pdns)
    records = [] if state == "no record" else [
        ("_domainconnect", "TXT", [f'"localhost:{https_host["port"]}"'])]
    if state == "no template":
        https_host["templates"].clear()
    _zone(pdns, records)
    shown = run(tmp_path, capsys, "instructions", "acme", "--nameserver",
                f"127.0.0.1:{pdns.dns_port}", "--timeout", "0.5", "--format", "json")
    oc = json.loads(shown.out)["domains"][0]["one_click"]
    assert oc["url"] is None and oc["reason"] == reason
    assert json.loads(shown.out)["domains"][0]["records"]  # the manual steps are all there


def test_the_query_string_encodes_a_space_as_percent_20() -> None:
    assert sign.query_string({"a": "x y", "b": "c&d=e"}) == "a=x%20y&b=c%26d%3De"


@pytest.mark.parametrize(("records", "groups", "left"), [
    ([], ["dkim", "spf", "dmarc"], ["returnpath"]),
    # SPFM merges the include into the customer's SPF: their senders stay
    ([("", "TXT", ['"v=spf1 include:_spf.google.com ~all"'])], ["dkim", "spf", "dmarc"],
     ["returnpath"]),
    # a selector pointing elsewhere: the template's CNAME replaces it
    ([("stxsel1._domainkey", "CNAME", ["s1.other-esp.example."])], ["dkim", "spf", "dmarc"],
     ["returnpath"]),
    # their report address would be dropped by the All mode: DMARC stays manual
    ([("_dmarc", "TXT", ['"v=DMARC1; p=none; rua=mailto:agg@their-vendor.example"'])],
     ["dkim", "spf"], ["returnpath", "dmarc"]),
    # the return path already receives mail elsewhere
    ([("bounce", "MX", ["5 mx.acme-mail.example."])], ["dkim", "spf", "dmarc"],
     ["returnpath"]),
])
def test_the_simulated_apply_on_each_starting_state(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
    https_host: dict[str, Any], records: list[Any], groups: list[str], left: list[str],
) -> None:
    _dc_project(tmp_path, pdns, capsys)
    _platform(pdns, senders=0)
    _zone(pdns, [("_domainconnect", "TXT", [f'"localhost:{https_host["port"]}"']), *records])
    shown = run(tmp_path, capsys, "instructions", "acme", "--nameserver",
                f"127.0.0.1:{pdns.dns_port}", "--timeout", "0.5", "--format", "json")
    oc = json.loads(shown.out)["domains"][0]["one_click"]
    assert oc["groups"] == groups, oc["left_out"]
    assert [g["group"] for g in oc["left_out"]] == left
    assert f"groupId={'%2C'.join(groups)}" in oc["url"]


@pytest.mark.parametrize(("settings", "reason"), [
    (lambda port: json.dumps({"urlSyncUX": f"https://localhost:{port}/sync?next=x",
                              "urlAPI": f"https://localhost:{port}/api"}).encode(),
     "settings without usable https urlSyncUX and urlAPI (a host name, no query)"),
    (lambda port: json.dumps({"urlSyncUX": "https://[x/sync", "urlAPI": "https://[x/a"}).encode(),
     "settings without usable https urlSyncUX and urlAPI (a host name, no query)"),
    (lambda port: json.dumps({"urlSyncUX": "https://192.0.2.1/sync",
                              "urlAPI": "https://192.0.2.1/api"}).encode(),
     "settings without usable https urlSyncUX and urlAPI (a host name, no query)"),
    (lambda port: b"[" * 100_000, "settings answered HTTP 200"),
    (lambda port: b"x" * 70_000, "settings answered HTTP 200"),
])
def test_a_hostile_dns_host_gets_the_manual_steps(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
    https_host: dict[str, Any], settings: Any, reason: str,
) -> None:
    _dc_project(tmp_path, pdns, capsys)
    _platform(pdns)
    https_host["settings"] = settings
    _zone(pdns, [("_domainconnect", "TXT", [f'"localhost:{https_host["port"]}"'])])
    shown = run(tmp_path, capsys, "instructions", "acme", "--nameserver",
                f"127.0.0.1:{pdns.dns_port}", "--timeout", "0.5", "--format", "json")
    assert "Traceback" not in shown.err
    oc = json.loads(shown.out)["domains"][0]["one_click"]
    assert oc["url"] is None and oc["reason"] == reason
