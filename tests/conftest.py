"""Shared fixtures: a project directory like the user's, and the CLI run as the user runs it."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from provisioner.cli import main

REPO = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/ from the current expansion instead of comparing",
    )


@pytest.fixture(autouse=True)
def key_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own local key store: none writes into the user's data directory."""
    directory = tmp_path_factory.mktemp("keys")
    monkeypatch.setenv("MAILAUTH_KEYS_DIR", str(directory))
    return directory


@pytest.fixture(autouse=True)
def approved(monkeypatch: pytest.MonkeyPatch) -> None:
    """apply approved as a script's environment approves it; the tests of the approval itself
    remove this."""
    monkeypatch.setenv("PROVISIONER_AUTO_APPROVE", "yes")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


class Project:
    """A repository in a temporary directory: the samples' provisioner.yaml and zones/."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.zones = root / "zones"

    @property
    def config(self) -> Path:
        return self.root / "provisioner.yaml"

    def write(self, relative: str, text: str | bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def zone(self, code: str, text: str | bytes) -> Path:
        return self.write(f"zones/{code}.yaml", text)

    def run(self, *args: str, capsys: pytest.CaptureFixture[str]) -> Result:
        capsys.readouterr()
        code = main([args[0], "--config", str(self.config), *args[1:]])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """The sample repository, copied, so a test can change it."""
    shutil.copy(REPO / "provisioner.yaml", tmp_path / "provisioner.yaml")
    shutil.copytree(REPO / "zones", tmp_path / "zones")
    return Project(tmp_path)


@pytest.fixture
def empty_project(tmp_path: Path) -> Project:
    """The sample platform with no institutions yet."""
    shutil.copy(REPO / "provisioner.yaml", tmp_path / "provisioner.yaml")
    (tmp_path / "zones").mkdir()
    return Project(tmp_path)


def cli(project: Project, capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    return project.run(*args, capsys=capsys)


__all__: Sequence[str] = ("REPO", "Project", "Result", "cli")
