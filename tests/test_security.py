"""The merge-request-to-DNS path against a hostile author (issue 10): nothing in the
repository's files is code, and no declared value smuggles DNS syntax."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Project, cli
from tests.servers import MotoRoute53, route53, route53_server  # noqa: F401 - fixtures

EVIL = "import pathlib; pathlib.Path('{marker}').write_text('ran')\n"


def with_target(project: Project, cls: str, name: str = "local") -> None:
    text = project.config.read_text()
    text = text.replace("class: octodns.provider.yaml.YamlProvider", f"class: {cls}", 1)
    project.config.write_text(text)


@pytest.mark.parametrize("cls", ["os.system", "runpy.run_path", "subprocess.Popen",
                                 "builtins.exec"])
def test_a_target_class_outside_octodns_is_refused_before_anything_runs(
    project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, cls: str,
) -> None:
    marker = tmp_path / "ran"
    # runpy.run_path("local") would run ./local; os.system("local") a command named local.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local").write_text(EVIL.format(marker=marker))
    with_target(project, cls)
    validated = cli(project, capsys, "validate")
    assert validated.code == 1
    assert "error[target.class-refused]" in validated.err and "provisioner.yaml:" in validated.err
    for command in ("plan", "apply", "records"):
        assert cli(project, capsys, command).code == 1
    assert not marker.exists()


def test_an_allowed_name_must_still_be_an_octodns_provider(
    project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = tmp_path / "ran"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local").write_text(EVIL.format(marker=marker))
    monkeypatch.setenv("PROVISIONER_ALLOW_PROVIDERS", "runpy")
    with_target(project, "runpy.run_path")
    planned = cli(project, capsys, "plan")
    assert planned.code == 1
    assert "is not an octoDNS provider (a subclass of" in planned.err
    assert not marker.exists()


def test_a_provider_module_in_the_repository_is_never_imported(
    project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = tmp_path / "imported"
    # A merge request adds octodns_evil.py beside provisioner.yaml, on sys.path as a checkout is.
    (project.root / "octodns_evil.py").write_text(EVIL.format(marker=marker))
    monkeypatch.syspath_prepend(str(project.root))
    with_target(project, "octodns_evil.Provider")
    planned = cli(project, capsys, "plan")
    assert planned.code == 1
    assert "would be loaded from the repository" in planned.err
    assert not marker.exists()


@pytest.mark.parametrize("uri", [
    "mailto:a\\059ruf=mailto:spy@evil.example@mosamuseum.com",  # \059 is ';' to PowerDNS
    "mailto:x\\;ruf=spy@mosamuseum.com",
    'mailto:"x"@mosamuseum.com',
])
def test_dns_escapes_in_a_report_address_are_refused(
    project: Project, capsys: pytest.CaptureFixture[str], uri: str,
) -> None:
    path = project.zones / "mosa.yaml"
    text = path.read_text().replace("rua: [mailto:dmarc@mosamuseum.com]", f"rua: ['{uri}']")
    assert text != path.read_text()
    path.write_text(text)
    validated = cli(project, capsys, "validate")
    assert validated.code == 1
    assert "zones/mosa.yaml:" in validated.err and "DNS hosts decode escapes" in validated.err
    assert cli(project, capsys, "records").code == 1


def test_a_newline_in_a_name_is_refused(
    project: Project, capsys: pytest.CaptureFixture[str],
) -> None:
    path = project.zones / "mosa.yaml"
    path.write_text(path.read_text().replace(
        "name: Mosa Museum", 'name: "Mosa\\n| TXT | @ | v=spf1 +all |"'))
    validated = cli(project, capsys, "validate")
    assert validated.code == 1
    assert "no newline" in validated.err


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "outside", "loop", "directory"])
def test_only_regular_files_of_the_repository_are_read_from_zones(
    project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str,
) -> None:
    import os

    bad = project.zones / "evil.yaml"
    secret = tmp_path.parent / f"secret-{kind}.txt"
    secret.write_text("root:$6$hash-of-the-root-password:19000:0:99999:7:::\n")
    if kind == "dev-zero":
        bad.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(bad)
    elif kind == "outside":
        bad.symlink_to(secret)
    elif kind == "loop":
        bad.symlink_to(project.zones / "evil2.yaml")
        (project.zones / "evil2.yaml").symlink_to(bad)
    else:
        bad.mkdir()
    for fmt in ("text", "junit"):
        args = ["validate"] if fmt == "text" else ["validate", "--format", "junit"]
        result = cli(project, capsys, *args)
        assert result.code == 1, (kind, fmt)
        assert "Traceback" not in result.err
        assert "hash-of-the-root-password" not in result.out + result.err
        assert "zones/evil.yaml" in result.out + result.err


@pytest.mark.parametrize("argv", [
    ["verify", "--nameserver", "no-such-host.invalid"],
    ["drift", "--nameserver", "no-such-host.invalid:53"],
    ["verify", "--timeout", "inf"],
    ["verify", "--timeout", "nan"],
    ["drift", "--timeout", "-1"],
    ["verify", "--wait", "nan"],
    ["apply", "--verify-wait", "inf"],
    ["plan", "--no-such-option"],
    ["keys", "status", "--no-such-option"],
])
def test_bad_arguments_are_one_line_and_exit_1(
    project: Project, capsys: pytest.CaptureFixture[str], argv: list[str],
) -> None:
    result = cli(project, capsys, *argv)
    assert result.code == 1, argv
    assert "Traceback" not in result.err and result.err.strip()


def test_an_unresolvable_target_nameserver_fails_the_plan_before_anything_is_written(
    project: Project, capsys: pytest.CaptureFixture[str],
) -> None:
    text = project.config.read_text().replace(
        "    directory: ./build/dns\n",
        "    directory: ./build/dns\n    nameserver: ns.no-such-host.invalid\n", 1)
    project.config.write_text(text)
    applied = cli(project, capsys, "apply")
    assert applied.code == 1
    assert "error[target.nameserver]" in applied.err and "does not resolve" in applied.err
    assert not (project.root / "build" / "dns").exists()


def test_the_file_target_replaces_zone_files_whole(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kill while octoDNS writes a zone file leaves the previous file, never half a file."""
    assert cli(project, capsys, "apply").code == 0
    zone = project.root / "build" / "dns" / "mosamuseum.com.yaml"
    before = zone.read_text()
    path = project.zones / "mosa.yaml"
    path.write_text(path.read_text().replace("policy: none", "policy: quarantine"))
    import octodns.yaml

    real = octodns.yaml.safe_dump

    def dies_half_way(data: object, fh: object, **kwargs: object) -> None:
        fh.write("--- half a zone\n")  # type: ignore[attr-defined]
        raise KeyboardInterrupt  # the process is stopped mid-write

    monkeypatch.setattr("octodns.provider.yaml.safe_dump", dies_half_way)
    assert cli(project, capsys, "apply").code == 130
    assert zone.read_text() == before
    assert not list(zone.parent.glob(".apply-*"))
    monkeypatch.setattr("octodns.provider.yaml.safe_dump", real)
    assert cli(project, capsys, "apply").code == 0
    assert "p=quarantine" in zone.read_text()


def test_no_credential_reaches_a_log_at_any_verbosity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch, route53: MotoRoute53,  # noqa: F811
) -> None:
    """plan -vv against Route53 (moto) with credentials in the environment, as the pipeline
    has them: neither the secret key, the session token, the access key id's signature nor a
    PowerDNS API key read through env/NAME appears in any output or log record."""
    from tests.octodns_project import CUSTOMER, declare, run, write_project

    server = route53
    secrets = {"AWS_SECRET_ACCESS_KEY": "s3cr3t-AWS-key-value-0123456789",
               "AWS_SESSION_TOKEN": "session-token-value-ABCDEFGHIJKL",
               "PDNS_API_KEY": "pdns-api-key-value-zyxwvuts"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    write_project(tmp_path, {
        "route53": {"class": "octodns_route53.Route53Provider"},
        "powerdns": {"class": "octodns_powerdns.PowerDnsProvider", "host": "127.0.0.1",
                     "port": 9, "api_key": "env/PDNS_API_KEY", "timeout": 1}},
        default="route53")
    declare(tmp_path, "mosa", """
        institution: mosa
        name: Mosa Museum
        domains:
          mosamuseum.com: {dns: managed}
        """)
    server.create_zone("mosamuseum.com", CUSTOMER)
    server.create_zone("dmarc.secutix.com")
    caplog.set_level(1)
    result = run(tmp_path, capsys, "plan", "-vv")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert result.code == 0, result.err
    assert "DEBUG" in result.err or logged  # it did log at debug level
    everything = result.out + result.err + logged
    for value in secrets.values():
        assert value not in everything
    assert "Signature=" not in everything


def test_control_characters_from_a_file_name_never_reach_the_terminal_or_the_junit(
    project: Project, capsys: pytest.CaptureFixture[str],
) -> None:
    from xml.etree import ElementTree as ET

    (project.zones / "evil\x1b[2J\x07.yaml").write_text("institution: x\n")
    result = cli(project, capsys, "validate", "--format", "junit")
    assert result.code == 1
    assert "\x1b" not in result.out + result.err and "\x07" not in result.out + result.err
    assert "\\x1b[2J" in result.err
    ET.fromstring(result.out)  # well-formed


def test_live_values_and_names_reach_markdown_inert(
    project: Project, capsys: pytest.CaptureFixture[str],
) -> None:
    from provisioner.escape import md_code, md_text

    assert md_code("x | ![i](https://e.example/p.png) @all") == \
        "`x \\| ![i](https://e.example/p.png) @all`"
    assert md_code("a`b") == "``a`b``"
    assert "\\!\\[" in md_text("![i](x)") and "\\@all" in md_text("@all")
    path = project.zones / "gva-opera.yaml"
    path.write_text(path.read_text().replace("dns: external", "dns: external", 1))
    code = next(p.stem for p in project.zones.glob("*.yaml")
                if "external" in p.read_text())
    target = project.zones / f"{code}.yaml"
    text = target.read_text()
    name_line = next(line for line in text.splitlines() if line.startswith("name:"))
    target.write_text(text.replace(name_line, 'name: "Opera ![x](https://evil.example) @all"'))
    shown = cli(project, capsys, "instructions", code, "--offline")
    assert shown.code == 0, shown.err
    assert "![x](https://evil.example)" not in shown.out and "@all" not in shown.out.replace(
        "\\@all", "")


def test_providers_from_a_virtualenv_inside_the_checkout_load(tmp_path: Path) -> None:
    """make venv puts .venv inside the repository: its site-packages are installed packages."""
    import sysconfig

    from provisioner.model import Target
    from provisioner.octodns.targets import provider_class

    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    checkout = site_packages.parents[3]  # <checkout>/.venv/lib/python3.X/site-packages
    cls = provider_class(Target("local", "octodns.provider.yaml.YamlProvider"), checkout)
    assert cls.__name__ == "YamlProvider"
