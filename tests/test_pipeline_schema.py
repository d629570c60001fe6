"""`.gitlab-ci.yml` against GitLab's own CI schema, offline (check-jsonschema ships it).

The broken copies show the check can fail: each is the real file with one mistake a person
might make while editing it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PIPELINE = REPO / ".gitlab-ci.yml"
CHECK = Path(sys.executable).parent / "check-jsonschema"


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHECK), "--builtin-schema", "vendor.gitlab-ci", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_the_pipeline_matches_gitlabs_schema() -> None:
    result = check(PIPELINE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _rename_script(doc: dict[str, Any]) -> None:
    doc["apply"]["scirpt"] = doc["apply"].pop("script")


BROKEN = {
    "a typo in a job keyword": _rename_script,
    "a manual gate spelled wrong": _set(("apply", "rules", 0, "when"), "manaul"),
    "no parallel jobs at all": _set(("drift", "parallel"), 0),
    "an artifact report that is not a path": _set(("verify", "artifacts", "reports", "junit"),
                                                  {"path": "build/ci/verify.xml"}),
    "interruptible as a word": _set(("apply", "interruptible"), "never"),
}


def test_the_unchanged_round_trip_still_passes(tmp_path: Path) -> None:
    """The broken copies go through YAML and back; without a mistake that copy passes."""
    copy = tmp_path / ".gitlab-ci.yml"
    copy.write_text(yaml.safe_dump(yaml.safe_load(PIPELINE.read_text()), sort_keys=False))
    assert check(copy).returncode == 0


@pytest.mark.parametrize("mistake", sorted(BROKEN))
def test_a_broken_copy_fails(tmp_path: Path, mistake: str) -> None:
    doc = yaml.safe_load(PIPELINE.read_text())
    BROKEN[mistake](doc)
    copy = tmp_path / ".gitlab-ci.yml"
    copy.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = check(copy)
    assert result.returncode == 1, f"{mistake} passed the schema:\n{result.stdout}"
    assert "Schema validation errors were encountered" in result.stdout + result.stderr
