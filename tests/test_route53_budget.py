"""Route53 within its rate limit (issue 14): one token bucket per account shared by threads and
processes, measured; each Route53 request counted and reported; zones looked up by name; the
requests of plan and apply counted against moto beside a plain octodns-sync of the same zones,
through one counting proxy for both."""

from __future__ import annotations

import io
import json
import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.octodns import ratelimit
from provisioner.octodns.ratelimit import TokenBucket
from tests.octodns_project import CUSTOMER, declare, run, write_project
from tests.proxy import Proxy
from tests.servers import MotoRoute53, route53, route53_server  # noqa: F401 - fixtures


def _take(path: str, rate: float, count: int, stamps: Any) -> None:
    bucket = TokenBucket(Path(path), rate, burst=1.0)
    for _ in range(count):
        bucket.acquire()
        stamps.append(time.time())


def test_one_bucket_holds_threads_and_processes_to_the_rate(tmp_path: Path) -> None:
    rate, per_worker = 20.0, 10
    path = str(tmp_path / "account.bucket")
    manager = multiprocessing.Manager()
    stamps = manager.list()
    procs = [multiprocessing.get_context("fork").Process(target=_take,
                                                          args=(path, rate, per_worker, stamps))
             for _ in range(2)]
    threads = [threading.Thread(target=_take, args=(path, rate, per_worker, stamps))
               for _ in range(3)]
    for w in [*procs, *threads]:
        w.start()
    for w in [*procs, *threads]:
        w.join(60)
    taken = sorted(stamps)
    assert len(taken) == 5 * per_worker
    # 50 requests at 20/s with one token of burst: at least 49 / 20 s from first to last
    span = taken[-1] - taken[0]
    assert span >= (len(taken) - 1) / rate * 0.95, span
    # and no second of the run saw more than the rate (plus the burst)
    for i, t in enumerate(taken):
        in_window = sum(1 for u in taken[i:] if u - t < 1.0)
        assert in_window <= rate + 1, (in_window, i)


def test_shards_split_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_NODE_TOTAL", "4")
    assert ratelimit.rate_for(None) == 1.25
    assert ratelimit.rate_for(8) == 2.0
    monkeypatch.delenv("CI_NODE_TOTAL")
    assert ratelimit.rate_for(None) == 5.0


def test_a_listing_fills_the_lookups_but_never_hides_a_name_listed_twice(
    route53: MotoRoute53,  # noqa: F811
) -> None:
    from octodns_route53.provider import Route53ProviderException

    from provisioner.model import Target
    from provisioner.octodns.targets import build_provider

    ratelimit.CALLS.clear()
    route53.create_zone("listed.example")
    public = route53.create_zone("twice.example")
    client = route53.client()
    vpc = {"VPCRegion": "us-east-1", "VPCId": "vpc-12345678"}
    private = client.create_hosted_zone(
        Name="twice.example.", CallerReference="private-twice", VPC=vpc,
        HostedZoneConfig={"Comment": "private", "PrivateZone": True})["HostedZone"]["Id"]

    def provider(**options: Any) -> Any:
        return build_provider(Target("r53", "octodns_route53.Route53Provider",
                                     {"requests_per_second": 50, **options}), Path("."))

    anyone = provider()
    with pytest.raises(Route53ProviderException, match="Multiple zones"):
        anyone.list_zones()  # octoDNS's own refusal, after the page was read
    listed_id = anyone._get_zone_id("listed.example.")
    assert listed_id and ratelimit.report()["r53"] == {"ListHostedZones": 1}
    # a name listed twice is left to octoDNS's own lookup, which refuses it, as without the list
    with pytest.raises(Route53ProviderException, match="Multiple zones"):
        anyone._get_zone_id("twice.example.")
    assert ratelimit.report()["r53"]["ListHostedZonesByName"] == 1
    # private: false keeps the public one of the two, from the listing, without a lookup
    ratelimit.CALLS.clear()
    public_only = provider(private=False)
    public_only.list_zones()
    assert public_only._get_zone_id("twice.example.").endswith(public.rsplit("/", 1)[-1])
    assert not public_only._get_zone_id("twice.example.").endswith(private.rsplit("/", 1)[-1])
    assert ratelimit.report()["r53"] == {"ListHostedZones": 1}
    # a zone created after the listing is still found, by name
    route53.create_zone("later.example")
    assert public_only._get_zone_id("later.example.")
    assert ratelimit.report()["r53"]["ListHostedZonesByName"] == 1


def test_many_zones_are_found_by_one_listing_not_one_lookup_each(
    route53: MotoRoute53,  # noqa: F811
) -> None:
    from provisioner.model import Target
    from provisioner.octodns.targets import build_provider

    client = route53.client()
    names = [f"z{i:03}.example." for i in range(230)]
    for name in names:
        client.create_hosted_zone(Name=name, CallerReference=name)
    ratelimit.CALLS.clear()
    provider = build_provider(Target("r53", "octodns_route53.Route53Provider",
                                     {"requests_per_second": 100}), Path("."))
    few = names[:ratelimit.PREFETCH_AT - 1]
    assert ratelimit.prefetch(provider, few) == 0  # fewer than a page's worth: by name
    wanted = [*names[:150], "absent.example."]
    # 100 a page: after the second only the absent one is missing, not worth the third page
    assert ratelimit.prefetch(provider, wanted) == 2
    assert all(provider._get_zone_id(z) for z in names[:150])
    assert provider._get_zone_id("absent.example.") is None  # not listed: looked up, absent
    assert ratelimit.report()["r53"] == {"ListHostedZones": 2, "ListHostedZonesByName": 1}


class Counter(Proxy):
    """Counts the requests that reach moto, by Route53 API path."""

    def __init__(self, upstream_port: int) -> None:
        self.paths: list[tuple[str, str]] = []
        lock = threading.Lock()

        def before(method: str, path: str) -> None:
            with lock:
                self.paths.append((method, path.split("?")[0]))
            return None

        super().__init__(upstream_port, before=before)


MOSA = """
    institution: {code}
    name: Institution {code}
    domains:
      {code}.example:
        dns: managed
        dmarc: {{policy: none}}
    """


def test_requests_counted_beside_plain_octodns_sync(
    tmp_path: Path, route53: MotoRoute53, capsys: pytest.CaptureFixture[str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ratelimit.CALLS.clear()
    counter = Counter(route53.port)
    monkeypatch.setenv("AWS_ENDPOINT_URL_ROUTE_53", counter.endpoint)
    try:
        root = tmp_path / "ours"
        write_project(root, {"route53": {"class": "octodns_route53.Route53Provider",
                                         "requests_per_second": 50}}, default="route53")
        codes = [f"inst{i}" for i in range(6)]
        for code in codes:
            declare(root, code, MOSA.format(code=code))
            route53.create_zone(f"{code}.example", CUSTOMER)
        route53.create_zone("dmarc.secutix.com")
        for i in range(30):  # other zones of the account, which a lookup by name never lists
            route53.create_zone(f"unrelated{i}.example")
        counter.paths.clear()
        planned = run(root, capsys, "plan", "--format", "json")
        assert planned.code == 0, planned.err
        ours_plan = len(counter.paths)
        reported = json.loads(planned.out)["api_calls"]["route53"]
        assert sum(reported.values()) == ours_plan, (reported, counter.paths)
        assert "route53 API requests: route53:" in planned.err
        # a full plan lists the account once (a removed institution's zone is found that way)
        # and that listing names every zone's Id: no zone is looked up by name as well
        assert reported == {"ListHostedZones": 1, "ListResourceRecordSets": 37}, reported
        counter.paths.clear()
        applied = run(root, capsys, "apply", "--no-verify", "--format", "json")
        assert applied.code == 0, applied.err
        ours_apply = len(counter.paths)
        assert sum(json.loads(applied.out)["api_calls"]["route53"].values()) >= ours_apply
        # a merge request changing one institution: its zone and the platform zone, by name
        import subprocess

        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(root), "-c", "user.email=t@e.org", "-c",
                                   "user.name=t", *args], check=True, capture_output=True,
                                  text=True).stdout.strip()

        git("init", "-q")
        git("add", ".")
        git("commit", "-qm", "fleet")
        base = git("rev-parse", "HEAD")
        changed = root / "zones" / "inst0.yaml"
        changed.write_text(changed.read_text().replace("policy: none", "policy: reject"))
        counter.paths.clear()
        ratelimit.CALLS.clear()
        scoped = run(root, capsys, "plan", "--changed-since", base, "--format", "json")
        assert scoped.code == 0, scoped.err
        ours_mr = len(counter.paths)
        assert json.loads(scoped.out)["api_calls"]["route53"] == {
            "ListHostedZonesByName": 2, "ListResourceRecordSets": 2}
        # drift's full cycle through the API (moto serves no DNS: the live checks go unanswered)
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            counter.paths.clear()
            ratelimit.CALLS.clear()
            drift = run(root, capsys, "drift", "--api", "always", "--timeout", "0.1",
                        "--nameserver", f"127.0.0.1:{silent.getsockname()[1]}")
        ours_drift = len(counter.paths)
        assert f"route53 API requests: route53: {ours_drift} (" in drift.err, drift.err
        assert ours_drift == 14  # its 7 zones, each by name: fewer than a listing page's 100
        # at a fleet's size the full cycle lists the account first (here: from 5 zones)
        monkeypatch.setattr(ratelimit, "PREFETCH_AT", 5)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            ratelimit.CALLS.clear()
            listed = run(root, capsys, "drift", "--api", "always", "--timeout", "0.1",
                         "--format", "json",
                         "--nameserver", f"127.0.0.1:{silent.getsockname()[1]}")
        assert ratelimit.report()["route53"] == {"ListHostedZones": 1,
                                                 "ListResourceRecordSets": 7}, listed.err
        monkeypatch.setattr(ratelimit, "PREFETCH_AT", 100)

        # the peer: octodns-sync of the same records, from the files our local target writes
        from octodns.manager import Manager

        peer = tmp_path / "peer"
        peer.mkdir()
        for code in codes:
            (peer / f"{code}.example.yaml").write_text(yaml.safe_dump({
                "_dmarc": {"type": "TXT", "value": "v=DMARC1\\; p=none"}}))
        config = tmp_path / "octodns.yaml"
        config.write_text(yaml.safe_dump({
            "manager": {"max_workers": 4},
            "providers": {
                "files": {"class": "octodns.provider.yaml.YamlProvider",
                          "directory": str(peer), "enforce_order": False},
                "route53": {"class": "octodns_route53.Route53Provider"}},
            "zones": {f"{code}.example.": {"sources": ["files"], "targets": ["route53"]}
                      for code in codes}}))
        counter.paths.clear()
        Manager(str(config)).sync(dry_run=True, plan_output_fh=io.StringIO())
        peer_plan = len(counter.paths)
        with capsys.disabled():  # the figures, beside the peer's, in the test log
            print(f"\nRoute53 requests, {len(codes)} institutions (+30 other zones in the "
                  f"account): provisioner plan {ours_plan} (every zone of the account read for "
                  f"removed institutions), apply {ours_apply}, merge-request plan {ours_mr}, "
                  f"drift full cycle {ours_drift}; "
                  f"octodns-sync dry run of the {len(codes)} zones {peer_plan}")
        assert ours_mr < peer_plan
        # an account octoDNS cannot list (two zones of one name): the plan says what it did not
        # see rather than silently leaving removed institutions' zones out
        route53.client().create_hosted_zone(
            Name="unrelated0.example.", CallerReference="private-twin",
            VPC={"VPCRegion": "us-east-1", "VPCId": "vpc-12345678"},
            HostedZoneConfig={"Comment": "private", "PrivateZone": True})
        unlisted = run(root, capsys, "plan")
        assert unlisted.code == 0, unlisted.err
        assert "plan.orphans-unseen" in unlisted.err
        assert 'Multiple zones named "unrelated0.example." were found' in unlisted.err
    finally:
        counter.stop()
