"""A customer edits the shared apex TXT set between plan and write (issue 10, class 3): apply
re-reads what it is about to change and refuses the zone, instead of writing the set it read
at plan time over the customer's new value. The edit lands through a proxy in front of
PowerDNS's API, at the moment the plan has read the zone and before apply writes it."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.octodns_project import CUSTOMER, declare, run, write_project
from tests.servers import PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures


class EditingProxy:
    """Forwards to PowerDNS's API; after the first read of ``zone``, runs ``edit`` once."""

    def __init__(self, api_port: int, zone: str, edit: Callable[[], None]) -> None:
        done = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if self.command == "GET" and zone in self.path and not done.is_set():
                    done.set()
                    edit()  # the customer, between our read and our write
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PATCH = do_POST = do_PUT = do_DELETE = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        self.port = self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def proxied(pdns: PdnsServer) -> Iterator[tuple[PdnsServer, EditingProxy]]:  # noqa: F811
    def edit() -> None:
        pdns.request("PATCH", "zones/mosamuseum.com.", {"rrsets": [{
            "name": "mosamuseum.com.", "type": "TXT", "ttl": 300, "changetype": "REPLACE",
            "records": [{"content": c, "disabled": False} for c in (
                '"google-site-verification=Zx81-abc_123"',
                '"v=spf1 include:_spf.google.com ~all"',
                '"apple-domain-verification=NEW-VALUE-ADDED-NOW"')]}]})

    proxy = EditingProxy(pdns.api_port, "mosamuseum.com", edit)
    try:
        yield pdns, proxy
    finally:
        proxy.stop()


def test_a_customer_edit_between_plan_and_write_is_never_lost(
    tmp_path: Path, proxied: tuple[PdnsServer, EditingProxy],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, proxy = proxied
    options = {**server.target_options(), "port": proxy.port}
    write_project(tmp_path, {"powerdns": options}, default="powerdns")
    declare(tmp_path, "mosa", """
        institution: mosa
        name: Mosa Museum
        domains:
          mosamuseum.com:
            spf: {include: [_spf.google.com]}
        """)
    server.create_zone("mosamuseum.com", CUSTOMER)
    server.create_zone("dmarc.secutix.com")
    applied = run(tmp_path, capsys, "apply", "--no-verify")
    assert applied.code == 1
    assert "error[apply.zone-changed]" in applied.err and "TXT @" in applied.err
    live = server.rrsets("mosamuseum.com")[("", "TXT")][1]
    assert '"apple-domain-verification=NEW-VALUE-ADDED-NOW"' in live  # the edit survived
    # The next apply sees the edit, merges ours beside it, and keeps it.
    again = run(tmp_path, capsys, "apply", "--no-verify")
    assert again.code == 0, again.err
    live = server.rrsets("mosamuseum.com")[("", "TXT")][1]
    assert '"apple-domain-verification=NEW-VALUE-ADDED-NOW"' in live
    assert '"v=spf1 include:_spf.google.com include:spf.secutix.com ~all"' in live
