"""A merge request's plan holds no credential that can write DNS (issue 10; docs/security.md).

PowerDNS: its API keys cannot be limited, so ``plan --read-only`` reads the zones by AXFR with a
transfer-only TSIG key (octodns-bind's AxfrSource), against a real pdns_server that refuses
unsigned transfers; its checksum is the one apply, holding the API key, computes. Route53: the
plan asks IAM whether its credentials may write, against moto with IAM enforcement.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from provisioner.errors import InvalidInput
from provisioner.model import Target
from provisioner.octodns.readonly import PLACEHOLDER, probe_route53
from provisioner.octodns.targets import build_provider
from tests.octodns_project import (
    CUSTOMER,
    checksum_of,
    declare,
    run,
    txt_strings,
    write_project,
)
from tests.servers import (  # noqa: F401 - fixtures
    MOTO_RATE,
    MotoRoute53,
    PdnsServer,
    free_port,
    pdns,
    pdns_server,
    route53,
    route53_server,
)

MOSA = """
    institution: mosa
    name: Mosa Museum
    domains:
      mosamuseum.com:
        dns: managed
        spf: {include: [_spf.google.com]}
        dmarc: {policy: none}
        return_path: mail
    """


def _project(root: Path, server: PdnsServer, key: str, secret_var: str = "PDNS_TSIG") -> None:
    target = server.target_options()
    target["read_only"] = {"class": "octodns_bind.AxfrSource", "host": "127.0.0.1",
                           "port": server.dns_port, "key_name": key,
                           "key_secret": f"env/{secret_var}", "key_algorithm": "hmac-sha256"}
    write_project(root, {"powerdns": target}, default="powerdns")
    declare(root, "mosa", MOSA)


def test_a_read_only_plan_reads_powerdns_by_transfer_and_gates_the_same_apply(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = f"mr-{secrets.token_hex(4)}"
    pdns.create_zone("mosamuseum.com", CUSTOMER)
    secret = pdns.add_transfer_key(key, ["mosamuseum.com"])
    _project(tmp_path, pdns, key)
    monkeypatch.setenv("PDNS_TSIG", secret)
    api_key = os.environ.pop("PDNS_API_KEY")  # the merge-request job never sees it

    planned = run(tmp_path, capsys, "plan", "--read-only", "--detailed-exitcode")
    assert planned.code == 2, planned.err + planned.out
    assert "mosamuseum.com" in planned.out and "dmarc.secutix.com" in planned.out
    assert "v=DMARC1; p=none" in planned.out
    # The customer's SPF, read by transfer, is merged, not replaced.
    assert "include:_spf.google.com" in planned.out
    assert PLACEHOLDER not in planned.out + planned.err
    reviewed = checksum_of(planned.out)

    # An unsigned transfer and a wrong key are refused by the server: the plan says so.
    monkeypatch.setenv("PDNS_TSIG", base64.b64encode(secrets.token_bytes(32)).decode())
    wrong = run(tmp_path, capsys, "plan", "--read-only")
    assert wrong.code == 1, wrong.err
    assert "zone transfer of mosamuseum.com refused (NOTAUTH)" in wrong.err
    assert "activate-tsig-key mosamuseum.com" in wrong.err
    monkeypatch.setenv("PDNS_TSIG", "not base64!")
    garbled = run(tmp_path, capsys, "plan", "--read-only")
    assert garbled.code == 1 and "read_only.key_secret is not base64" in garbled.err
    assert "not base64!" not in garbled.err  # a secret, even a wrong one, is never printed
    monkeypatch.setenv("PDNS_TSIG", secret)

    # The job holding the API key is told it holds a write credential, and plans nothing.
    monkeypatch.setenv("PDNS_API_KEY", api_key)
    loud = run(tmp_path, capsys, "plan", "--read-only")
    assert loud.code == 1
    assert "plan.credentials-can-write" in loud.err and "PDNS_API_KEY" in loud.err
    assert api_key not in loud.err + loud.out

    # apply, with the API key, computes the same checksum from the API, and writes.
    applied = run(tmp_path, capsys, "apply", "--no-verify", "--checksum", reviewed)
    assert applied.code == 0, applied.err + applied.out
    assert txt_strings(pdns.dns_port, "_dmarc.mosamuseum.com.") == [
        "v=DMARC1; p=none; rua=mailto:reports@dmarc.secutix.com"]
    # The platform zone apply created allows the transfer key: the next read-only plan reads it.
    assert pdns.transfer_keys("dmarc.secutix.com") == [key + "."]

    del os.environ["PDNS_API_KEY"]
    again = run(tmp_path, capsys, "plan", "--read-only", "--detailed-exitcode")
    assert again.code == 0, again.err + again.out
    assert "plan.orphans-unseen" in again.err  # said, not hidden


def test_a_read_only_plan_refuses_a_target_it_cannot_prove_read_only(
    tmp_path: Path, pdns: PdnsServer, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    pdns.create_zone("mosamuseum.com", CUSTOMER)
    write_project(tmp_path, {"powerdns": pdns.target_options()}, default="powerdns")
    declare(tmp_path, "mosa", MOSA)
    refused = run(tmp_path, capsys, "plan", "--read-only")
    assert refused.code == 1
    assert "plan.read-only-unknown" in refused.err and "read_only:" in refused.err
    # Without --read-only, the same project plans (the API key is there).
    assert run(tmp_path, capsys, "plan").code == 0


def test_a_read_only_plan_with_route53_credentials_that_can_write_fails_loudly(
    tmp_path: Path, route53: MotoRoute53, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    write_project(tmp_path, {"route53": {"class": "octodns_route53.Route53Provider",
                                         **MOTO_RATE}},
                  default="route53")
    declare(tmp_path, "mosa", MOSA)
    route53.create_zone("mosamuseum.com", CUSTOMER)
    route53.create_zone("dmarc.secutix.com")
    before = route53.rrsets("mosamuseum.com")
    loud = run(tmp_path, capsys, "plan", "--read-only")
    assert loud.code == 1
    assert "plan.credentials-can-write" in loud.err
    assert "not denied writing" in loud.err and "read-only role" in loud.err
    assert route53.rrsets("mosamuseum.com") == before  # the probe changed nothing
    assert run(tmp_path, capsys, "plan").code == 0


@pytest.fixture
def iam_moto() -> Iterator[str]:
    """A moto server of its own (IAM enforcement is process-wide), enforcing IAM once set up."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                             "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


def _user(iam: Any, name: str, actions: list[str]) -> dict[str, str]:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=name, PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def test_the_route53_probe_tells_a_read_only_role_from_one_that_can_write(
    tmp_path: Path, iam_moto: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = {"aws_access_key_id": "AKIAADMIN", "aws_secret_access_key": "x",
             "region_name": "us-east-1", "endpoint_url": iam_moto}
    iam = boto3.client("iam", **admin)
    r53 = boto3.client("route53", **admin)
    r53.create_hosted_zone(Name="mosamuseum.com.", CallerReference="1")
    reader = _user(iam, "plan", ["route53:Get*", "route53:List*"])
    writer = _user(iam, "apply", ["route53:*"])
    zone_id = r53.list_hosted_zones()["HostedZones"][0]["Id"]
    count = len(r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"])
    req = urllib.request.Request(iam_moto + "/moto-api/reset-auth", data=b"0", method="POST",
                                 headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=5).close()  # from now on, IAM decides

    monkeypatch.setenv("AWS_ENDPOINT_URL_ROUTE_53", iam_moto)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    target = Target("route53", "octodns_route53.Route53Provider", {})

    def probe(credentials: dict[str, str], zones: list[str]) -> None:
        for k, v in credentials.items():
            monkeypatch.setenv(k, v)
        provider = build_provider(target, tmp_path)
        # Zone ids come from a listing the stand-in's IAM signature check mishandles (GET):
        # give the provider the id, as its own listing would.
        provider._r53_zones = {"mosamuseum.com.": zone_id}
        probe_route53(target, provider, zones)

    probe(reader, ["mosamuseum.com."])  # denied: a read-only role
    probe(reader, [])  # no zone yet: denied on a zone that cannot exist
    for zones in (["mosamuseum.com."], []):
        with pytest.raises(InvalidInput) as raised:
            probe(writer, zones)
        assert raised.value.problems[0].code == "plan.credentials-can-write"
    req = urllib.request.Request(iam_moto + "/moto-api/reset-auth", data=b"inf", method="POST",
                                 headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=5).close()
    after = len(r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"])
    assert after == count  # no probe changed the zone
