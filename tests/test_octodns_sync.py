"""The source and processors from a plain octodns-sync config (docs/octodns-sync.example.yaml)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.octodns_project import REPO_ROOT, declare, txt_strings, write_project
from tests.servers import PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures

EXAMPLE = REPO_ROOT / "docs" / "octodns-sync.example.yaml"


def _sync(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [str(Path(sys.executable).parent / "octodns-sync"), "--config-file", "octodns.yaml",
         *args], cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )


def test_documented_config_publishes_every_listed_zone(
    tmp_path: Path, pdns: PdnsServer  # noqa: F811
) -> None:
    write_project(tmp_path, {"powerdns": pdns.target_options()}, default="powerdns")
    declare(tmp_path, "mosa", """
        institution: mosa
        name: Mosa Museum
        domains:
          mosamuseum.com: {dns: managed, spf: {include: [_spf.google.com]}}
        """)
    declare(tmp_path, "lyon", """
        institution: lyon
        name: Lyon Jazz
        domains:
          lyonjazz.fr: {dns: managed}
        """)
    pdns.create_zone("mosamuseum.com", [
        ("", "TXT", 300, ['"v=spf1 include:_spf.google.com ~all"', '"verify=1"'])])
    pdns.create_zone("lyonjazz.fr")
    config = yaml.safe_load(EXAMPLE.read_text())
    config["providers"]["powerdns"]["port"] = pdns.api_port
    (tmp_path / "octodns.yaml").write_text(yaml.safe_dump(config))

    dry = _sync(tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "mosamuseum.com." in dry.stderr and "checksum=" in dry.stderr
    assert ("_dmarc", "TXT") not in pdns.rrsets("mosamuseum.com")

    checksum = re.search(r"checksum=([0-9a-f]{64})", dry.stderr)
    assert checksum is not None
    done = _sync(tmp_path, "--doit", "--checksum", checksum.group(1))
    assert done.returncode == 0, done.stderr
    assert txt_strings(pdns.dns_port, "mosamuseum.com.") == [
        "v=spf1 include:_spf.google.com include:spf.secutix.com ~all", "verify=1"]

    assert txt_strings(pdns.dns_port, "lyonjazz.fr.") == ["v=spf1 include:spf.secutix.com ~all"]
    assert "dmarc.secutix.com." in pdns.zones()  # a platform zone: created

    # The same records through provisioner plan: nothing left to do.
    again = _sync(tmp_path)
    assert again.returncode == 0
    assert "No changes were planned" in again.stdout + again.stderr


def test_source_errors_point_at_the_declaration(tmp_path: Path) -> None:
    from octodns.zone import Zone

    from provisioner.config import load_project
    from provisioner.octodns.source import ProvisionerSource

    write_project(tmp_path, {"local": {"class": "octodns.provider.yaml.YamlProvider",
                                       "directory": "./build"}}, default="local")
    declare(tmp_path, "mosa", """
        institution: mosa
        name: Mosa Museum
        domains:
          mosamuseum.com: {dns: managed}
        """)
    source = ProvisionerSource("p", config=str(tmp_path / "provisioner.yaml"))
    assert source.list_zones() == ["dmarc.secutix.com.", "mosamuseum.com."]
    zone = Zone("mosamuseum.com.", set())
    source.populate(zone)
    contexts = {r.name: str(r.context) for r in zone.records}
    assert contexts["_dmarc"].startswith("zones/mosa.yaml:")
    project = load_project(tmp_path / "provisioner.yaml")
    dmarc = next(r for r in project.records() if r.name == "_dmarc")
    assert contexts["_dmarc"] == str(dmarc.origin)


def test_source_reports_bad_project_as_located_problems(tmp_path: Path) -> None:
    from provisioner.errors import InvalidInput
    from provisioner.octodns.source import ProvisionerSource

    write_project(tmp_path, {"local": {"class": "octodns.provider.yaml.YamlProvider",
                                       "directory": "./build"}}, default="local")
    declare(tmp_path, "mosa", "institution: mosa\nname: M\ndomains:\n  x.example: {dns: bad}\n")
    with pytest.raises(InvalidInput) as caught:
        ProvisionerSource("p", config=str(tmp_path / "provisioner.yaml"))
    assert "zones/mosa.yaml:4:" in str(caught.value)
