"""A full plan in shards (issue 14, DESIGN §12): `plan --shard I/N` in N parallel jobs, their
plans merged by `plan-merge` into the one plan a reviewer reads, and each shard applied with its
own checksum, in any order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provisioner.drift import shard_of
from tests.conftest import Project, cli
from tests.test_changed_since import _changes, _git, repo

__all__ = ["repo"]  # the fixture, shared with test_changed_since

Change = tuple[str, str, str, str]


def _codes_in_two_shards(total: int) -> tuple[str, str]:
    """Two institution codes that hash to different shards, the first to shard > 1."""
    names = [f"inst{i}" for i in range(100)]
    first = next(c for c in names if shard_of(c, total) != 1)
    second = next(c for c in names if shard_of(c, total) not in (1, shard_of(first, total)))
    return first, second


def _fleet_change(project: Project) -> tuple[str, str]:
    """A platform change (every zone), a removed institution, a new one (keys to generate),
    and two institutions of different shards sharing one zone."""
    config = project.config
    config.write_text(config.read_text().replace("return_path_mx: bounce.secutix.com",
                                                 "return_path_mx: rp.secutix.com"))
    (project.zones / "gva-opera.yaml").unlink()
    project.zone("newbie", """
        institution: newbie
        name: Newbie
        domains:
          newbie.example:
            dmarc: {policy: none}
        """)
    a, b = _codes_in_two_shards(3)
    for code in (a, b):
        project.zone(code, f"""
            institution: {code}
            name: {code}
            domains:
              {code}.shared.example:
                zone: shared.example
                dmarc: {{policy: none}}
            """)
    return a, b


def _document(project: Project, capsys: pytest.CaptureFixture[str], *args: str
              ) -> dict[str, Any]:
    planned = cli(project, capsys, "plan", "--format", "json", *args)
    assert planned.code == 0, planned.err
    document: dict[str, Any] = json.loads(planned.out)
    return document


def test_shards_of_a_full_plan_add_up_to_it(repo: tuple[Project, str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    project, _ = repo
    _fleet_change(project)
    full, _ = _changes(project, capsys)
    documents = [_document(project, capsys, "--shard", f"{i}/3") for i in (1, 2, 3)]
    parts = [{(z["zone"], c["name"], c["type"], c["action"]) for z in d["zones"]
              for c in z["changes"]} for d in documents]
    assert set().union(*parts) == full
    # no change is planned twice, and each zone by one shard only
    assert sum(len(p) for p in parts) == len(full)
    zones = [z["zone"] for d in documents for z in d["zones"]]
    assert len(zones) == len(set(zones))
    # the zone two institutions of shards 2 and 3 share: planned whole, by one of them
    shared = [i for i, d in enumerate(documents, 1)
              if any(z["zone"] == "shared.example." for z in d["zones"])]
    assert len(shared) == 1 and shared[0] != 1
    # shard 1 holds the platform zones whole (a removed institution's keys deleted there), the
    # removed institution's zones, and every key to generate
    platform = {"dkim.secutix.com.", "dmarc.secutix.com."}
    assert {z["zone"] for z in documents[0]["zones"]} >= platform
    assert not platform & {z["zone"] for d in documents[1:] for z in d["zones"]}
    assert ("gtg.ch.", "_dmarc", "TXT", "delete") in parts[0]
    assert ("dkim.secutix.com.", "sel1-gva-opera._domainkey", "TXT", "delete") in parts[0]
    assert not [c for p in parts[1:] for c in p if c[3] == "delete"]
    pending = [[k["institution"] for k in d["keys_to_generate"]] for d in documents]
    assert pending[0] and sorted(pending[0]) == sorted(
        k["institution"] for k in _document(project, capsys)["keys_to_generate"])
    assert pending[1:] == [[], []]
    assert [d["shard"] for d in documents] == ["1/3", "2/3", "3/3"]


def test_a_narrow_change_is_all_shard_1s(repo: tuple[Project, str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A merge request's plan in a sharded pipeline: shard 1 plans the whole (small) change,
    the others nothing, so no platform zone is planned by two jobs."""
    project, base = repo
    path = project.zones / "mosa.yaml"
    path.write_text(path.read_text().replace("policy: none", "policy: quarantine"))
    scoped = _document(project, capsys, "--changed-since", base)
    first = _document(project, capsys, "--changed-since", base, "--shard", "1/2")
    assert first["zones"] == scoped["zones"] and first["checksum"] == scoped["checksum"]
    assert first["checksum"] is not None
    idle = cli(project, capsys, "plan", "--format", "json", "--changed-since", base,
               "--shard", "2/2")
    assert idle.code == 0, idle.err
    document = json.loads(idle.out)
    assert (document["zones"], document["checksum"], document["changes"]) == ([], None, False)
    assert "shard 2/2: the change is not the whole fleet, shard 1 plans all of it" in idle.err
    # a change to provisioner.yaml is the whole fleet: split as a full plan
    project.config.write_text(project.config.read_text().replace(
        "return_path_mx: bounce.secutix.com", "return_path_mx: rp.secutix.com"))
    _git(project.root, "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qam",
         "platform")
    split = [_document(project, capsys, "--changed-since", base, "--shard", f"{i}/2")
             for i in (1, 2)]
    assert all(d["zones"] for d in split)
    assert _changes(project, capsys)[0] == {
        (z["zone"], c["name"], c["type"], c["action"]) for d in split for z in d["zones"]
        for c in z["changes"]}


def test_merged_shards_are_the_full_plan_and_apply_shard_by_shard(
    repo: tuple[Project, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    project, _ = repo
    _fleet_change(project)
    full = _document(project, capsys)
    dirs = [tmp_path / f"plan-{i}" for i in (1, 2)]
    for i, d in enumerate(dirs, 1):
        planned = cli(project, capsys, "plan", "--shard", f"{i}/2", "--output-dir", str(d))
        assert planned.code == 0, planned.err
    out = tmp_path / "merged"
    merged = cli(project, capsys, "plan-merge", *map(str, dirs), "--output-dir", str(out))
    assert merged.code == 0, merged.err
    document = json.loads((out / "plan.json").read_text())

    def changes(d: dict[str, Any]) -> list[Change]:
        return sorted((z["zone"], c["name"], c["type"], c["action"]) for z in d["zones"]
                      for c in z["changes"])

    assert changes(document) == changes(full)
    assert document["keys_to_generate"] == full["keys_to_generate"]
    summary = json.loads((out / "plan-summary.json").read_text())
    assert summary == {a: sum(1 for c in changes(full) if c[3] == a)
                       for a in ("create", "update", "delete")}
    checksums = [(d / "plan.checksum").read_text() for d in dirs]
    lines = (out / "plan.shards").read_text().splitlines()
    assert lines == [f"{i}/2 {c}" for i, c in enumerate(checksums, 1)]
    note = (out / "plan.md").read_text()
    assert note.startswith(f"### octoDNS plan: {summary['create']} create, "
                           f"{summary['update']} update, {summary['delete']} delete")
    assert all(f"`{c}`" in note for c in checksums) and note.count("### octoDNS plan") == 1
    assert f"provisioner apply --shard 2/2 --checksum {checksums[1]}" in merged.out
    # shard 1 (the removed institution's zone, past octoDNS's delete threshold, and the new
    # institution's keys) without --force: refused before any key is made
    refused = cli(project, capsys, "apply", "--no-verify", "--shard", "1/2", "--checksum",
                  checksums[0], "--format", "json")
    assert refused.code == 1, refused.err
    outcome = json.loads(refused.out)
    assert (outcome["outcome"], outcome["keys_generated"]) == ("refused: nothing written", [])
    assert "apply.unsafe" in refused.err and "--force" in refused.err
    # each shard applies its reviewed plan; shard 2 first: the shards do not depend on each
    # other's writes (the platform zones, created or changed, are shard 1's alone)
    for line in reversed(lines):
        shard, checksum = line.split()
        applied = cli(project, capsys, "apply", "--no-verify", "--force", "--shard", shard,
                      "--checksum", checksum)  # --force: the removed institution's zone
        assert applied.code == 0, applied.err
        assert ("generated key" in applied.out) == (shard == "1/2")  # now, and only there
    assert cli(project, capsys, "plan", "--detailed-exitcode").code == 0  # nothing left


def test_plan_merge_takes_every_shard_once_and_checks_each_document(
    repo: tuple[Project, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    project, _ = repo
    _fleet_change(project)
    dirs = {}
    for split in ("1/2", "2/2", "1/3"):
        d = tmp_path / split.replace("/", "-of-")
        assert cli(project, capsys, "plan", "--shard", split, "--output-dir", str(d)).code == 0
        dirs[split] = str(d)
    whole = tmp_path / "whole"
    assert cli(project, capsys, "plan", "--output-dir", str(whole)).code == 0
    bad = tmp_path / "bad.json"
    document = json.loads((Path(dirs["2/2"]) / "plan.json").read_text())
    document["zones"][0]["changes"][0]["action"] = "drop"
    bad.write_text(json.dumps(document))
    broken = tmp_path / "broken.json"
    broken.write_text('{"checksum": ')
    twice = tmp_path / "twice.json"  # shard 1's keys to generate in shard 2's plan as well
    document = json.loads((Path(dirs["2/2"]) / "plan.json").read_text())
    document["keys_to_generate"] = json.loads(
        (Path(dirs["1/2"]) / "plan.json").read_text())["keys_to_generate"]
    assert document["keys_to_generate"]
    twice.write_text(json.dumps(document))
    other = tmp_path / "other-scope.json"  # shard 2 of another scope
    document = json.loads((Path(dirs["2/2"]) / "plan.json").read_text())
    document["scope"]["institution"] = "mosa"
    other.write_text(json.dumps(document))
    cases = [
        ((dirs["1/2"],), "the plan of shard 2/2 is missing (1 of 2 given)"),
        ((dirs["1/3"],), "the plans of shards 2/3, 3/3 are missing (1 of 3 given)"),
        ((dirs["1/2"], dirs["1/2"]), "shard 1/2 again"),
        ((dirs["1/2"], dirs["1/3"]), "is of a split in 3, the others in 2"),
        ((dirs["1/2"], str(whole)), f"{whole}/plan.json: a plan of the whole fleet, not one "
                                    "shard's"),
        ((dirs["1/2"], str(twice)), "are to be generated by shard 1/2 and shard 2/2"),
        ((dirs["1/2"], str(other)), f"{other}: planned with --institution mosa, shard 1"),
        ((dirs["1/2"], str(bad)), f"{bad}: zones[0].changes[0].action: 'drop' is not one of"),
        ((str(broken),), f"{broken}:1:14: not a plan document (not JSON)"),
        ((str(tmp_path / "nowhere"),), f"{tmp_path}/nowhere: cannot read it (No such file"),
    ]
    for args, message in cases:
        result = cli(project, capsys, "plan-merge", *args, "--output-dir", str(tmp_path / "m"))
        assert result.code == 1, (args, result.out)
        assert message in result.err, result.err
        assert len(result.err_lines) == 1 and "Traceback" not in result.err, result.err
        assert not (tmp_path / "m").exists()  # nothing written from an incomplete merge
    # the merged plan written over a shard's own: refused, the shard's plan kept
    before = (Path(dirs["1/2"]) / "plan.json").read_text()
    over = cli(project, capsys, "plan-merge", dirs["1/2"], dirs["2/2"], "--output-dir",
               dirs["1/2"])
    assert over.code == 1 and "would overwrite it" in over.err and len(over.err_lines) == 1
    assert (Path(dirs["1/2"]) / "plan.json").read_text() == before


def test_the_printed_apply_repeats_the_plan_scope_and_force(
    repo: tuple[Project, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Each 'apply exactly this plan' line, run as printed, applies the plan (its checksum
    is of the plan's scope only, and a removal needs --force)."""
    import shlex

    from provisioner.cli import main

    project, base = repo
    (project.zones / "lyon-jazz.yaml").unlink()  # a removal: the guard wants --force
    path = project.zones / "mosa.yaml"
    path.write_text(path.read_text().replace("policy: none", "policy: quarantine"))
    planned = cli(project, capsys, "plan", "--target", "local", "--changed-since", base)
    assert planned.code == 0, planned.err
    line = next(x for x in planned.out.splitlines() if x.startswith("apply exactly this plan"))
    command = shlex.split(line.split(": ", 1)[1])
    assert command[:2] == ["provisioner", "apply"]
    assert ["--changed-since", base] == command[command.index("--changed-since"):][:2]
    assert "--force" in command and "--target" in command
    capsys.readouterr()
    code = main([*command[1:], "--no-verify", "--config", str(project.config)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "apply exactly this plan" not in out + err  # apply does not print it again
    assert cli(project, capsys, "plan", "--detailed-exitcode").code == 0
    # a merged plan's lines: one per shard with changes, --force where that shard needs it
    _fleet_change(project)
    dirs = [tmp_path / f"plan-{i}" for i in (1, 2)]
    for i, d in enumerate(dirs, 1):
        assert cli(project, capsys, "plan", "--shard", f"{i}/2", "--output-dir", str(d)).code == 0
    merged = cli(project, capsys, "plan-merge", *map(str, dirs))
    lines = [shlex.split(x) for x in merged.out.splitlines() if x.startswith("  provisioner")]
    assert [x[x.index("--shard") + 1] for x in lines] == ["1/2", "2/2"]
    assert ["--force" in x for x in lines] == [True, False]  # the removal is shard 1's
    for command in lines:
        capsys.readouterr()
        code = main([*command[1:], "--no-verify", "--config", str(project.config)])
        assert code == 0, capsys.readouterr().err
    assert cli(project, capsys, "plan", "--detailed-exitcode").code == 0
