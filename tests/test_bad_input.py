"""Every class of bad input gets one located line on stderr and exit 1, never a traceback.

Each test writes what a hurried operator might write and asserts the file, line, column, the
stable problem code and a hint, as the user would read them from `provisioner validate`.
"""

from __future__ import annotations

import json
import re

import pytest

from provisioner.errors import Origin
from provisioner.model import Record, Role
from provisioner.rules import check_records
from tests.conftest import Project, cli

LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): error\[(?P<code>[a-z.-]+)\]: .+")

GOOD = """\
institution: {code}
name: Test
domains:
  {domain}:
    dmarc:
      policy: none
"""


def errors(result_err: str) -> list[re.Match[str]]:
    found = [LINE.match(line) for line in result_err.splitlines() if "error[" in line]
    assert all(found), result_err
    return [m for m in found if m]


def expect(
    project: Project,
    capsys: pytest.CaptureFixture[str],
    file: str,
    line: int,
    col: int,
    code: str,
    *words: str,
) -> str:
    result = cli(project, capsys, "validate")
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    matches = [m for m in errors(result.err) if m["code"] == code]
    assert matches, f"no {code} in:\n{result.err}"
    m = matches[0]
    assert (m["file"], int(m["line"]), int(m["col"])) == (file, line, col), m.group(0)
    for word in words:
        assert word in m.group(0), m.group(0)
    assert "(fix: " in m.group(0)
    return m.group(0)


def test_unknown_key(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone(
        "acme",
        """
        institution: acme
        name: Acme
        domains:
          acme.example:
            dmarc:
              polciy: reject
    """,
    )
    line = expect(project, capsys, "zones/acme.yaml", 6, 7, "schema.unknown-key", "'polciy'")
    assert "policy" in line  # the fix lists the allowed keys


def test_duplicate_key(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone(
        "acme",
        """
        institution: acme
        name: Acme
        domains:
          acme.example: {}
        name: Acme Two
    """,
    )
    expect(project, capsys, "zones/acme.yaml", 5, 1, "yaml.duplicate-key", "first at line 2")


def test_alias_bomb(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    project.zone("acme", "\n".join(lines) + "\ninstitution: acme\n")
    expect(project, capsys, "zones/acme.yaml", 5, 1, "yaml.too-many-nodes", "aliases")


def test_recursive_alias(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone("acme", "institution: &x [acme, *x]\n")
    result = cli(project, capsys, "validate")
    assert result.code == 1 and "Traceback" not in result.err
    assert any(m["file"] == "zones/acme.yaml" for m in errors(result.err))


def test_deep_nesting(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone("acme", "institution: " + "[" * 60 + "]" * 60 + "\n")
    expect(project, capsys, "zones/acme.yaml", 1, 46, "yaml.too-deep")


def test_file_too_large(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone("acme", GOOD.format(code="acme", domain="acme.example") + "#" * 300_000 + "\n")
    result = cli(project, capsys, "validate")
    assert result.code == 1
    assert re.search(
        r"^zones/acme\.yaml: error\[yaml\.too-large\]: file is \d+ bytes", result.err, re.M
    ), result.err


def test_not_utf8(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone("acme", b"institution: acme\nname: Mus\xe9e\n")
    expect(project, capsys, "zones/acme.yaml", 2, 10, "yaml.encoding", "0xe9", "UTF-8")


def test_tab_indentation(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone("acme", "institution: acme\nname: Acme\ndomains:\n\tacme.example: {}\n")
    expect(project, capsys, "zones/acme.yaml", 4, 1, "yaml.syntax", "tab", "spaces")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(project: Project, capsys: pytest.CaptureFixture[str], text: str) -> None:
    project.zone("acme", text)
    result = cli(project, capsys, "validate")
    assert result.code == 1
    assert "zones/acme.yaml: error[yaml.empty]: file is empty" in result.err


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "scalar")])
def test_not_a_mapping(
    project: Project, capsys: pytest.CaptureFixture[str], text: str, kind: str
) -> None:
    project.zone("acme", text)
    expect(project, capsys, "zones/acme.yaml", 1, 1, "yaml.not-mapping", kind)


def test_yaml_syntax(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone("acme", "institution: acme\nname: [unclosed\n")
    result = cli(project, capsys, "validate")
    assert result.code == 1
    # at the bracket to close, not at the end of the file where libyaml gave up
    assert re.search(r"^zones/acme\.yaml:2:7: error\[yaml\.syntax\]: the \[ opened on line 2 is "
                     r"not closed", result.err, re.M), result.err


SYNTAX = """\
institution: acme
name: Acme
domains:
  acme.example:
    dns: managed
    dmarc:
      policy: none
      rua: [mailto:d@acme.example]
"""


@pytest.mark.parametrize(("old", "new", "line", "words"), [
    # over-indented first key of a block: libyaml stops at the line after it
    ("    dns: managed", "      dns: managed", 5, "indent line 5 by 4 spaces"),
    # under-indented key: lines up with nothing
    ("    dmarc:", "   dmarc:", 6, "indent it by 4 spaces, like line 5"),
    # a key left at its parent's level: the parent holds nothing
    ("      policy: none", "    policy: none", 7, "indent line 7 by 6 spaces"),
    ("name: Acme", "name: Acme\n  extra: 1", 3, "end the line above with ':'"),
    ("    dmarc:", "\tdmarc:", 6, "indent with spaces only"),
    ("name: Acme", "name: 'Acme", 2, "the quote opened on line 2 is never closed"),
    ("name: Acme", "name: Acme: the museum", 2, "put the value in quotes"),
])
def test_yaml_syntax_points_at_the_line_to_change(
    project: Project, capsys: pytest.CaptureFixture[str], old: str, new: str, line: int,
    words: str,
) -> None:
    project.zone("acme", SYNTAX.replace(old, new, 1))
    result = cli(project, capsys, "validate")
    found = [m for m in errors(result.err) if m["code"] == "yaml.syntax"]
    assert len(found) == 1 and int(found[0]["line"]) == line, result.err
    assert words in result.err and "fix the YAML syntax" not in result.err, result.err


@pytest.mark.parametrize(("old", "new", "words"), [
    ("policy: none", "policy: rejct", "(did you mean 'reject'?)"),
    ("    dmarc:", "    dmarcc:", "unknown key 'dmarcc' in domains.acme.example "
                                  "(did you mean 'dmarc'?)"),
    ("policy: none", "policy: off", "policy is off, which YAML reads as the boolean false, not "
                                    "the word (did you mean 'none'?)"),
    ("name: Acme", "name: yes", 'name is yes, which YAML reads as the boolean true, not the '
                                'word (fix: quote it: name: "yes")'),
    ("    dns: managed", "    dns: managed\n    ttl: 1h", 'ttl is "1h": a number of seconds is '
                                                       "written without a unit (fix: write 3600"),
])
def test_schema_messages_say_what_was_meant(
    project: Project, capsys: pytest.CaptureFixture[str], old: str, new: str, words: str,
) -> None:
    project.zone("acme", SYNTAX.replace(old, new, 1))
    result = cli(project, capsys, "validate")
    assert result.code == 1 and words in result.err, result.err


def test_one_error_per_file_for_a_domain_claimed_twice(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.zone("acme", SYNTAX)
    project.zone("acme2", SYNTAX.replace("institution: acme", "institution: acme2"))
    result = cli(project, capsys, "validate")
    found = errors(result.err)
    assert sorted((m["file"], m["code"]) for m in found) == [
        ("zones/acme.yaml", "domain.claimed-twice"), ("zones/acme2.yaml", "domain.claimed-twice")
    ], result.err


@pytest.mark.parametrize(("cls", "words"), [
    ("octodns_route53.Route53Provder", "has no 'Route53Provder' (did you mean "
                                       "'Route53Provider'?)"),
    ("octodns_nothere.Provider", "no installed package 'octodns_nothere'"),
    ("octodns.provider.nope.Provider", "no module 'octodns.provider.nope'"),
])
def test_validate_checks_provider_classes(
    project: Project, capsys: pytest.CaptureFixture[str], cls: str, words: str
) -> None:
    text = project.config.read_text()
    assert "class: octodns_route53.Route53Provider" in text
    project.config.write_text(text.replace("class: octodns_route53.Route53Provider",
                                           f"class: {cls}", 1))
    result = cli(project, capsys, "validate")
    found = [m for m in errors(result.err) if m["code"] == "target.class-unknown"]
    assert len(found) == 1 and found[0]["file"] == "provisioner.yaml", result.err
    assert words in result.err, result.err


def test_code_differs_from_file_name(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone("acme", GOOD.format(code="acme-museum", domain="acme.example"))
    expect(project, capsys, "zones/acme.yaml", 1, 14, "institution.file-name", "zones/acme-museum")


def test_domain_claimed_twice(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone("acme", GOOD.format(code="acme", domain="MosaMuseum.com."))
    line = expect(project, capsys, "zones/acme.yaml", 4, 3, "domain.claimed-twice", "mosa")
    assert "zones/mosa.yaml:7:3" in line
    # the other file is told too, so `validate zones/mosa.yaml` alone also fails
    result = cli(project, capsys, "validate", str(project.zones / "mosa.yaml"))
    assert result.code == 1 and "zones/acme.yaml:4:3" in result.err


def test_domain_inside_platform_zone(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone("acme", GOOD.format(code="acme", domain="acme.dkim.secutix.com"))
    expect(project, capsys, "zones/acme.yaml", 4, 3, "domain.platform-zone", "dkim.secutix.com")


def test_unknown_target(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone(
        "acme",
        """
        institution: acme
        name: Acme
        domains:
          acme.example:
            target: cloudflare
    """,
    )
    expect(project, capsys, "zones/acme.yaml", 5, 13, "target.unknown", "cloudflare", "local")


@pytest.mark.parametrize(
    ("domain", "why"),
    [
        ("a" * 64 + ".example", "at most 63"),
        (".".join(["abcdefghij"] * 25) + ".example", "at most 253"),
        ("acme_museum.example", "letters, digits"),
        ("-acme.example", "letters, digits"),
        ("localhost", "two labels"),
        ("acme.123", "all digits"),
    ],
)
def test_invalid_domain_names(
    project: Project, capsys: pytest.CaptureFixture[str], domain: str, why: str
) -> None:
    project.zone("acme", GOOD.format(code="acme", domain=domain))
    expect(project, capsys, "zones/acme.yaml", 4, 3, "domain.invalid", why)


def test_names_are_lowered_and_idn_encoded(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.zone("acme", GOOD.format(code="acme", domain="Musée-Acme.Example."))
    result = cli(project, capsys, "records", "--institution", "acme", "--format", "bind")
    assert result.code == 0, result.err
    assert "$ORIGIN xn--muse-acme-d4a.example." in result.out


@pytest.mark.parametrize(
    "include",
    [
        '"_spf.google.com"',
        "_spf.google.com ~all",
        "include:_spf.google.com",
        "a:mail.example",
        '_spf.google.com\\"',
        "exists:%{i}.x.example",
        "ip4:192.0.2.1",
    ],
)
def test_spf_include_cannot_inject(
    project: Project, capsys: pytest.CaptureFixture[str], include: str
) -> None:
    project.zone(
        "acme",
        f"""
        institution: acme
        name: Acme
        domains:
          acme.example:
            spf:
              include: ['{include.replace("'", "''")}']
    """,
    )
    result = cli(project, capsys, "validate")
    assert result.code == 1, result.err
    found = errors(result.err)
    assert found and found[0]["file"] == "zones/acme.yaml" and found[0]["line"] == "6"


@pytest.mark.parametrize(
    "uri", ["dmarc@acme.example", "https://acme.example/dmarc", "mailto:dmarc@acme.example;p=none"]
)
def test_dmarc_uris_are_mailto(
    project: Project, capsys: pytest.CaptureFixture[str], uri: str
) -> None:
    project.zone(
        "acme",
        f"""
        institution: acme
        name: Acme
        domains:
          acme.example:
            dmarc:
              rua: ['{uri}']
    """,
    )
    expect(project, capsys, "zones/acme.yaml", 6, 13, "schema.pattern", "mailto:")


@pytest.mark.parametrize("pct", [-1, 101])
def test_percentage_range(project: Project, capsys: pytest.CaptureFixture[str], pct: int) -> None:
    project.zone(
        "acme",
        f"""
        institution: acme
        name: Acme
        domains:
          acme.example:
            dmarc:
              percentage: {pct}
    """,
    )
    expect(
        project,
        capsys,
        "zones/acme.yaml",
        6,
        19,
        "schema.minimum" if pct < 0 else "schema.maximum",
        str(pct),
    )


def test_spf_lookup_limit(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    includes = ", ".join(f"_spf{i}.example.net" for i in range(10))
    project.zone(
        "acme",
        f"""
        institution: acme
        name: Acme
        domains:
          acme.example:
            spf:
              include: [{includes}]
    """,
    )
    expect(project, capsys, "zones/acme.yaml", 6, 16, "spf.lookup-limit", "11 DNS lookups")


def test_bad_enum_value(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone(
        "acme",
        """
        institution: acme
        name: Acme
        domains:
          acme.example:
            dns: cloud
    """,
    )
    expect(project, capsys, "zones/acme.yaml", 5, 10, "schema.enum", "managed, external")


def test_wrong_type(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone(
        "acme",
        """
        institution: acme
        name: Acme
        domains:
          acme.example:
            ttl: one hour
    """,
    )
    line = expect(project, capsys, "zones/acme.yaml", 5, 10, "schema.type",
                  "is a string, not a whole number", "write a whole number here")
    assert "integer" not in line


def test_type_errors_speak_yaml(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    """Never "write a object here": the words of the file the user edits."""
    project.zone("acme", "institution: acme\nname: Acme\ndomains: [acme.example]\n")
    line = expect(project, capsys, "zones/acme.yaml", 3, 10, "schema.type",
                  "is a list, not a mapping (key: value lines)")
    assert "a object" not in line and "write a mapping (key: value lines) here" in line


def test_missing_required_key(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone("acme", "institution: acme\ndomains:\n  acme.example: {}\n")
    expect(project, capsys, "zones/acme.yaml", 1, 1, "schema.required", "'name'")


def test_zone_must_hold_domain(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone(
        "acme",
        """
        institution: acme
        name: Acme
        domains:
          news.acme.example:
            zone: other.example
    """,
    )
    expect(project, capsys, "zones/acme.yaml", 5, 11, "domain.zone", "not inside")


def test_two_declarations_one_record(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone(
        "acme",
        """
        institution: acme
        name: Acme
        domains:
          acme.example:
            return_path: mail
    """,
    )
    project.zone(
        "acme-mail",
        """
        institution: acme-mail
        name: Acme Mail
        domains:
          mail.acme.example:
            zone: acme.example
    """,
    )
    result = cli(project, capsys, "validate")
    assert result.code == 1
    codes = {m["code"] for m in errors(result.err)}
    assert "record.conflict" in codes, result.err


def test_external_domain_with_target(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone(
        "acme",
        """
        institution: acme
        name: Acme
        domains:
          acme.example:
            dns: external
            target: local
    """,
    )
    expect(project, capsys, "zones/acme.yaml", 6, 5, "domain.target-external")


def test_txt_value_with_quote_is_refused() -> None:
    origin = Origin("zones/acme.yaml", 4, 3)
    rec = Record("acme.example.", "", "TXT", 3600, ('v=spf1 "x" ~all',), Role.SPF, origin)
    problems = check_records([rec])
    assert [p.code for p in problems] == ["record.txt-value"]
    assert str(problems[0]).startswith("zones/acme.yaml:4:3: error[record.txt-value]")


def test_all_problems_of_all_files_in_one_run(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.zone("one", "institution: one\nname: One\ndomains:\n  one.example: {dns: nope}\n")
    project.zone("two", "institution: two\nname: [\n")
    project.zone("three", GOOD.format(code="tree", domain="three.example"))
    result = cli(project, capsys, "validate")
    assert result.code == 1
    files = {m["file"] for m in errors(result.err)}
    assert files == {"zones/one.yaml", "zones/two.yaml", "zones/three.yaml"}
    assert "3 errors" in result.err


def test_bad_platform_file(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    text = project.config.read_text().replace("default_target: local", "default_target: gcp")
    project.write("provisioner.yaml", text)
    result = cli(project, capsys, "validate")
    assert result.code == 1
    assert re.search(r"^provisioner\.yaml:\d+:17: error\[target\.unknown\]", result.err, re.M)


def test_validate_named_files_only(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone("bad", "institution: bad\n")
    good = str(project.zones / "mosa.yaml")
    result = cli(project, capsys, "validate", good)
    assert result.code == 0, result.err
    result = cli(project, capsys, "validate", str(project.zones / "bad.yaml"))
    assert result.code == 1


def test_missing_config(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from provisioner.cli import main

    code = main(["validate", "--config", "/nonexistent/provisioner.yaml"])
    assert code == 1
    assert "config.missing" in capsys.readouterr().err


def test_validate_junit_report(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    import xml.etree.ElementTree as ET

    project.zone("acme", "institution: acme\n")
    result = cli(project, capsys, "validate", "--format", "junit")
    assert result.code == 1
    suite = ET.fromstring(result.out)
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert {"provisioner.yaml", "zones/mosa.yaml", "zones/acme.yaml"} <= set(cases)
    failure = cases["zones/acme.yaml"].find("failure")
    assert failure is not None and "schema.required" in (failure.text or "")
    assert cases["zones/mosa.yaml"].find("failure") is None
    assert suite.get("failures") == "1"


def test_a_return_path_that_repeats_the_domain(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.zone("acme", "institution: acme\nname: Test\ndomains:\n  acme.example:\n"
                         "    return_path: bounce.acme.example\n")
    line = expect(project, capsys, "zones/acme.yaml", 5, 18,
                  "domain.return-path-repeats-domain", "bounce.acme.example.acme.example",
                  "write return_path: bounce")
    assert line


def test_a_declaration_saved_as_yml_is_not_silently_ignored(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    (project.zones / "acme.yml").write_text(GOOD.format(code="acme", domain="acme.example"))
    result = cli(project, capsys, "validate")
    assert result.code == 1, result.err
    assert "zones/acme.yml" in result.err and "error[project.not-yaml-suffix]" in result.err
    assert "git mv zones/acme.yml zones/acme.yaml" in result.err


def test_global_options_before_the_command(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """provisioner --config FILE validate, as the README says every command takes it."""
    from provisioner.cli import main

    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # no provisioner.yaml here
    capsys.readouterr()
    assert main(["--config", str(project.config), "validate"]) == 0
    assert "valid: 4 institutions" in capsys.readouterr().err
    assert main(["-v", "--config", str(project.config), "records"]) == 0
    assert "_dmarc" in capsys.readouterr().out
    # After the command wins over before it.
    missing = str(project.root / "nowhere.yaml")
    assert main(["--config", str(project.config), "validate", "--config", missing]) == 1


def test_percentage_is_obsolete_and_never_published(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.zone("acme", """
        institution: acme
        name: Acme
        domains:
          acme.example:
            dmarc:
              policy: quarantine
              percentage: 50
    """)
    result = cli(project, capsys, "validate")
    assert result.code == 0  # a warning: the declaration still provisions
    assert re.search(r"^zones/acme\.yaml:7:7: warning\[dmarc\.percentage-obsolete\]: "
                     r"percentage: 50 \(pct=\) is obsolete since RFC 9989.*testing: true \(t=y\)",
                     result.err, re.M), result.err
    records = json.loads(cli(project, capsys, "records", "--institution", "acme", "--format",
                             "json").out)
    dmarc = next(r for r in records if r["name"] == "_dmarc")
    assert dmarc["values"] == ["v=DMARC1; p=quarantine; rua=mailto:reports@dmarc.secutix.com"]


def test_rfc9989_tags_are_declarable(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.zone("acme", """
        institution: acme
        name: Acme
        domains:
          acme.example:
            dmarc:
              policy: reject
              non_existent_subdomain_policy: reject
              testing: true
    """)
    records = json.loads(cli(project, capsys, "records", "--institution", "acme", "--format",
                             "json").out)
    dmarc = next(r for r in records if r["name"] == "_dmarc")["values"][0]
    # p second, for RFC 7489 receivers; then np and t (RFC 9989 §4.7)
    assert dmarc.startswith("v=DMARC1; p=reject; np=reject; t=y; ")
