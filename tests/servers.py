"""Real DNS hosts for the tests: PowerDNS Authoritative and a moto Route53, on 127.0.0.1.

- :class:`PdnsServer`: Debian's ``pdns_server`` with the sqlite backend and its HTTP API, on free
  ports, caches off (a change answers at once), no outbound queries (``security-poll-suffix=``).
  Zones are created and read through the HTTP API, the way an operator's tooling would, so a
  test's "customer records" are independent of octoDNS.
- :class:`MotoRoute53`: ``moto.server.ThreadedMotoServer``; boto3 finds it through
  ``AWS_ENDPOINT_URL_ROUTE_53``, with dummy credentials set only in this process and no
  ``~/.aws`` files read.

Fixtures: ``pdns`` (one server per test module, zones wiped between tests) and ``route53``
(session). Both stop when the tests end. Use ``from tests.servers import pdns, route53``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

PDNS = Path("/usr/sbin/pdns_server")
SCHEMA = Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql")
API_KEY = "test-api-key"


def free_port() -> int:
    """A port free for TCP and UDP on 127.0.0.1; never 5353 (mDNS listeners grab it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            if port == 5353:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


class PdnsServer:
    """One pdns_server; ``start``/``stop``/``kill`` may be called repeatedly (same database)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.db = workdir / "pdns.sqlite3"
        with sqlite3.connect(self.db) as conn:
            conn.executescript(SCHEMA.read_text())
        self.dns_port = free_port()
        self.api_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/v1/servers/localhost"

    def _write_config(self) -> None:
        settings = {
            "launch": "gsqlite3",
            "gsqlite3-database": str(self.db),
            "local-address": "127.0.0.1",
            "local-port": str(self.dns_port),
            "api": "yes",
            "api-key": API_KEY,
            "webserver": "yes",
            "webserver-address": "127.0.0.1",
            "webserver-port": str(self.api_port),
            "webserver-allow-from": "127.0.0.0/8",
            "default-soa-content": "ns1.test. hostmaster.@ 0 10800 3600 604800 3600",
            "security-poll-suffix": "",
            # Zone transfers only with a zone's TSIG key (TEST-NET-1 is nobody): the read-only
            # plan reads by AXFR, and an unsigned transfer must be refused.
            "allow-axfr-ips": "192.0.2.1/32",
            "cache-ttl": "0",
            "negquery-cache-ttl": "0",
            "query-cache-ttl": "0",
            "zone-cache-refresh-interval": "0",
            "distributor-threads": "1",
            "receiver-threads": "1",
            "disable-syslog": "yes",
            "loglevel": "3",
        }
        text = "".join(f"{k}={v}\n" for k, v in settings.items())
        (self.workdir / "pdns.conf").write_text(text)

    def start(self) -> PdnsServer:
        self._write_config()
        log = open(self.workdir / "pdns.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [str(PDNS), "--daemon=no", "--guardian=no", f"--config-dir={self.workdir}",
             f"--socket-dir={self.workdir}"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pdns_server exited: {(self.workdir / 'pdns.log').read_text()}")
            try:
                self.request("GET", "")
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("pdns_server did not answer on its API in 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crashed or unplugged target: no clean shutdown."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def request(self, method: str, path: str, data: Any = None) -> Any:
        body = json.dumps(data).encode() if data is not None else None
        req = urllib.request.Request(
            f"{self.api}/{path}".rstrip("/"), data=body, method=method,
            headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    # --- zones, as the customer's own tooling writes them -----------------------------------

    def create_zone(self, name: str, records: Sequence[tuple[str, str, int, Sequence[str]]] = (),
                    ) -> None:
        """A zone with NS and the given (name, type, ttl, contents) rrsets; names relative."""
        zone = name.rstrip(".") + "."
        rrsets = [self._rrset(zone, n, t, ttl, c) for n, t, ttl, c in records]
        self.request("POST", "zones", {"name": zone, "kind": "Native",
                                       "nameservers": ["ns1.test."], "rrsets": rrsets})

    @staticmethod
    def _rrset(zone: str, name: str, rtype: str, ttl: int, contents: Sequence[str]
               ) -> dict[str, Any]:
        fqdn = f"{name}.{zone}" if name else zone
        return {"name": fqdn, "type": rtype, "ttl": ttl, "changetype": "REPLACE",
                "records": [{"content": c, "disabled": False} for c in contents]}

    def rrsets(self, zone: str) -> dict[tuple[str, str], tuple[int, tuple[str, ...]]]:
        """{(relative name, type): (ttl, sorted contents)}: the zone as PowerDNS stores it."""
        zone = zone.rstrip(".") + "."
        data = self.request("GET", f"zones/{zone}")
        out = {}
        for rr in data["rrsets"]:
            name = rr["name"][: -len(zone)].rstrip(".")
            contents = tuple(sorted(r["content"] for r in rr["records"]))
            out[(name, rr["type"])] = (rr["ttl"], contents)
        return out

    def zones(self) -> list[str]:
        return sorted(z["name"] for z in self.request("GET", "zones"))

    def delete_all_zones(self) -> None:
        for zone in self.zones():
            self.request("DELETE", f"zones/{zone}")

    def add_transfer_key(self, name: str, zones: Sequence[str] = ()) -> str:
        """A TSIG key (hmac-sha256) allowed to transfer ``zones``, as ``pdnsutil
        generate-tsig-key`` and ``activate-tsig-key ZONE KEY primary`` do; returns its secret."""
        secret = base64.b64encode(os.urandom(32)).decode()
        key = self.request("POST", "tsigkeys", {"name": name, "algorithm": "hmac-sha256",
                                                "key": secret})
        for zone in zones:
            self.allow_transfer(zone, key["id"])
        return secret

    def allow_transfer(self, zone: str, key: str) -> None:
        self.request("PUT", f"zones/{zone.rstrip('.')}.",
                     {"master_tsig_key_ids": [key.rstrip(".") + "."]})

    def transfer_keys(self, zone: str) -> list[str]:
        return list(self.request("GET", f"zones/{zone.rstrip('.')}.")["master_tsig_key_ids"])

    def target_options(self) -> dict[str, Any]:
        """The target for this server (provisioner.yaml ``targets``): the octoDNS provider's
        options, plus the product's ``nameserver`` (its DNS port) for verify after apply."""
        return {"class": "octodns_powerdns.PowerDnsProvider", "host": "127.0.0.1",
                "port": self.api_port, "api_key": "env/PDNS_API_KEY", "timeout": 5,
                "nameserver": f"127.0.0.1:{self.dns_port}"}


#: moto is not rate-limited: tests run at moto's pace, not Route53's 5 requests a second (the
#: bucket itself is tested in test_route53_budget.py).
MOTO_RATE = {"requests_per_second": 1000}


class MotoRoute53:
    """A moto server with Route53; boto3 in this process talks to it, never to AWS."""

    ENV: Mapping[str, str] = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._saved: dict[str, str | None] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoRoute53:
        env = {**self.ENV, "AWS_ENDPOINT_URL_ROUTE_53": self.endpoint}
        for key, value in env.items():
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def client(self) -> Any:
        import boto3

        return boto3.client("route53", endpoint_url=self.endpoint)

    def reset(self) -> None:
        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=10
        ).close()

    def create_zone(self, name: str, records: Sequence[tuple[str, str, int, Sequence[str]]] = (),
                    ) -> str:
        zone = name.rstrip(".") + "."
        client = self.client()
        zone_id: str = client.create_hosted_zone(Name=zone, CallerReference=f"t-{time.time()}"
                                                 )["HostedZone"]["Id"]
        changes = [
            {"Action": "CREATE", "ResourceRecordSet": {
                "Name": f"{n}.{zone}" if n else zone, "Type": t, "TTL": ttl,
                "ResourceRecords": [{"Value": c} for c in contents]}}
            for n, t, ttl, contents in records
        ]
        if changes:
            client.change_resource_record_sets(HostedZoneId=zone_id,
                                               ChangeBatch={"Changes": changes})
        return zone_id

    def rrsets(self, zone: str) -> dict[tuple[str, str], tuple[int, tuple[str, ...]]]:
        zone = zone.rstrip(".") + "."
        client = self.client()
        ids = [z["Id"] for z in client.list_hosted_zones()["HostedZones"] if z["Name"] == zone]
        out = {}
        pages = client.get_paginator("list_resource_record_sets").paginate(HostedZoneId=ids[0])
        for page in pages:
            for rr in page["ResourceRecordSets"]:
                name = rr["Name"][: -len(zone)].rstrip(".")
                values = tuple(sorted(r["Value"] for r in rr.get("ResourceRecords", [])))
                out[(name, rr["Type"])] = (int(rr.get("TTL", 0)), values)
        return out


@pytest.fixture(scope="module")
def pdns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PdnsServer]:
    if not PDNS.exists():
        pytest.skip("pdns_server not installed (apt-get install pdns-server pdns-backend-sqlite3)")
    server = PdnsServer(tmp_path_factory.mktemp("pdns")).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture
def pdns(pdns_server: PdnsServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[PdnsServer]:
    """The module's PowerDNS, empty, its API key in PDNS_API_KEY for this test."""
    if pdns_server.proc is None:
        pdns_server.start()
    pdns_server.delete_all_zones()
    monkeypatch.setenv("PDNS_API_KEY", API_KEY)
    yield pdns_server


@pytest.fixture(scope="session")
def route53_server() -> Iterator[MotoRoute53]:
    server = MotoRoute53().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def route53(route53_server: MotoRoute53) -> MotoRoute53:
    """The session's moto Route53, emptied for this test."""
    route53_server.reset()
    return route53_server


__all__ = ["MOTO_RATE", "MotoRoute53", "PdnsServer", "free_port", "pdns", "pdns_server",
           "route53",
           "route53_server"]
