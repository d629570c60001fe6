"""`provisioner doctor` against real targets (issue 11): a PowerDNS with the right and a wrong
API key, a moto Route53, the local files and key store; each finding on one line with a fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.octodns_project import run, write_project
from tests.servers import MotoRoute53, PdnsServer, pdns, pdns_server, route53, route53_server  # noqa: F401


def test_doctor_checks_each_target_with_its_credentials(
    tmp_path: Path, pdns: PdnsServer, route53: MotoRoute53,  # noqa: F811
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_project(tmp_path, {"powerdns": pdns.target_options(),
                             "route53": {"class": "octodns_route53.Route53Provider"}},
                  default="powerdns")
    ok = run(tmp_path, capsys, "doctor", "--all-targets", "--timeout", "0.5")
    assert ok.code == 0, ok.out + ok.err
    lines = {line.split(":", 1)[0].split(None, 1)[1]: line.split(None, 1)[0]
             for line in ok.out.splitlines()}
    assert lines["configuration"] in ("ok", "warning"), ok.out
    assert lines["target powerdns"] == "ok", ok.out
    assert lines["target route53"] == "ok", ok.out
    assert "doctor: ready" in ok.err

    # A wrong key: named, with the fix; the key itself never printed.
    monkeypatch.setenv("PDNS_API_KEY", "not-the-key-at-all")
    bad = run(tmp_path, capsys, "doctor", "--target", "powerdns", "--format", "json")
    assert bad.code == 1
    found = {c["check"]: c for c in json.loads(bad.out)["checks"]}
    assert found["target powerdns"]["status"] == "error"
    assert "refused the key" in found["target powerdns"]["detail"]
    assert "not-the-key-at-all" not in bad.out + bad.err

    # An unknown target, and a provider that cannot load
    assert run(tmp_path, capsys, "doctor", "--target", "nosuch").code == 1
    (tmp_path / "provisioner.yaml").write_text(
        (tmp_path / "provisioner.yaml").read_text().replace(
            "octodns_route53.Route53Provider", "octodns_route53.Route53Provder"))
    broken = run(tmp_path, capsys, "doctor")
    assert broken.code == 1
    assert "error    configuration: 1 error(s), first: provisioner.yaml:" in broken.out
    assert "did you mean 'Route53Provider'?" in broken.out


def test_doctor_checks_the_local_key_store_and_files(
    tmp_path: Path, key_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from tests.conftest import REPO, Project, cli
    shutil.copy(REPO / "provisioner.yaml", tmp_path / "provisioner.yaml")
    shutil.copytree(REPO / "zones", tmp_path / "zones")
    project = Project(tmp_path)
    assert cli(project, capsys, "apply", "--target", "local").code == 0
    ok = cli(project, capsys, "doctor", "--format", "json")
    found = {c["check"]: c for c in json.loads(ok.out)["checks"]}
    assert ok.code == 0, ok.out
    assert found["target local"]["status"] == "ok"
    assert found["key store"]["status"] == "ok"
    assert "3 institution(s)" in found["key store"]["detail"]
    assert "route53" not in " ".join(found)  # not in use: not checked
    key_store.chmod(0o755)
    loose = cli(project, capsys, "doctor", "--format", "json")
    found = {c["check"]: c for c in json.loads(loose.out)["checks"]}
    assert found["key store"]["status"] == "warning" and "chmod 700" in found["key store"]["fix"]
