"""The embedded default target: the samples plan and apply offline, to files under build/."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import Project, cli


def test_samples_plan_apply_and_settle_on_local_files(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    planned = cli(project, capsys, "plan", "--detailed-exitcode")
    assert planned.code == 2, planned.err
    assert "mosamuseum.com. on local (new zone)" in planned.out
    assert "awaiting publication by the institution" in planned.out  # dns: external
    assert "kunsthaus.ch. on" not in planned.out  # never written

    checksum = planned.out.rsplit("--checksum ", 1)[1].strip()
    applied = cli(project, capsys, "apply", "--checksum", checksum)
    assert applied.code == 0
    # Files are served by no DNS server: verification is skipped, with one line saying why.
    skipped = [line for line in applied.out.splitlines() if line.startswith("verify: skipped")]
    assert len(skipped) == 1 and "target local (" in skipped[0]
    assert "mosamuseum.com" in skipped[0] and "no DNS server serves" in skipped[0]
    files = project.root / "build" / "dns"
    assert not (files / "kunsthaus.ch.yaml").exists()
    mosa = yaml.safe_load((files / "mosamuseum.com.yaml").read_text())
    # Plain ';' in the files (escaped_semicolons: false), as a resolver would return it.
    assert mosa["_dmarc"]["value"].startswith("v=DMARC1; p=none; rua=")

    again = cli(project, capsys, "plan", "--detailed-exitcode")
    assert again.code == 0 and again.out.rstrip().endswith("no changes")


def test_plan_json_and_markdown(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    out = json.loads(cli(project, capsys, "plan", "--format", "json").out)
    mosa = next(z for z in out["zones"] if z["zone"] == "mosamuseum.com.")
    dmarc = next(c for c in mosa["changes"] if c["name"] == "_dmarc")
    assert dmarc["action"] == "create" and dmarc["after"]["values"][0].startswith("v=DMARC1; ")
    assert {a["domain"] for a in out["awaiting"]} == {"kunsthaus.ch", "xn--kunsthuser-v5a.ch"}
    md = cli(project, capsys, "plan", "--format", "markdown", "--institution", "mosa").out
    assert "#### `mosamuseum.com.` on `local`" in md and "`gtg.ch.` on" not in md


def test_changed_plan_is_not_applied(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    planned = cli(project, capsys, "plan")
    checksum = planned.out.rsplit("--checksum ", 1)[1].strip()
    text = project.zones.joinpath("mosa.yaml").read_text().replace("policy: none",
                                                                   "policy: reject")
    project.zone("mosa", text)
    result = cli(project, capsys, "apply", "--checksum", checksum)
    assert result.code == 1 and "[apply.checksum]" in result.err
    assert not (project.root / "build").exists()


def test_unknown_target_class_is_one_located_line(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    config = project.config.read_text().replace("octodns.provider.yaml.YamlProvider",
                                                "octodns_nowhere.Provider")
    project.config.write_text(config)
    result = cli(project, capsys, "plan")
    assert result.code == 1 and "Traceback" not in result.err
    assert any("provisioner.yaml:" in line and "[target.class-unknown]" in line
               for line in result.err_lines)


def test_institution_narrows_platform_zones_to_its_own_records(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    def platform_changes(*args: str) -> set[tuple[str, str]]:
        out = json.loads(cli(project, capsys, "plan", "--format", "json", *args).out)
        zone = next(z for z in out["zones"] if z["zone"] == "dmarc.secutix.com.")
        return {(c["action"], c["name"]) for c in zone["changes"]}

    everyone = platform_changes()
    assert len({n for _, n in everyone if n.endswith("._report._dmarc")}) > 1
    assert platform_changes("--institution", "mosa") == {
        ("create", "_mailauth-owner"), ("create", "mosamuseum.com._report._dmarc")}
    narrowed = cli(project, capsys, "plan", "--institution", "mosa")
    assert "zurich-kunst" not in narrowed.out  # nor another's external domains

    # apply --institution writes only that institution's records, also in the platform zone.
    assert cli(project, capsys, "apply", "--institution", "mosa").code == 0
    written = yaml.safe_load((project.root / "build" / "dns" / "dmarc.secutix.com.yaml")
                             .read_text())
    assert set(written) == {"_mailauth-owner", "mosamuseum.com._report._dmarc"}
    assert platform_changes("--institution", "mosa") == set()
    rest = platform_changes()
    assert rest == {a for a in everyone if a[1] not in ("_mailauth-owner",
                                                         "mosamuseum.com._report._dmarc")}
    assert all(action == "create" for action, _ in rest)


def test_apply_writes_only_when_approved(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Terraform's: a script must say --auto-approve or give the reviewed --checksum, a
    terminal is asked for "yes"; a checksum for a plan that has nothing left is refused."""
    import os
    import pty
    import subprocess
    import sys

    monkeypatch.delenv("PROVISIONER_AUTO_APPROVE")
    files = project.root / "build" / "dns"
    refused = cli(project, capsys, "apply", "--no-verify")
    assert refused.code == 1
    assert "error[apply.not-approved]" in refused.err and "--auto-approve" in refused.err
    assert not files.exists()

    config = str(project.root / "provisioner.yaml")
    for answer, code in ((b"no\n", 1), (b"yes\n", 0)):
        leader, follower = pty.openpty()
        os.write(leader, answer)
        ran = subprocess.run([sys.executable, "-m", "provisioner", "apply", "--no-verify",
                              "--config", config], stdin=follower, capture_output=True,
                             timeout=120, env={k: v for k, v in os.environ.items()
                                               if k != "PROVISIONER_AUTO_APPROVE"})
        os.close(follower)
        os.close(leader)
        assert ran.returncode == code, ran.stderr
        assert b"Only 'yes' approves" in ran.stderr
        assert (files / "mosamuseum.com.yaml").exists() == (code == 0), ran.stderr
    assert b"apply cancelled: nothing written" not in ran.stderr

    stale = cli(project, capsys, "apply", "--checksum", "0" * 64)
    assert stale.code == 1 and "nothing is left to change" in stale.err
    for typo in ("", "abc", "0" * 63, "G" * 64):  # a checksum mistyped is not a moved plan
        bad = cli(project, capsys, "apply", "--checksum", typo)
        assert bad.code == 1 and "is not a plan's checksum (64 hexadecimal digits" in bad.err
