"""The merge-request plan note: one note, created on the first push and updated on the next.

No GitLab runs here, so a loopback HTTP server (stdlib, 127.0.0.1, a free port) answers the few
REST calls python-gitlab makes and records every request; the tests assert on what reached the
"server" and on the note a reviewer would see.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from provisioner import cli

TOKEN = "glpat-test-secret-0123456789"
BOT_ID = 77


@dataclass
class FakeGitLab:
    """The notes of merge request !5 of project 42; ``requests`` records (method, path, body)."""

    notes: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    next_id: int = 1000

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.requests if m in ("POST", "PUT", "DELETE")]


NOTES = re.compile(r"^/api/v4/projects/42/merge_requests/5/notes(?:/(\d+))?$")


def _handler(state: FakeGitLab) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest's output clean
            pass

        def _send(self, code: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            path = self.path.split("?", 1)[0]
            state.requests.append((self.command, path, body))
            if self.headers.get("PRIVATE-TOKEN") != TOKEN:
                self._send(401, {"message": "401 Unauthorized"})
                return
            if path == "/api/v4/user" and self.command == "GET":
                self._send(200, {"id": BOT_ID, "username": "project_42_bot"})
                return
            match = NOTES.match(path)
            if match is None:
                self._send(404, {"message": "404 Not found"})
                return
            note_id = match.group(1)
            if self.command == "GET" and note_id is None:
                self._send(200, state.notes)
            elif self.command == "POST" and note_id is None:
                state.next_id += 1
                note = {"id": state.next_id, "body": body["body"], "system": False,
                        "author": {"id": BOT_ID, "username": "project_42_bot"}}
                state.notes.append(note)
                self._send(201, note)
            elif self.command == "PUT" and note_id is not None:
                note = next((n for n in state.notes if n["id"] == int(note_id)), None)
                if note is None:
                    self._send(404, {"message": "404 Note Not Found"})
                    return
                note["body"] = body["body"]
                self._send(200, note)
            else:
                self._send(405, {"message": "405 Method Not Allowed"})

        do_GET = do_POST = do_PUT = do_DELETE = _handle

    return Handler


@pytest.fixture
def gitlab_server() -> Iterator[tuple[str, FakeGitLab]]:
    state = FakeGitLab()
    # A reviewer's comment quoting the marker: it must never be edited.
    state.notes.append({"id": 3, "system": False, "author": {"id": 5, "username": "alice"},
                        "body": "why does <!-- provisioner:plan --> show up in the source?"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def ci_env(monkeypatch: pytest.MonkeyPatch, gitlab_server: tuple[str, FakeGitLab]) -> FakeGitLab:
    url, state = gitlab_server
    monkeypatch.setenv("CI_SERVER_URL", url)
    monkeypatch.setenv("CI_PROJECT_ID", "42")
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "5")
    monkeypatch.setenv("CI_JOB_URL", f"{url}/group/dns/-/jobs/9")
    monkeypatch.setenv("CI_JOB_NAME", "plan")
    monkeypatch.setenv("MR_NOTE_TOKEN", TOKEN)
    return state


def _plan(tmp_path: Path, text: str) -> str:
    path = tmp_path / "plan.md"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_first_push_creates_the_note_and_the_next_push_updates_it(
    ci_env: FakeGitLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ci_env
    first = "## Plan\n\n- create `_dmarc.mosamuseum.com.` TXT\n"
    assert cli.main(["mr-note", "--file", _plan(tmp_path, first)]) == 0
    assert state.writes() == [("POST", "/api/v4/projects/42/merge_requests/5/notes")]
    ours = [n for n in state.notes if n["author"]["id"] == BOT_ID]
    assert len(ours) == 1
    assert ours[0]["body"].startswith("<!-- provisioner:plan -->\n## Plan")
    assert "create `_dmarc.mosamuseum.com.` TXT" in ours[0]["body"]
    assert "/-/jobs/9" in ours[0]["body"]
    assert "note 1001 created" in capsys.readouterr().err

    second = "## Plan\n\n- update `_dmarc.mosamuseum.com.` TXT: p=none -> p=reject\n"
    assert cli.main(["mr-note", "--file", _plan(tmp_path, second)]) == 0
    assert state.writes()[1:] == [("PUT", "/api/v4/projects/42/merge_requests/5/notes/1001")]
    ours = [n for n in state.notes if n["author"]["id"] == BOT_ID]
    assert len(ours) == 1, "the second push must update, not add, a note"
    assert "p=none -> p=reject" in ours[0]["body"]
    assert "create `_dmarc" not in ours[0]["body"]
    assert "note 1001 updated" in capsys.readouterr().err
    # The reviewer's comment that quotes the marker is untouched.
    assert state.notes[0]["body"] == "why does <!-- provisioner:plan --> show up in the source?"


def test_an_identical_push_writes_nothing(ci_env: FakeGitLab, tmp_path: Path) -> None:
    plan = _plan(tmp_path, "no changes\n")
    assert cli.main(["mr-note", "--file", plan]) == 0
    assert cli.main(["mr-note", "--file", plan]) == 0
    assert len(ci_env.writes()) == 1


def test_the_token_goes_in_a_header_and_nowhere_else(
    ci_env: FakeGitLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["mr-note", "--file", _plan(tmp_path, "plan\n")]) == 0
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert all(TOKEN not in json.dumps(body) for _, _, body in ci_env.requests)


def test_a_rejected_token_is_one_line_naming_the_cause(
    ci_env: FakeGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MR_NOTE_TOKEN", "glpat-wrong-token")
    assert cli.main(["mr-note", "--file", _plan(tmp_path, "plan\n")]) == 1
    err = capsys.readouterr().err
    assert "401" in err and "invalid or expired" in err
    assert "Traceback" not in err and "glpat-wrong-token" not in err
    assert ci_env.writes() == []


def test_an_unknown_merge_request_is_reported(
    ci_env: FakeGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "6")
    assert cli.main(["mr-note", "--file", _plan(tmp_path, "plan\n")]) == 1
    assert "404" in capsys.readouterr().err
    assert ci_env.writes() == []


@pytest.mark.parametrize(
    ("unset", "expected"),
    [("MR_NOTE_TOKEN", "MR_NOTE_TOKEN is empty or not set"),
     ("CI_MERGE_REQUEST_IID", "not in a merge request pipeline")],
)
def test_outside_a_merge_request_pipeline_it_says_what_is_missing(
    ci_env: FakeGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], unset: str, expected: str,
) -> None:
    monkeypatch.delenv(unset)
    assert cli.main(["mr-note", "--file", _plan(tmp_path, "plan\n")]) == 1
    assert expected in capsys.readouterr().err
    assert ci_env.requests == []


def test_an_unreachable_server_is_one_line(
    ci_env: FakeGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("CI_SERVER_URL", f"http://127.0.0.1:{port}")
    assert cli.main(["mr-note", "--file", _plan(tmp_path, "plan\n"), "-v"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach GitLab" in err and "Traceback" not in err


def test_a_missing_file_is_reported(ci_env: FakeGitLab, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["mr-note", "--file", str(tmp_path / "nope.md")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_a_redirect_never_carries_the_token_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The GitLab URL answers with a redirect to another origin; that origin must never see
    the token, and the failure is one line."""
    from http.server import BaseHTTPRequestHandler

    seen: list[str | None] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("PRIVATE-TOKEN"))
            self.send_response(200)
            self.end_headers()

    other = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    target = f"http://127.0.0.1:{other.server_address[1]}"

    class Redirecting(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

    first = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True)
               for s in (other, first)]
    for t in threads:
        t.start()
    try:
        monkeypatch.setenv("CI_SERVER_URL", f"http://127.0.0.1:{first.server_address[1]}")
        monkeypatch.setenv("CI_PROJECT_ID", "42")
        monkeypatch.setenv("CI_MERGE_REQUEST_IID", "5")
        monkeypatch.setenv("MR_NOTE_TOKEN", TOKEN)
        capsys.readouterr()
        assert cli.main(["mr-note", "--file", _plan(tmp_path, "plan\n")]) == 1
        err = capsys.readouterr().err
    finally:
        for s in (other, first):
            s.shutdown()
            s.server_close()
    assert seen == []  # nothing reached the other origin, token or not
    assert TOKEN not in err and len(err.strip().splitlines()) == 1
