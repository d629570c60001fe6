"""The whole pipeline with DKIM keys the product owns, run by gitlab-ci-local: the merge request
announces the keys, the default branch makes, publishes and starts signing with them, and no
output, log, note or artifact of the run (nor a -vv run of each command) holds private key
material."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.keys_project import key_strings
from tests.servers import PdnsServer, pdns, pdns_server  # noqa: F401 - fixtures
from tests.test_gitlab_note import TOKEN, FakeGitLab
from tests.test_pipeline_local import (  # noqa: F401 - fixtures
    MR,
    PDNS_PLATFORM,
    PUSH_MAIN,
    REVIEWED,
    Workspace,
    _on_powerdns,
    fake_gitlab,
    gitlab_ci_local,
    job_results,
    workspace,
)

pytestmark = pytest.mark.slow

KEYED_PLATFORM = PDNS_PLATFORM.replace(
    "platform_zones:\n", "platform_zones:\n  dkim.secutix.com: {target: powerdns}\n")


def private_material(store: Path) -> list[str]:
    """What a leak would show of each stored key: its PEM marker and each line of its body."""
    found = ["PRIVATE" + " KEY-----"]  # split: this file is in the scanned workspace too
    for pem in store.glob("private/*/*.pem"):
        body = [line for line in pem.read_text().splitlines() if not line.startswith("-----")]
        found += [line for line in body if len(line) >= 32]
        found.append("".join(body))
    return found


def leaks(text: str, material: list[str]) -> list[str]:
    return [m[:20] + "..." for m in material if m in text]


def test_pipeline_makes_signs_and_leaks_no_private_key(
    workspace: Workspace, pdns: PdnsServer, key_store: Path,  # noqa: F811
    fake_gitlab: tuple[str, FakeGitLab],  # noqa: F811
) -> None:
    variables = _on_powerdns(workspace, pdns)
    pdns.delete_all_zones()  # no DKIM zone beforehand: the product creates and fills it
    pdns.create_zone("mosamuseum.com", [("www", "A", 300, ["192.0.2.10"])])
    pdns.create_zone("secutix.com", [("spf", "TXT", 3600, ['"v=spf1 ip4:192.28.148.112 -all"'])])
    pdns.allow_transfer("mosamuseum.com", variables["PDNS_TRANSFER_KEY"])
    (workspace.root / "provisioner.yaml").write_text(KEYED_PLATFORM)
    workspace.commit()
    variables["MAILAUTH_KEYS_DIR"] = str(key_store)
    url, gitlab = fake_gitlab
    outputs: list[str] = []

    review = workspace.gcl(variables={**MR, **variables, "CI_SERVER_URL": url,
                                      "MR_NOTE_TOKEN": TOKEN})
    outputs.append(review.stdout + review.stderr)
    assert job_results(outputs[-1]) == REVIEWED, outputs[-1]
    [note] = [n["body"] for n in gitlab.notes if n["author"]["username"] == "project_42_bot"]
    assert "keys to generate: sel1-mosa, sel2-mosa, rsa-2048" in note
    assert not list(key_store.glob("private/*/*.pem"))  # a merge request makes no key

    ran = workspace.gcl("--manual", "apply", variables={**PUSH_MAIN, **variables,
                                                       "VERIFY_WAIT": "30"})
    outputs.append(ran.stdout + ran.stderr)
    assert job_results(outputs[-1]) == {**REVIEWED, "apply": "PASS", "verify": "PASS",
                                        "keys": "PASS"}, outputs[-1]
    state = json.loads((key_store / "state" / "mosa.json").read_text())
    assert state["selectors"]["sel1-mosa"]["status"] == "signing"
    public = state["selectors"]["sel1-mosa"]["key"]["public"]
    [strings] = key_strings(pdns.dns_port, "sel1-mosa._domainkey.dkim.secutix.com.")
    assert b"".join(strings).decode() == f"v=DKIM1; k=rsa; p={public}"
    assert re.search("mosa signs|sel1-mosa signing", outputs[-1])

    # Each command again at full verbosity, as an operator debugging would run it.
    config = str(workspace.root / "provisioner.yaml")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workspace.root.parent / "home"),
           **{k: v for k, v in variables.items()}}
    ns = variables["PROVISIONER_NAMESERVER"]
    for argv in (["plan", "-vv"], ["apply", "-vv", "--no-verify"], ["verify", "-vv",
                 "--nameserver", ns], ["drift", "-vv", "--nameserver", ns],
                 ["keys", "status", "-vv"], ["keys", "signing", "-vv", "--nameserver", ns],
                 ["keys", "signing", "--format", "opendkim", "--nameserver", ns],
                 ["keys", "test", "mosa", "-vv", "--nameserver", ns]):
        done = subprocess.run([sys.executable, "-m", "provisioner", *argv, "--config", config],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        outputs.append(done.stdout + done.stderr)
    assert "DEBUG" in outputs[-1]

    material = private_material(key_store)
    assert len(material) > 4  # two keys: markers and bodies
    texts = {f"output {i}": out for i, out in enumerate(outputs)}
    texts["note"] = note
    for path in workspace.root.rglob("*"):
        if path.is_file() and ".venv" not in path.parts and ".git" not in path.parts:
            texts[str(path.relative_to(workspace.root))] = path.read_text(errors="replace")
    found = {name: leaks(text, material) for name, text in texts.items()}
    assert {n: f for n, f in found.items() if f} == {}
    assert any(public in t for t in texts.values())  # the public half is there, as it should
