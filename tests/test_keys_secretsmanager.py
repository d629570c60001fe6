"""The AWS Secrets Manager key store against a real moto server, and the CLI on top of it.

One ``moto.server.ThreadedMotoServer`` on 127.0.0.1 (a free port) for the module; boto3 finds it
through ``AWS_ENDPOINT_URL_SECRETS_MANAGER``, with dummy credentials set by ``monkeypatch`` and
no ``~/.aws`` file read. moto keeps its secrets for the whole process, so each test works under
its own name prefix instead of resetting the server (other modules' moto servers share it).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.keys import crypto, lifecycle
from provisioner.keys.policy import KeySpec
from provisioner.keys.secretsmanager import SecretsManagerStore
from provisioner.keys.state import InstitutionKeys, KeyInfo
from provisioner.keys.store import Conflict, StoreError
from tests.keys_project import MOSA, Clock, write_keyed_project
from tests.octodns_project import checksum_of, declare, run
from tests.servers import free_port

SECRET_ACCESS_KEY = "sm-dummy-secret-6Qv3xT9pLw2Z"  # must never be printed or logged
SESSION_TOKEN = "sm-dummy-session-R7mK4nB8cY1"
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


# --- the server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    werkzeug = logging.getLogger("werkzeug")  # the server's request lines, not the product's
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        werkzeug.setLevel(level)


@pytest.fixture(autouse=True)
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """This test's boto3 talks to the module's moto server, never to AWS."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION",
                 "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "AKIASMTESTDUMMY00001",
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return moto_endpoint


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}/"


def sm() -> Any:
    """A boto3 client of our own, to look at what the store wrote."""
    import boto3

    return boto3.client("secretsmanager")


# --- states and keys --------------------------------------------------------------------------


def fresh(code: str = "mosa") -> InstitutionKeys:
    return InstitutionKeys.new(code, (f"sel1-{code}", f"sel2-{code}"))


def keyed(state: InstitutionKeys, pems: dict[str, bytes] | None = None) -> InstitutionKeys:
    """``state`` with its onboarding keys placed (ed25519: fast); their PEMs into ``pems``."""
    step = lifecycle.onboard(state, KeySpec.of("ed25519"))
    out = step.state
    for need in step.needs:
        pem, public = crypto.generate(need.spec)
        if pems is not None:
            pems[need.key_id] = pem
        out = lifecycle.place(out, need, KeyInfo(need.key_id, "ed25519", 256, public, NOW), NOW)
    return out


def pem_fragments(pem: bytes) -> list[str]:
    """What of a private key must never show: its markers, each line of its base64 body, and
    the body in one piece."""
    lines = [line for line in pem.decode().splitlines() if line and "-----" not in line]
    return ["PRIVATE KEY", "-----BEGIN", *lines, "".join(lines)]


def leaks(text: str, pems: list[bytes]) -> list[str]:
    return [f for pem in pems for f in pem_fragments(pem) if f in text]


# --- private keys -----------------------------------------------------------------------------


def test_a_private_key_is_created_once_and_read_back(prefix: str) -> None:
    store = SecretsManagerStore(prefix)
    first, _ = crypto.generate(KeySpec.of("ed25519"))
    second, _ = crypto.generate(KeySpec.of("ed25519"))
    assert store.create_private("mosa", "sel1-mosa.1", first) is True
    assert store.create_private("mosa", "sel1-mosa.1", second) is False  # never replaced
    assert store.read_private("mosa", "sel1-mosa.1") == first

    other = SecretsManagerStore(prefix)  # another run, another client
    assert other.create_private("mosa", "sel1-mosa.1", second) is False
    assert other.read_private("mosa", "sel1-mosa.1") == first

    name = f"{prefix}keys/mosa/sel1-mosa.1"
    secret = sm().get_secret_value(SecretId=name)
    assert secret["SecretString"] == first.decode()
    assert len(sm().list_secret_version_ids(SecretId=name)["Versions"]) == 1


def test_reference_is_the_secrets_arn(prefix: str) -> None:
    store = SecretsManagerStore(prefix)
    pem, _ = crypto.generate(KeySpec.of("ed25519"))
    store.create_private("mosa", "sel2-mosa.1", pem)
    arn = store.reference("mosa", "sel2-mosa.1")
    described = sm().describe_secret(SecretId=f"{prefix}keys/mosa/sel2-mosa.1")
    assert arn == described["ARN"]
    assert arn.startswith("arn:aws:secretsmanager:eu-west-1:")
    assert f":secret:{prefix}keys/mosa/sel2-mosa.1-" in arn
    assert SecretsManagerStore(prefix).reference("mosa", "sel2-mosa.1") == arn  # by describe


def test_missing_keys_and_bad_names_are_store_errors(prefix: str) -> None:
    store = SecretsManagerStore(prefix)
    with pytest.raises(StoreError) as caught:
        store.read_private("mosa", "sel1-mosa.9")
    assert "ResourceNotFoundException" in str(caught.value)
    assert "sel1-mosa.9" in str(caught.value)
    with pytest.raises(StoreError):
        store.reference("mosa", "sel1-mosa.9")
    for code, key_id in (("../mosa", "k.1"), ("mosa", "../../state/mosa"), ("Mosa", "k.1")):
        with pytest.raises(StoreError):
            store.create_private(code, key_id, b"x")


# --- the state: compare and swap --------------------------------------------------------------


def test_of_two_runs_that_read_one_version_only_the_first_write_wins(prefix: str) -> None:
    one, two = SecretsManagerStore(prefix), SecretsManagerStore(prefix)
    written = one.write_state(fresh())
    assert written.version == 1

    seen_by_one = one.read_states(["mosa"])["mosa"]
    seen_by_two = two.read_states(["mosa"])["mosa"]
    assert seen_by_one.version == seen_by_two.version == 1

    won = one.write_state(keyed(seen_by_one))
    assert won.version == 2
    with pytest.raises(Conflict) as caught:
        two.write_state(replace(keyed(seen_by_two), rotating_to="sel2-mosa"))
    assert isinstance(caught.value, StoreError)
    assert "mosa" in str(caught.value) and prefix in str(caught.value)

    assert two.read_states(["mosa"])["mosa"] == won  # the loser starts again from this


def test_of_two_first_writes_only_one_wins(prefix: str) -> None:
    """Neither run found a state (version 0): both create the secret."""
    one, two = SecretsManagerStore(prefix), SecretsManagerStore(prefix)
    won = one.write_state(keyed(fresh()))
    with pytest.raises(Conflict):
        two.write_state(keyed(fresh()))  # other keys: another value under the same token
    assert one.read_states(["mosa"])["mosa"] == won


def test_the_same_write_repeated_is_idempotent_until_another_write(prefix: str) -> None:
    """Documented behaviour: repeating the very same write (a retry after a lost answer) is
    idempotent: the same token with the same value is ignored by Secrets Manager, and the
    store returns the same new version. Once another write landed in between, the repeat is a
    Conflict, and the newer state stays current (no roll-back)."""
    store = SecretsManagerStore(prefix)
    first = fresh()
    assert store.write_state(first).version == 1
    assert store.write_state(first).version == 1  # a repeated create: idempotent

    base = store.read_states(["mosa"])["mosa"]
    state = keyed(base)
    done = store.write_state(state)
    assert store.write_state(state) == done  # a repeated update: idempotent

    newer = store.write_state(replace(done, rotating_to="sel1-mosa"))
    assert newer.version == 3
    with pytest.raises(Conflict):
        store.write_state(state)
    assert store.read_states(["mosa"])["mosa"] == newer


# --- reading states ---------------------------------------------------------------------------


def test_read_states_lists_every_institution_over_pages(prefix: str) -> None:
    store = SecretsManagerStore(prefix)
    codes = [f"inst{i:02d}" for i in range(45)]
    for code in codes:
        store.write_state(fresh(code))
    # Neighbours the listing must leave out: a key (not a state), another prefix's state.
    store.create_private("inst00", "sel1-inst00.1", b"not a state")
    SecretsManagerStore(f"other-{prefix}").write_state(fresh("stranger"))

    calls: list[dict[str, Any]] = []
    reader = SecretsManagerStore(prefix)
    reader.client.meta.events.register(
        "provide-client-params.secrets-manager.BatchGetSecretValue",
        lambda params, **_: calls.append(dict(params)))
    everything = reader.read_states(None)
    assert sorted(everything) == codes
    assert {s.version for s in everything.values()} == {1}
    assert everything["inst07"] == replace(fresh("inst07"), version=1)
    assert len(calls) == 3  # 20 + 20 + 5, MaxResults 20
    assert all(c["MaxResults"] == 20 for c in calls)
    assert "NextToken" not in calls[0] and all("NextToken" in c for c in calls[1:])

    calls.clear()
    some = reader.read_states(["inst03", "inst44", "nobody"])
    assert sorted(some) == ["inst03", "inst44"]  # an absent one is left out
    assert len(calls) == 1 and calls[0]["SecretIdList"] == [
        f"{prefix}state/inst03", f"{prefix}state/inst44", f"{prefix}state/nobody"]

    many = codes[10:35]  # more than one batch can name: through the listing
    assert sorted(reader.read_states(many)) == many
    assert reader.read_states([]) == {}
    assert SecretsManagerStore(f"empty-{prefix}").read_states(None) == {}


def test_the_state_secret_never_holds_a_private_key(prefix: str) -> None:
    store = SecretsManagerStore(prefix)
    pems: dict[str, bytes] = {}
    state = keyed(fresh(), pems)
    for key_id, pem in pems.items():
        assert store.create_private("mosa", key_id, pem)
    store.write_state(state)

    secret = sm().get_secret_value(SecretId=f"{prefix}state/mosa")
    assert leaks(secret["SecretString"], list(pems.values())) == []
    data = json.loads(secret["SecretString"])
    assert data["selectors"]["sel1-mosa"]["key"]["id"] == "sel1-mosa.1"
    assert "no private key" in sm().describe_secret(SecretId=f"{prefix}state/mosa")[
        "Description"]


def test_a_state_that_is_not_json_names_the_secret_and_nothing_else(prefix: str) -> None:
    """Say someone stored a private key where the state belongs: the error names the secret
    and never repeats what it holds."""
    pem, _ = crypto.generate(KeySpec.of("rsa", 2048))
    name = f"{prefix}state/mosa"
    sm().create_secret(Name=name, SecretString=pem.decode())
    store = SecretsManagerStore(prefix)
    for codes in (["mosa"], None):
        with pytest.raises(StoreError) as caught:
            store.read_states(codes)
        message = str(caught.value)
        assert name in message
        assert leaks(message, [pem]) == []
        assert "MII" not in message


def test_a_state_with_a_null_time_names_the_secret(prefix: str) -> None:
    store = SecretsManagerStore(prefix)
    data = keyed(fresh()).to_json()
    data["selectors"]["sel1-mosa"]["key"]["created"] = None
    name = f"{prefix}state/mosa"
    sm().create_secret(Name=name, SecretString=json.dumps(data))
    with pytest.raises(StoreError) as caught:
        store.read_states(["mosa"])
    assert name in str(caught.value)


# --- the CLI, end to end ----------------------------------------------------------------------


def _keyed_project(root: Path, build: Path) -> None:
    target = {"class": "octodns.provider.yaml.YamlProvider", "directory": str(build),
              "default_ttl": 3600, "enforce_order": False}
    write_keyed_project(root, {"local": target}, "local",
                        keys="store: {type: secretsmanager, prefix: test-mailauth/}")
    declare(root, "mosa", MOSA)


def test_cli_keys_in_secrets_manager_never_print_a_secret(
    tmp_path: Path, key_store: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    Clock(monkeypatch)
    root, build = tmp_path / "repo", tmp_path / "dns"
    root.mkdir()
    _keyed_project(root, build)
    caplog.set_level(logging.DEBUG)
    said: list[str] = []  # everything the CLI printed or logged

    def cli(*args: str) -> Any:
        caplog.clear()
        result = run(root, capsys, *args)
        logged = [r for r in caplog.records if not r.name.startswith(("moto", "werkzeug"))]
        said.append(result.out + result.err + "\n".join(
            f"{r.name} {r.getMessage()}" for r in logged))
        return result, logged

    planned, logged = cli("plan", "-vv", "--detailed-exitcode")
    assert planned.code == 2, planned.err
    assert "keys to generate" in planned.out
    assert "mosa: keys to generate: sel1-mosa, sel2-mosa, rsa-2048" in planned.out
    assert any(r.levelno == logging.DEBUG for r in logged)  # -vv did log at debug

    applied, _ = cli("apply", "-vv", "--checksum", checksum_of(planned.out))
    assert applied.code == 0, applied.out + applied.err
    for key_id in ("sel1-mosa.1", "sel2-mosa.1"):
        assert (f"generated key {key_id} (rsa-2048) for mosa in secretsmanager test-mailauth/"
                in applied.out)

    # The keys are in Secrets Manager, the state beside them; nothing in the local store.
    client = sm()
    pems = {k: client.get_secret_value(SecretId=f"test-mailauth/keys/mosa/{k}")[
        "SecretString"].encode() for k in ("sel1-mosa.1", "sel2-mosa.1")}
    state_text = client.get_secret_value(SecretId="test-mailauth/state/mosa")["SecretString"]
    state = json.loads(state_text)
    assert state["version"] == 1
    assert {k: v["status"] for k, v in state["selectors"].items()} == {
        "sel1-mosa": "published", "sel2-mosa": "published"}  # files: nothing verifies
    assert leaks(state_text, list(pems.values())) == []
    assert list(key_store.iterdir()) == []

    # What the target holds is each stored key's public half.
    zone = yaml.safe_load((build / "dkim.secutix.com.yaml").read_text())
    for key_id, pem in pems.items():
        record = zone[f"{key_id.split('.')[0]}._domainkey"]
        values = record["values"] if "values" in record else [record["value"]]
        assert any(crypto.public_of(pem) in str(v).replace('" "', "") for v in values)

    again, _ = cli("plan", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert "no changes" in again.out and "keys to generate" not in again.out

    reapplied, _ = cli("apply", "-vv")
    assert reapplied.code == 0, reapplied.out + reapplied.err

    status, _ = cli("keys", "status", "mosa", "-vv")
    assert status.code == 0, status.err
    assert "key store: secretsmanager test-mailauth/" in status.out
    assert "sel1-mosa.1 rsa-2048" in status.out and "sel2-mosa.1 rsa-2048" in status.out
    assert "state version 1" in status.out
    assert " generate " in status.out

    for text in said:
        assert leaks(text, list(pems.values())) == []
        assert SECRET_ACCESS_KEY not in text and SESSION_TOKEN not in text
