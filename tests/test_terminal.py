"""What a person at a terminal sees, in a real pseudo-terminal (pexpect), beside what a pipe
gets (issue 11): colour and its switches, progress bars, the confirmation of apply, the
prompts of `new`, and shell completion in a real bash."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.conftest import Project

ESC = "\x1b["
BAD_POLICY = """
    institution: acme
    name: Acme
    domains:
      acme.example:
        dmarc:
          policy: rejct
    """


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "FORCE_COLOR", "CI", "PROVISIONER_AUTO_APPROVE", "TERM")}
    env["TERM"] = "xterm-256color"
    env.update(extra)
    return env


def _terminal(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal (stdin, stdout and stderr); its exit and all it wrote."""
    child = pexpect.spawn(sys.executable, ["-m", "provisioner", *args], env=env,
                          encoding="utf-8", timeout=timeout, dimensions=(40, 200))
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus if child.exitstatus is not None else -1, child.before or ""


def _pipe(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioner", *args], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def bad(project: Project) -> Project:
    project.zone("acme", BAD_POLICY)
    return project


def test_colour_on_a_terminal_only_and_its_switches(bad: Project) -> None:
    args = ["validate", "--config", str(bad.config)]
    code, seen = _terminal(args, _env())
    assert code == 1
    # the problem's code in bold red, the verdict in red, on the terminal
    assert "\x1b[1;31merror[schema.enum]\x1b[0m" in seen, repr(seen)
    assert "\x1b[1;31minvalid\x1b[0m: " in seen, repr(seen)
    for before, after, env in (([], ["--no-color"], _env()), (["--no-color"], [], _env()),
                               ([], [], _env(NO_COLOR="1")), ([], [], _env(TERM="dumb"))):
        code, seen = _terminal([*before, *args[:1], *after, *args[1:]], env)
        assert code == 1 and "error[schema.enum]" in seen and ESC not in seen, (before, after)
    # a pipe gets none, unless FORCE_COLOR asks
    piped = _pipe(args, _env())
    assert piped.returncode == 1 and "error[schema.enum]" in piped.stderr
    assert ESC not in piped.stderr + piped.stdout
    forced = _pipe(args, _env(FORCE_COLOR="1"))
    assert ESC in forced.stderr


def test_colour_never_lets_a_file_carry_its_own_escape_codes(project: Project) -> None:
    # A declaration whose unknown key holds ESC: the colour is ours, the ESC shown as text.
    project.zone("acme", BAD_POLICY.replace("name: Acme", 'name: Acme\n    "x\\e[8my": 1'))
    code, seen = _terminal(["validate", "--config", str(project.config)], _env())
    assert code == 1 and "\x1b[1;31merror[schema.unknown-key]" in seen, repr(seen)
    assert "\x1b[8m" not in seen and "x\\x1b[8my" in seen, repr(seen)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A UDP port that reads every query and answers none: checks stay unverified."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_progress_on_a_terminal_for_long_steps_never_in_a_pipe(
    project: Project, silent_server: int
) -> None:
    args = ["verify", "--config", str(project.config), "--institution", "mosa",
            "--nameserver", f"127.0.0.1:{silent_server}", "--timeout", "0.1", "--wait", "2.5"]
    code, seen = _terminal(args, _env())
    assert code == 2
    assert "domains verified" in seen, repr(seen[-2000:])
    piped = _pipe(args, _env())
    assert piped.returncode == 2
    assert "domains verified" not in piped.stderr + piped.stdout
    # CI logs stay quiet on a terminal too, unless asked
    code, seen = _terminal(args, _env(CI="true"))
    assert code == 2 and "domains verified" not in seen
    asked = _pipe([args[0], "--progress", *args[1:]], _env(CI="true"))
    assert "domains verified" in asked.stderr
    # a short step shows none, even on a terminal
    code, seen = _terminal(["plan", "--config", str(project.config)], _env())
    assert code == 0 and "planning zones" not in seen


def test_apply_asks_on_a_terminal_and_refuses_in_a_pipe(project: Project) -> None:
    args = ["apply", "--no-verify", "--target", "local", "--config", str(project.config)]
    files = project.root / "build" / "dns"
    child = pexpect.spawn(sys.executable, ["-m", "provisioner", *args], env=_env(),
                          encoding="utf-8", timeout=60)
    child.expect(r"\+ _dmarc TXT")  # the plan is shown before the question
    child.expect("Apply these changes\\? Only 'yes' approves: ")
    child.sendline("y")
    child.expect("apply cancelled: nothing written")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1 and not files.exists()
    piped = _pipe(args, _env())
    assert piped.returncode == 1 and "error[apply.not-approved]" in piped.stderr
    assert not files.exists()
    child = pexpect.spawn(sys.executable, ["-m", "provisioner", *args], env=_env(),
                          encoding="utf-8", timeout=60)
    child.expect("Only 'yes' approves: ")
    child.sendline("yes")
    child.expect(r"apply: applied, not verified \(--no-verify\): \d+ change\(s\) in \d+ zone")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and (files / "mosamuseum.com.yaml").exists()


def test_new_asks_for_what_is_missing_on_a_terminal(project: Project) -> None:
    child = pexpect.spawn(sys.executable, ["-m", "provisioner", "new", "acme", "--config",
                                           str(project.config)], env=_env(),
                          encoding="utf-8", timeout=60)
    child.expect("Institution name: ")
    child.sendline("Acme Théâtre")
    child.expect(r"e-mail \(optional\): ")
    child.sendline("dns@acme.example")
    child.expect(r"Sender domain .*: ")
    child.sendline("Acme.Example")
    child.expect(r"DNS: managed .* \[managed\]: ")
    child.sendline("")
    child.expect("created zones/acme.yaml: valid")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    text = (project.zones / "acme.yaml").read_text(encoding="utf-8")
    assert "name: Acme Théâtre" in text and "  acme.example:" in text
    assert text.startswith("# yaml-language-server: $schema=../schemas/institution.schema.json")
    checked = _pipe(["validate", "--config", str(project.config)], _env())
    assert checked.returncode == 0, checked.stderr
    # in a pipe nothing is asked: the missing options are named
    piped = _pipe(["new", "other", "--config", str(project.config)], _env())
    assert piped.returncode == 1
    assert "new needs --name ... --domain ..." in piped.stderr
    assert not (project.zones / "other.yaml").exists()


def test_bash_completes_commands_and_options(tmp_path: Path) -> None:
    bindir = Path(sys.executable).parent
    if not (bindir / "provisioner").exists():
        pytest.skip("the provisioner script is not installed beside this interpreter")
    env = _env(PATH=f"{bindir}:{os.environ.get('PATH', '')}", HOME=str(tmp_path), PS1="$ ")
    shell = pexpect.spawn("bash", ["--norc", "--noprofile", "-i"], env=env, encoding="utf-8",
                          timeout=30, dimensions=(40, 200))
    shell.expect_exact("$ ")
    shell.sendline('eval "$(provisioner completion bash)"; echo loaded')
    shell.expect_exact("loaded")
    shell.expect_exact("$ ")
    shell.send("provisioner plan-m\t")
    shell.expect_exact("provisioner plan-merge ")
    shell.sendcontrol("c")
    shell.expect_exact("$ ")
    shell.send("provisioner pla\t\t\t")  # "plan" inserted, then plan and plan-merge offered
    shell.expect(r"plan\s+plan-merge")
    shell.sendcontrol("c")
    shell.expect_exact("$ ")
    shell.send("provisioner plan --detailed-e\t")
    shell.expect_exact("--detailed-exitcode ")
    shell.sendcontrol("c")
    shell.expect_exact("$ ")
    shell.send("provisioner keys \t\t")
    shell.expect(r"activate\s+advance")
    shell.sendcontrol("c")
    shell.sendline("exit")
    shell.expect(pexpect.EOF)
