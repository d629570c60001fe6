"""The ramp's merge requests (issue 12, part 5): the declaration change, one merge request per
institution, opened then updated, never duplicated, against a loopback GitLab API that keeps
branches, files, commits and merge requests as GitLab does; and the declaration edit itself
keeps the file's comments and layout."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

from provisioner.dmarcreports.declaration import EditError, set_rung
from tests.conftest import REPO, Project, cli
from tests.test_dmarc_reports import MOSA, TODAY, _write_days

TOKEN = "glpat-ramp-secret-0123456789"


class GitLab:
    """Branches, files, commits and merge requests of project 42, over GitLab's REST paths."""

    def __init__(self, files: dict[str, str]) -> None:
        self.branches: dict[str, dict[str, str]] = {"main": dict(files)}
        self.mrs: list[dict[str, Any]] = []
        self.log: list[tuple[str, str]] = []
        self.tokens: set[str] = set()


@pytest.fixture
def gitlab_api(project: Project) -> Iterator[tuple[str, GitLab]]:
    state = GitLab({"zones/mosa.yaml": (project.zones / "mosa.yaml").read_text()})

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b"{}"
            return json.loads(raw or b"{}")  # type: ignore[no-any-return]

        def _route(self) -> None:
            state.tokens.add(self.headers.get("PRIVATE-TOKEN", ""))
            url = urlsplit(self.path)
            path, query = unquote(url.path), parse_qs(url.query)
            state.log.append((self.command, path))
            base = "/api/v4/projects/42"
            if not path.startswith(base):
                return self._send(404, {"message": "404 Project Not Found"})
            rest = path[len(base):]
            if rest.startswith("/repository/branches/") and self.command == "GET":
                name = rest.removeprefix("/repository/branches/")
                if name in state.branches:
                    return self._send(200, {"name": name})
                return self._send(404, {"message": "404 Branch Not Found"})
            if rest == "/repository/branches" and self.command == "POST":
                body = {**self._body(), **{k: v[0] for k, v in query.items()}}
                state.branches[body["branch"]] = dict(state.branches[body["ref"]])
                return self._send(201, {"name": body["branch"]})
            if rest.startswith("/repository/files/") and self.command == "GET":
                name = rest.removeprefix("/repository/files/")
                files = state.branches.get(query["ref"][0], {})
                if name not in files:
                    return self._send(404, {"message": "404 File Not Found"})
                return self._send(200, {"file_path": name, "encoding": "base64",
                                        "content": base64.b64encode(
                                            files[name].encode()).decode()})
            if rest == "/repository/commits" and self.command == "POST":
                body = self._body()
                for action in body["actions"]:
                    state.branches[body["branch"]][action["file_path"]] = action["content"]
                return self._send(201, {"id": "c0ffee", "title": body["commit_message"]})
            if rest == "/merge_requests" and self.command == "GET":
                found = [m for m in state.mrs if m["state"] == query.get("state", ["all"])[0]
                         and m["source_branch"] == query.get("source_branch", [""])[0]]
                return self._send(200, found)
            if rest == "/merge_requests" and self.command == "POST":
                body = self._body()
                mr = {**body, "iid": len(state.mrs) + 1, "state": "opened", "id": 900,
                      "project_id": 42,
                      "web_url": f"http://gitlab.test/p/-/merge_requests/{len(state.mrs) + 1}"}
                state.mrs.append(mr)
                return self._send(201, mr)
            if rest.startswith("/merge_requests/") and self.command == "PUT":
                mr = state.mrs[int(rest.rsplit("/", 1)[1]) - 1]
                mr.update(self._body())
                return self._send(200, mr)
            return self._send(404, {"message": f"404 {self.command} {rest}"})

        do_GET = do_POST = do_PUT = _route

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def _recommend_mr(project: Project, capsys: pytest.CaptureFixture[str], url: str,
                  monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("DMARC_RAMP_TOKEN", TOKEN)
    got = cli(project, capsys, "dmarc", "recommend", "--today", TODAY.isoformat(),
              "--merge-request", "--server-url", url, "--project", "42", "--format", "json")
    assert got.code == 0, got.err
    assert TOKEN not in got.out + got.err
    return got


def test_one_merge_request_opened_then_updated_never_duplicated(
        project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        gitlab_api: tuple[str, GitLab], monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = gitlab_api
    _write_days(tmp_path / "in", 20)
    cli(project, capsys, "dmarc", "ingest", str(tmp_path / "in"), "--jobs", "1")
    first = _recommend_mr(project, capsys, url, monkeypatch)
    (mr,) = json.loads(first.out)["merge_requests"]
    assert (mr["action"], mr["branch"]) == ("created", "dmarc-ramp/mosa")
    assert len(state.mrs) == 1 and state.tokens == {TOKEN}
    changed = state.branches["dmarc-ramp/mosa"]["zones/mosa.yaml"]
    dmarc = yaml.safe_load(changed)["domains"][MOSA]["dmarc"]
    assert (dmarc["policy"], dmarc["testing"]) == ("quarantine", True)
    original = (REPO / "zones" / "mosa.yaml").read_text()
    assert changed == original.replace("policy: none", "policy: quarantine\n      testing: true")
    assert state.branches["main"]["zones/mosa.yaml"] == original  # main is never written
    assert state.mrs[0]["title"] == "DMARC: mosa: mosamuseum.com to quarantine; t=y"
    assert "platform aligned: 100.00 %" in state.mrs[0]["description"]
    assert state.mrs[0]["target_branch"] == "main"
    # The same evidence again: nothing to change.
    again = _recommend_mr(project, capsys, url, monkeypatch)
    assert json.loads(again.out)["merge_requests"][0]["action"] == "unchanged"
    # A day more of reports: the description (the evidence) is updated in the same MR.
    _write_days(tmp_path / "more", 1, start=20)
    cli(project, capsys, "dmarc", "ingest", str(tmp_path / "more"), "--jobs", "1")
    third = _recommend_mr(project, capsys, url, monkeypatch)
    assert json.loads(third.out)["merge_requests"][0]["action"] == "updated"
    assert len(state.mrs) == 1
    assert "21 day(s)" in state.mrs[0]["description"]
    posts = [p for m, p in state.log if m == "POST" and p.endswith("/merge_requests")]
    assert len(posts) == 1
    assert state.log[-1] == ("PUT", "/api/v4/projects/42/merge_requests/1")


def test_nothing_is_opened_when_no_rung_is_due(project: Project, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               gitlab_api: tuple[str, GitLab],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = gitlab_api
    _write_days(tmp_path / "in", 5)
    cli(project, capsys, "dmarc", "ingest", str(tmp_path / "in"), "--jobs", "1")
    got = _recommend_mr(project, capsys, url, monkeypatch)
    assert json.loads(got.out)["merge_requests"] == []
    assert state.log == []


def test_gitlab_refusing_is_one_line_without_the_token(
        project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        gitlab_api: tuple[str, GitLab], monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = gitlab_api
    _write_days(tmp_path / "in", 20)
    cli(project, capsys, "dmarc", "ingest", str(tmp_path / "in"), "--jobs", "1")
    monkeypatch.setenv("DMARC_RAMP_TOKEN", TOKEN)
    got = cli(project, capsys, "dmarc", "recommend", "--today", TODAY.isoformat(),
              "--merge-request", "--server-url", url, "--project", "7")
    assert got.code == 1
    assert got.err.strip().count("\n") == 0 and TOKEN not in got.err
    assert "404" in got.err and "project 7" in got.err
    monkeypatch.delenv("DMARC_RAMP_TOKEN")
    nothing = cli(project, capsys, "dmarc", "recommend", "--merge-request",
                  "--server-url", url, "--project", "42")
    assert nothing.code == 1 and "DMARC_RAMP_TOKEN is empty or not set" in nothing.err


# --- the declaration edit -------------------------------------------------------------------

BLOCK = """\
institution: x  # the code
domains:
  a.example:
    dns: managed
    dmarc:
      policy: none   # raised by the ramp
      rua: [mailto:d@a.example]
  b.example:
    dmarc: {policy: quarantine, testing: true}
"""


def test_the_edit_keeps_comments_and_layout() -> None:
    one = set_rung(BLOCK, "a.example", "quarantine", True, "x.yaml")
    assert one == BLOCK.replace("policy: none   # raised by the ramp",
                                "policy: quarantine   # raised by the ramp\n"
                                "      testing: true")
    two = set_rung(one, "a.example", "quarantine", False, "x.yaml")
    assert two == BLOCK.replace("policy: none", "policy: quarantine")
    flow = set_rung(BLOCK, "b.example", "quarantine", False, "x.yaml")
    assert "dmarc: {policy: quarantine, testing: false}" in flow
    flow2 = set_rung(BLOCK, "b.example", "reject", True, "x.yaml")
    assert "dmarc: {policy: reject, testing: true}" in flow2


def test_the_edit_refuses_what_it_cannot_do_safely() -> None:
    with pytest.raises(EditError, match=r"x.yaml: no domains.c.example"):
        set_rung(BLOCK, "c.example", "quarantine", True, "x.yaml")
    with pytest.raises(EditError, match="has no dmarc: mapping"):
        set_rung("domains:\n  a.example: {dns: managed}\n", "a.example", "reject", False,
                 "x.yaml")


def test_reports_for_the_rung_after_a_merge_show_it_held(project: Project, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """After the merge, receivers see quarantine; t=y, and the clock of the next rung
    starts from the first report showing it."""
    project.zone("mosa", (REPO / "zones" / "mosa.yaml").read_text().replace(
        "policy: none", "policy: quarantine\n      testing: true"))
    d = tmp_path / "in"
    _write_days(d, 10, start=16)
    _write_days(d, 16, policy="quarantine", testing=True)
    cli(project, capsys, "dmarc", "ingest", str(d), "--jobs", "1")
    got = cli(project, capsys, "dmarc", "recommend", "--today", TODAY.isoformat(),
              "--format", "json")
    (rec,) = json.loads(got.out)["recommendations"]
    assert rec["current_rung_seen_since"] == (TODAY - timedelta(days=15)).isoformat()
    assert (rec["next"], rec["recommended"]) == ("quarantine", True)
