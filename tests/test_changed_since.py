"""`plan --changed-since REF` (issue 14): a merge request plans what it changes, and the same
changes as a full plan: a branch that edits one institution, one that edits provisioner.yaml,
one that removes an institution; `--output-dir` gives every format from one run."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, Project, cli


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True, timeout=60).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Project, str]:
    """The samples in a git repository, applied to the local target; the base commit."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "provisioner.yaml", root / "provisioner.yaml")
    shutil.copytree(REPO / "zones", root / "zones")
    (root / ".gitignore").write_text("build/\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "-c", "user.email=t@example.org", "-c", "user.name=t", "add", ".")
    _git(root, "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qm", "base")
    project = Project(root)
    assert cli(project, capsys, "apply", "--target", "local", "--no-verify").code == 0
    return project, _git(root, "rev-parse", "HEAD")


def _changes(project: Project, capsys: pytest.CaptureFixture[str], *args: str
             ) -> tuple[set[tuple[str, str, str, str]], str]:
    planned = cli(project, capsys, "plan", "--format", "json", *args)
    assert planned.code == 0, planned.err
    document: dict[str, Any] = json.loads(planned.out)
    found = {(z["zone"], c["name"], c["type"], c["action"]) for z in document["zones"]
             for c in z["changes"]}
    return found, planned.err


def test_one_institution_changed(repo: tuple[Project, str],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    project, base = repo
    path = project.zones / "mosa.yaml"
    path.write_text(path.read_text().replace("policy: none", "policy: quarantine"))
    scoped, said = _changes(project, capsys, "--changed-since", base)
    assert "1 institution(s) changed since the base: mosa" in said
    full, _ = _changes(project, capsys)
    assert scoped == full == {("mosamuseum.com.", "_dmarc", "TXT", "update")}
    planned = json.loads(cli(project, capsys, "plan", "--format", "json", "--changed-since",
                             base).out)
    # only mosa's customer zone and the platform zones were read
    assert {z["zone"] for z in planned["zones"]} <= {"mosamuseum.com.", "dkim.secutix.com.",
                                                     "dmarc.secutix.com."}
    # apply with the same scope and the reviewed checksum writes exactly that
    applied = cli(project, capsys, "apply", "--changed-since", base, "--checksum",
                  planned["checksum"], "--no-verify")
    assert applied.code == 0, applied.err
    assert _changes(project, capsys)[0] == set()
    # back to none: the text plan reads as a diff, the old value goes and then the new comes
    # (though "p=none" sorts before "p=quarantine")
    path.write_text(path.read_text().replace("policy: quarantine", "policy: none"))
    text = cli(project, capsys, "plan").out.splitlines()  # (the file is as at the base)
    gone = next(i for i, x in enumerate(text) if x.startswith('      - "v=DMARC1; p=quarantine'))
    assert text[gone + 1].startswith('      + "v=DMARC1; p=none'), text


def test_a_platform_change_plans_everything(repo: tuple[Project, str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    project, base = repo
    config = project.config
    config.write_text(config.read_text().replace("return_path_mx: bounce.secutix.com",
                                                 "return_path_mx: rp.secutix.com"))
    scoped, said = _changes(project, capsys, "--changed-since", base)
    assert "the whole fleet (provisioner.yaml changed)" in said
    full, _ = _changes(project, capsys)
    assert scoped == full and len({z for z, *_ in full}) >= 2


def test_a_removed_institution_is_planned_empty(repo: tuple[Project, str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    project, base = repo
    _git(project.root, "rm", "-q", "zones/gva-opera.yaml")
    scoped, said = _changes(project, capsys, "--changed-since", base)
    assert "gva-opera" in said
    full, _ = _changes(project, capsys)
    assert scoped == full
    assert ("gtg.ch.", "_dmarc", "TXT", "delete") in scoped
    assert ("dmarc.secutix.com.", "gtg.ch._report._dmarc", "TXT", "delete") in scoped
    assert not any(z == "mosamuseum.com." for z, *_ in scoped)


def test_one_run_writes_every_format(repo: tuple[Project, str], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    project, base = repo
    path = project.zones / "mosa.yaml"
    path.write_text(path.read_text().replace("policy: none", "policy: reject"))
    out = tmp_path / "ci"
    planned = cli(project, capsys, "plan", "--changed-since", base, "--output-dir", str(out),
                  "--format", "json")
    assert planned.code == 0, planned.err
    document = json.loads((out / "plan.json").read_text())
    assert document == json.loads(planned.out)
    assert (out / "plan.checksum").read_text() == document["checksum"]
    assert json.loads((out / "plan-summary.json").read_text()) == {"create": 0, "update": 1,
                                                                   "delete": 0}
    assert "_dmarc" in (out / "plan.md").read_text() and "~ _dmarc TXT" in (
        out / "plan.txt").read_text()


def test_a_bad_ref_is_one_line(repo: tuple[Project, str],
                               capsys: pytest.CaptureFixture[str]) -> None:
    project, _ = repo
    result = cli(project, capsys, "plan", "--changed-since", "no-such-ref")
    assert result.code == 1
    assert result.err.strip().startswith("provisioner: --changed-since no-such-ref: not a "
                                         "commit of the repository at ")
    assert "fix: fetch it, or clone deeper" in result.err and len(result.err_lines) == 1
    empty = cli(project, capsys, "plan", "--changed-since", "")  # an unset CI variable
    assert empty.code == 1 and "--changed-since needs a commit" in empty.err
    assert "Traceback" not in result.err + empty.err


def test_a_zone_shared_with_another_institution_is_never_planned_empty(
    repo: tuple[Project, str], capsys: pytest.CaptureFixture[str]
) -> None:
    project, _ = repo
    for code in ("alpha", "beta"):
        project.zone(code, f"""
            institution: {code}
            name: {code}
            domains:
              {code}.shared.example:
                zone: shared.example
                dmarc: {{policy: none}}
            """)
    _git(project.root, "add", ".")
    _git(project.root, "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qm",
         "two in one zone")
    base = _git(project.root, "rev-parse", "HEAD")
    assert cli(project, capsys, "apply", "--target", "local", "--no-verify").code == 0
    _git(project.root, "rm", "-q", "zones/alpha.yaml")
    scoped, _ = _changes(project, capsys, "--changed-since", base)
    full, _ = _changes(project, capsys)
    assert scoped == full
    in_zone = {(n, t, a) for z, n, t, a in scoped if z == "shared.example."}
    assert ("_dmarc.alpha", "TXT", "delete") in in_zone
    assert not any(n.endswith("beta") for n, _, _ in in_zone)  # beta's records untouched


def test_a_new_declaration_is_planned_with_a_relative_config(
    repo: tuple[Project, str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CI passes --config provisioner.yaml, relative: the scoped load must still find zones/."""
    from provisioner.cli import main

    project, base = repo
    project.zone("newbie", """
        institution: newbie
        name: Newbie
        domains:
          newbie.example:
            dmarc: {policy: none}
        """)
    monkeypatch.chdir(project.root)
    capsys.readouterr()
    assert main(["plan", "--config", "provisioner.yaml", "--changed-since", base,
                 "--format", "json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert "newbie.example." in {z["zone"] for z in planned["zones"]}


def test_a_scoped_apply_makes_only_the_keys_its_plan_announced(
        repo: tuple[Project, str], capsys: pytest.CaptureFixture[str]) -> None:
    project, _ = repo

    def declare(code: str) -> None:
        project.zone(code, f"""
            institution: {code}
            name: {code}
            domains:
              {code}.example:
                dmarc: {{policy: none}}
            """)

    declare("later")  # merged earlier, its apply still to come
    _git(project.root, "-c", "user.email=t@example.org", "-c", "user.name=t", "add", ".")
    _git(project.root, "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qm",
         "later")
    base = _git(project.root, "rev-parse", "HEAD")
    declare("newbie")
    # and one removed: its zones planned empty, so the whole repository is read for the scope
    (project.zones / "gva-opera.yaml").unlink()
    applied = cli(project, capsys, "apply", "--changed-since", base, "--target", "local",
                  "--no-verify", "--auto-approve", "--force", "--format", "json")
    assert applied.code == 0, applied.err
    assert [p["institution"] for p in json.loads(applied.out)["plan"]["keys_to_generate"]] == [
        "newbie"]
    made = json.loads(applied.out)["keys_generated"]
    assert made and {k["institution"] for k in made} == {"newbie"}
    left = json.loads(cli(project, capsys, "plan", "--format", "json").out)
    assert [p["institution"] for p in left["keys_to_generate"]] == ["later"]


def test_a_platform_file_of_another_name_is_the_whole_fleet_when_it_changes(
        repo: tuple[Project, str], capsys: pytest.CaptureFixture[str]) -> None:
    from provisioner.cli import main

    project, _ = repo
    commit = ("-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qm")
    _git(project.root, "mv", "provisioner.yaml", "platform.yaml")
    _git(project.root, *commit, "renamed")
    base = _git(project.root, "rev-parse", "HEAD")
    config = project.root / "platform.yaml"
    config.write_text(config.read_text().replace("return_path_mx: bounce.secutix.com",
                                                 "return_path_mx: rp.secutix.com"))
    capsys.readouterr()
    code = main(["plan", "--config", str(config), "--changed-since", base, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "the whole fleet (platform.yaml changed)" in err
    assert sum(len(z["changes"]) for z in json.loads(out)["zones"]) > 1
