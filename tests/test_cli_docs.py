"""The README's command table says what the commands do (issue 11): each command's exit codes
as its --help shows them, its --format choices, and a usage error exiting 1 on every one."""

from __future__ import annotations

import re

import pytest

from provisioner.cli import COMMANDS, EXITS, build_parser, main
from tests.conftest import REPO

ROW = re.compile(r"^\| `provisioner (?P<cmd>[a-z-]+)(?P<synopsis>[^`]*)`.*\| (?P<exit>[^|]+) \|$")


def _rows() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            rows[match["cmd"]] = (match["synopsis"], match["exit"].strip())
    return rows


def test_every_command_has_a_readme_row_with_its_exit_codes() -> None:
    rows = _rows()
    assert set(rows) == set(COMMANDS), set(rows) ^ set(COMMANDS)
    for command, (_, exits) in rows.items():
        assert exits == EXITS[command], command


def _subparser(command: str) -> object:
    parser = build_parser(command)
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[command]  # type: ignore[index]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_readme_formats_and_help_match_the_parser(command: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    line, _ = _rows()[command]
    sub = _subparser(command)
    formats = next((a.choices for a in sub._actions if "--format" in a.option_strings), None)  # type: ignore[attr-defined]
    shown = re.search(r"--format ([a-z|\\]+)", line)
    if command != "keys":  # keys' formats belong to its steps
        if formats is None:
            assert shown is None, command
        else:
            assert shown is not None, f"README does not show {command}'s --format"
            assert set(shown[1].replace("\\", "").split("|")) == set(formats), command
    assert main([command, "--help"]) == 0
    assert f"exit: {EXITS[command]}" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_usage_error_exits_1_on_every_command(command: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--no-such-option"]) == 1
    err = capsys.readouterr().err
    assert "unrecognized arguments: --no-such-option" in err or "required" in err, err
    assert main(["no-such-command"]) == 1
