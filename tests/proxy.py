"""A loopback HTTP proxy in front of a test server's API, for faults a real server never makes
on cue (not a test module): ``before`` may answer a request itself (a throttling error);
``after`` runs once the upstream answered and before the client hears it (a customer's edit
landing between the product's read and its write)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, str, bytes]  # status, content type, body
Before = Callable[[str, str], Reply | None]  # (method, path) -> an answer of its own, or None
After = Callable[[str, str], None]


class Proxy:
    def __init__(self, upstream_port: int, *, before: Before | None = None,
                 after: After | None = None) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                own = before(self.command, self.path) if before else None
                if own is not None:
                    status, kind, data = own
                    self._send(status, [("Content-Type", kind)], data)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if after is not None:
                    after(self.command, self.path)
                self._send(resp.status, resp.getheaders(), data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        self.port = int(self.server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
