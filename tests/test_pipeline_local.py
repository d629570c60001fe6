"""The pipeline run by gitlab-ci-local 4.73.0 in the shell, as GitLab would run it (issue 5).

Each test lays out a git repository from this checkout's files, runs gitlab-ci-local with the
event's variables and reads what an operator reads: the jobs GitLab would create, each job's
PASS/FAIL line (a job failing with an exit code under ``allow_failure`` shows as a warning, so
the exit code alone proves nothing), and the artifacts.

The jobs' ``before_script`` runs ``make venv``. The repository gets a ``.venv`` that is a thin
virtualenv layered on the running interpreter's packages, newer than pyproject.toml, so
``make venv`` finds it current and no test installs anything (nor touches the shared .venv);
the jobs import the repository's own copy of the package, as a CI checkout would.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.octodns_project import txt_strings
from tests.servers import API_KEY, PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures
from tests.test_drift_powerdns import KEY
from tests.test_gitlab_note import TOKEN, FakeGitLab, _handler

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
INSTALLER = REPO / "scripts" / "install-gitlab-ci-local"
TIMEOUT = 300


@pytest.fixture(scope="session")
def gitlab_ci_local() -> str:
    """The pinned gitlab-ci-local (installed from npm on first use, then reused)."""
    if shutil.which("rsync") is None:
        pytest.fail("gitlab-ci-local needs rsync: run scripts/install-system-deps")
    done = subprocess.run([str(INSTALLER)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    binary = done.stdout.strip().splitlines()[-1]
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == "4.73.0"
    return binary


def _thin_venv(root: Path) -> None:
    """``root/.venv``: its own interpreter, this environment's packages, made current."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / ".venv")],
                   check=True, timeout=120)
    python = root / ".venv" / "bin" / "python"
    purelib = subprocess.run([str(python), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    shared = sysconfig.get_paths()["purelib"]
    # The checkout's own package first (as in CI), then the packages of this environment.
    (Path(purelib) / "zz_shared_packages.pth").write_text(
        f"{root}\nimport site; site.addsitedir({shared!r})\n")
    script = root / ".venv" / "bin" / "provisioner"
    script.write_text(f"#!{python}\nfrom provisioner.cli import entry\nentry()\n")
    script.chmod(0o755)
    (root / ".venv" / "bin" / ".installed").touch()  # the Makefile's stamp


def _files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [f for f in listed.splitlines() if (REPO / f).is_file()]


#: The variables a project scopes to the environment dns-production (docs/pipeline.md §2).
ENVIRONMENT_SCOPED = frozenset({"PDNS_API_KEY"})


@dataclass
class Workspace:
    root: Path
    binary: str

    def git(self, *args: str) -> None:
        subprocess.run(["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
                       cwd=self.root, check=True, capture_output=True, timeout=60)

    def head(self) -> str:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=self.root, check=True,
                              capture_output=True, text=True, timeout=60).stdout.strip()

    def commit(self) -> None:
        self.git("add", "-A")
        self.git("commit", "-qm", "state under test", "--allow-empty")

    def gcl(self, *args: str, variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, "--no-color", "--max-job-name-padding", "0",
                "--ignore-predefined-vars", ",".join(sorted(variables))]
        # Write credentials are scoped to the dns-production environment, as docs/pipeline.md
        # tells a project to: the jobs of that environment see them, the plan job does not.
        scoped = {k: {"values": {"dns-production": v}} for k, v in variables.items()
                  if k in ENVIRONMENT_SCOPED}
        (self.root / ".gitlab-ci-local-variables.yml").write_text(json.dumps(scoped))
        for key, value in variables.items():
            if key not in ENVIRONMENT_SCOPED:
                argv += ["--variable", f"{key}={value}"]
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CI_", "GITLAB_")) and k not in ENVIRONMENT_SCOPED}
        env["HOME"] = str(self.root.parent / "home")
        return subprocess.run([*argv, *args], cwd=self.root, capture_output=True, text=True,
                              timeout=TIMEOUT, env=env)

    def jobs(self, variables: dict[str, str]) -> list[str]:
        listed = self.gcl("--list-json", variables=variables)
        assert listed.returncode == 0, listed.stderr
        return sorted(j["name"] for j in json.loads(listed.stdout)
                      if j.get("when") != "never")

    def artifact(self, job: str, path: str) -> Path:
        return self.root / ".gitlab-ci-local" / "artifacts" / job / path


@pytest.fixture
def workspace(tmp_path: Path, gitlab_ci_local: str) -> Workspace:
    root = tmp_path / "repo"
    for name in _files():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    (tmp_path / "home").mkdir()
    _thin_venv(root)
    ws = Workspace(root, gitlab_ci_local)
    found = subprocess.run([str(root / ".venv/bin/python"), "-c",
                            "import provisioner; print(provisioner.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert found.stdout.strip() == str(root / "provisioner" / "__init__.py"), found.stderr
    ws.git("init", "-q", "-b", "main")
    ws.git("remote", "add", "origin", "https://gitlab.example.com/platform/dns-records.git")
    ws.commit()
    made = subprocess.run(["make", "-q", "venv"], cwd=root, capture_output=True, timeout=60)
    assert made.returncode == 0, "make venv would install: the test venv must look current"
    return ws


def job_results(output: str) -> dict[str, str]:
    """gitlab-ci-local's closing lines: ``PASS  job``, `` FAIL  job``, ``WARN  job``."""
    return {m.group(2).strip(): m.group(1)
            for m in re.finditer(r"^\s*(PASS|FAIL|WARN)\s+(.+?)\s*$", output, re.MULTILINE)}


MR = {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_BRANCH": "add-mosa",
      "CI_MERGE_REQUEST_IID": "5", "CI_PROJECT_ID": "42"}
PUSH_MAIN = {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main"}
SCHEDULE = {"CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_BRANCH": "main"}
PLAN_SHARDS = ["plan: [1/2]", "plan: [2/2]"]
#: The jobs of a merge request's pipeline, each passing.
REVIEWED = {"validate": "PASS", **{s: "PASS" for s in PLAN_SHARDS}, "plan-report": "PASS"}


def test_each_event_gets_its_jobs(workspace: Workspace) -> None:
    assert workspace.jobs(MR) == ["plan-report", *PLAN_SHARDS, "validate"]
    assert workspace.jobs(PUSH_MAIN) == ["apply", "keys", "plan-report", *PLAN_SHARDS,
                                         "validate", "verify"]
    assert workspace.jobs(SCHEDULE) == ["drift: [1/2]", "drift: [2/2]", "keys", "pages"]
    # A push to another branch (not a merge request) runs nothing.
    assert workspace.jobs({"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "wip"}) == []


@pytest.fixture
def fake_gitlab() -> Iterator[tuple[str, FakeGitLab]]:
    state = FakeGitLab()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_merge_request_validates_plans_and_posts_one_note(
    workspace: Workspace, fake_gitlab: tuple[str, FakeGitLab]
) -> None:
    url, gitlab = fake_gitlab
    variables = {**MR, "CI_SERVER_URL": url, "MR_NOTE_TOKEN": TOKEN}
    ran = workspace.gcl(variables=variables)
    output = ran.stdout + ran.stderr
    assert job_results(output) == REVIEWED, output
    assert ran.returncode == 0
    assert TOKEN not in output

    report = ET.parse(workspace.artifact("validate", "build/ci/validate.xml")).getroot()
    suites = [report] if report.tag == "testsuite" else list(report.iter("testsuite"))
    assert sum(int(s.get("tests", 0)) for s in suites) >= 4  # a case per declaration
    assert sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites) == 0

    # No base (the first pipeline): the whole fleet, planned in two shards and merged into
    # the one plan of the note, each shard's checksum kept for its apply.
    plan = json.loads(workspace.artifact("plan-report", "build/ci/plan.json").read_text())
    summary = json.loads(workspace.artifact("plan-report",
                                            "build/ci/plan-summary.json").read_text())
    actions = [c["action"] for z in plan["zones"] for c in z["changes"]]
    assert summary == {a: actions.count(a) for a in ("create", "update", "delete")}
    assert summary["create"] > 0
    shards = workspace.artifact("plan-report", "build/ci/plan.shards").read_text().splitlines()
    assert [line.split()[0] for line in shards] == ["1/2", "2/2"]  # both shards have changes
    checksums = [line.split()[1] for line in shards]
    assert all(re.fullmatch(r"[0-9a-f]{64}", c) for c in checksums)
    assert checksums == [s["checksum"] for s in plan["shards"]]
    markdown = workspace.artifact("plan-report", "build/ci/plan.md").read_text()
    assert "_dmarc" in markdown and all(c in markdown for c in checksums)
    assert markdown.count("### octoDNS plan") == 1
    shard_zones = [{z["zone"] for z in json.loads(p.read_text())["zones"]} for p in
                   sorted((workspace.root / "build" / "ci").glob("plan-*/plan.json"))]
    assert len(shard_zones) == 2 and all(shard_zones) and not shard_zones[0] & shard_zones[1]
    assert shard_zones[0] | shard_zones[1] == {z["zone"] for z in plan["zones"]}

    notes = [n for n in gitlab.notes if n["author"]["username"] == "project_42_bot"]
    assert len(notes) == 1 and markdown.strip() in notes[0]["body"]

    # The next push to the merge request updates that note, it does not add one; with the
    # merge request's diff base, the plan covers only what the push changed (mosa).
    base = subprocess.run(["git", "rev-parse", "HEAD"], cwd=workspace.root, check=True,
                          capture_output=True, text=True).stdout.strip()
    (workspace.root / "zones" / "mosa.yaml").write_text(
        (workspace.root / "zones" / "mosa.yaml").read_text().replace("policy: none",
                                                                     "policy: quarantine"))
    workspace.commit()
    again = workspace.gcl(variables={**variables, "CI_MERGE_REQUEST_DIFF_BASE_SHA": base})
    assert job_results(again.stdout + again.stderr) == REVIEWED
    assert "1 institution(s) changed since the base: mosa" in again.stdout + again.stderr
    assert "shard 2/2: the change is not the whole fleet, shard 1 plans all of it" in \
        again.stdout + again.stderr
    scoped = json.loads(workspace.artifact("plan-report", "build/ci/plan.json").read_text())
    assert {z["zone"] for z in scoped["zones"]} <= {"mosamuseum.com.", "dkim.secutix.com.",
                                                    "dmarc.secutix.com."}
    assert [s["changes"] for s in scoped["shards"]] == [True, False]
    assert workspace.artifact("plan-report", "build/ci/plan.scope").read_text() == base
    notes = [n for n in gitlab.notes if n["author"]["username"] == "project_42_bot"]
    assert len(notes) == 1 and "p=quarantine" in notes[0]["body"]
    assert [m for m, _ in gitlab.writes()] == ["POST", "PUT"]


def test_an_invalid_declaration_fails_validate_and_stops_the_plan(workspace: Workspace) -> None:
    (workspace.root / "zones" / "mosa.yaml").write_text(
        (workspace.root / "zones" / "mosa.yaml").read_text().replace("policy: none",
                                                                     "policy: maybe"))
    workspace.commit()
    ran = workspace.gcl(variables=MR)
    results = job_results(ran.stdout + ran.stderr)
    assert results.get("validate") == "FAIL", ran.stdout
    assert not {results.get(s) for s in [*PLAN_SHARDS, "plan-report"]} & {"PASS"}
    report = ET.parse(workspace.artifact("validate", "build/ci/validate.xml")).getroot()
    assert "mosa.yaml" in ET.tostring(report, encoding="unicode")


PDNS_PLATFORM = """\
platform:
  name: SECUTIX
  spf_include: spf.secutix.com
  sending_ips: [192.28.148.112]
  dkim:
    zone: dkim.secutix.com
    selectors:
      stxsel1: sel1-{institution}
      stxsel2: sel2-{institution}
  return_path_mx: bounce.secutix.com
  dmarc_rua: mailto:reports@dmarc.secutix.com
default_target: powerdns
targets:
  # The API's address and key come from CI/CD variables, never from this file.
  powerdns:
    class: octodns_powerdns.PowerDnsProvider
    host: env/PDNS_HOST
    port: env/PDNS_PORT
    api_key: env/PDNS_API_KEY
    timeout: 5
    # Read-only plans (merge requests, and the plan job on main) read by AXFR with this key.
    read_only:
      class: octodns_bind.AxfrSource
      host: env/PDNS_HOST
      port: env/PDNS_DNS_PORT
      key_name: env/PDNS_TRANSFER_KEY
      key_secret: env/PDNS_TRANSFER_SECRET
      key_algorithm: hmac-sha256
platform_zones:
  dmarc.secutix.com: {target: powerdns}
"""


def _on_powerdns(workspace: Workspace, server: PdnsServer) -> dict[str, str]:
    """The workspace declares mosa on PowerDNS; the variables a project would set."""
    (workspace.root / "provisioner.yaml").write_text(PDNS_PLATFORM)
    for other in (workspace.root / "zones").glob("*.yaml"):
        if other.stem != "mosa":
            other.unlink()
    workspace.commit()
    server.create_zone("mosamuseum.com", [("www", "A", 300, ["192.0.2.10"]),
                                          ("", "MX", 3600, ["10 mx.mosamuseum.com."])])
    server.create_zone("secutix.com", [("spf", "TXT", 3600,
                                        ['"v=spf1 ip4:192.28.148.112 -all"'])])
    server.create_zone("dkim.secutix.com", [
        (f"sel{i}-mosa._domainkey", "TXT", 3600, [f'"v=DKIM1; k=rsa; p={KEY}"'])
        for i in (1, 2)])
    key = f"mr-{secrets.token_hex(4)}"
    secret = server.add_transfer_key(key, ["mosamuseum.com", "secutix.com", "dkim.secutix.com"])
    return {"PDNS_HOST": "127.0.0.1", "PDNS_PORT": str(server.api_port),
            "PDNS_API_KEY": API_KEY, "PROVISIONER_NAMESERVER": f"127.0.0.1:{server.dns_port}",
            "PDNS_DNS_PORT": str(server.dns_port), "PDNS_TRANSFER_KEY": key,
            "PDNS_TRANSFER_SECRET": secret}


def test_default_branch_applies_behind_the_gate_and_verifies(
    workspace: Workspace, pdns: PdnsServer  # noqa: F811
) -> None:
    variables = {**PUSH_MAIN, **_on_powerdns(workspace, pdns), "VERIFY_WAIT": "30"}
    gated = workspace.gcl(variables=variables)
    results = job_results(gated.stdout + gated.stderr)
    assert results.get("apply") is None and results.get("verify") is None, gated.stdout
    assert ("_dmarc", "TXT") not in pdns.rrsets("mosamuseum.com")  # nothing without the gate

    ran = workspace.gcl("--manual", "apply", variables=variables)
    output = ran.stdout + ran.stderr
    assert job_results(output) == {**REVIEWED, "apply": "PASS", "verify": "PASS",
                                   "keys": "PASS"}, output
    assert API_KEY not in output
    assert txt_strings(pdns.dns_port, "_dmarc.mosamuseum.com.") == [
        "v=DMARC1; p=none; rua=mailto:dmarc@mosamuseum.com,mailto:reports@dmarc.secutix.com"]
    assert pdns.rrsets("mosamuseum.com")[("www", "A")] == (300, ("192.0.2.10",))
    report = ET.parse(workspace.artifact("verify", "build/ci/verify.xml")).getroot()
    text = ET.tostring(report, encoding="unicode")
    assert "mosamuseum.com" in text and "<failure" not in text and "<error" not in text


def test_apply_refuses_a_plan_other_than_the_reviewed_one(
    workspace: Workspace, pdns: PdnsServer  # noqa: F811
) -> None:
    variables = {**PUSH_MAIN, **_on_powerdns(workspace, pdns)}
    planned = workspace.gcl("plan-report", "--needs", variables=variables)
    assert job_results(planned.stdout + planned.stderr) == REVIEWED, planned.stdout
    # Between review and apply someone changes the zone: the reviewed checksum no longer holds.
    pdns.request("PATCH", "zones/mosamuseum.com.", {"rrsets": [
        {"name": "_dmarc.mosamuseum.com.", "type": "TXT", "ttl": 60, "changetype": "REPLACE",
         "records": [{"content": '"v=DMARC1; p=reject"', "disabled": False}]}]})
    applied = workspace.gcl("apply", variables=variables)
    output = applied.stdout + applied.stderr
    assert job_results(output).get("apply") == "FAIL", output
    assert "the plan changed since it was reviewed" in output
    assert pdns.rrsets("mosamuseum.com")[("_dmarc", "TXT")][1] == ('"v=DMARC1; p=reject"',)


def test_a_plan_that_needs_force_is_applied_only_with_apply_force(
    workspace: Workspace, pdns: PdnsServer  # noqa: F811
) -> None:
    variables = {**PUSH_MAIN, **_on_powerdns(workspace, pdns)}
    first = workspace.gcl("apply", "--needs", variables=variables)
    assert job_results(first.stdout + first.stderr).get("apply") == "PASS", first.stdout
    # mosa leaves the platform (another institution joins): every record the product owns in
    # mosa's zone is to be deleted; the push's diff base shows the removal
    before = workspace.head()
    (workspace.root / "zones" / "mosa.yaml").unlink()
    (workspace.root / "zones" / "later.yaml").write_text(
        "institution: later\nname: Later\ndomains:\n  later.example:\n    dns: external\n"
        "    dmarc: {policy: none}\n")
    workspace.commit()
    variables["CI_COMMIT_BEFORE_SHA"] = before
    planned = workspace.gcl("plan-report", "--needs", variables=variables)
    assert job_results(planned.stdout + planned.stderr) == REVIEWED, planned.stdout
    note = workspace.artifact("plan-report", "build/ci/plan.md").read_text()
    assert "apply needs `--force`" in note and "APPLY_FORCE=yes" in note
    refused = workspace.gcl("apply", variables=variables)
    output = refused.stdout + refused.stderr
    assert job_results(output).get("apply") == "FAIL", output
    assert "run this job again with the variable APPLY_FORCE=yes" in output
    assert ("_dmarc", "TXT") in pdns.rrsets("mosamuseum.com")  # nothing written
    wrong = workspace.gcl("apply", variables={**variables, "APPLY_FORCE": "true"})
    assert "set it to yes, or leave it unset" in wrong.stdout + wrong.stderr
    assert ("_dmarc", "TXT") in pdns.rrsets("mosamuseum.com")
    forced = workspace.gcl("apply", variables={**variables, "APPLY_FORCE": "yes"})
    output = forced.stdout + forced.stderr
    assert job_results(output).get("apply") == "PASS", output
    left = pdns.rrsets("mosamuseum.com")
    assert ("_dmarc", "TXT") not in left and left[("www", "A")] == (300, ("192.0.2.10",))


def test_schedule_runs_only_drift_and_fails_on_drift(
    workspace: Workspace, pdns: PdnsServer  # noqa: F811
) -> None:
    variables = {**SCHEDULE, **_on_powerdns(workspace, pdns)}
    env = {**os.environ, **variables}
    config = str(workspace.root / "provisioner.yaml")
    applied = subprocess.run([sys.executable, "-m", "provisioner", "apply", "--no-verify",
                              "--config", config],
                             capture_output=True, text=True, env=env, timeout=120)
    assert applied.returncode == 0, applied.stderr

    clean = workspace.gcl(variables=variables)
    assert job_results(clean.stdout + clean.stderr) == {
        "drift: [1/2]": "PASS", "drift: [2/2]": "PASS", "keys": "PASS",
        "pages": "PASS"}, clean.stdout
    # the status page, published from the schedule
    site = workspace.artifact("pages", "public/index.html").read_text()
    assert 'id="status-data"' in site and "mosamuseum.com" in site
    served = workspace.artifact("pages", "public/index.html.gz")  # what Pages sends gzipped
    assert gzip.decompress(served.read_bytes()).decode() == site

    pdns.request("PATCH", "zones/mosamuseum.com.", {"rrsets": [
        {"name": "stxsel1._domainkey.mosamuseum.com.", "type": "CNAME",
         "changetype": "DELETE"}]})
    drifted = workspace.gcl(variables=variables)
    output = drifted.stdout + drifted.stderr
    results = job_results(output)
    results.pop("keys")
    results.pop("pages")
    assert sorted(results.values()) == ["FAIL", "PASS"], output  # mosa's shard, and the other
    assert "WARN" not in results.values()
    # One report per shard (shell jobs share the directory, so each job's artifacts may hold
    # the other's file too: read each shard's once).
    artifacts = workspace.root / ".gitlab-ci-local" / "artifacts"
    reports = {p.name: json.loads(p.read_text()) for p in artifacts.glob("drift*/build/ci/*.json")}
    assert sorted(reports) == ["drift-1.json", "drift-2.json"]
    findings = [f for r in reports.values() for f in r["findings"]]
    assert [(f["class"], f["record"]) for f in findings] == [
        ("missing", "stxsel1._domainkey.mosamuseum.com")]
