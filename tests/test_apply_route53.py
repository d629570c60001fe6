"""plan and apply against Route53 (octodns-route53, boto3) served by moto on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import dns.rdata
import pytest

from tests.octodns_project import CUSTOMER, checksum_of, declare, run, write_project
from tests.servers import MOTO_RATE, MotoRoute53, route53, route53_server  # noqa: F401

ROUTE53 = {"class": "octodns_route53.Route53Provider", **MOTO_RATE}
RUAS = [f"mailto:dmarc-aggregate-{i}@reports.mosamuseum.com" for i in range(6)]
DMARC = "v=DMARC1; p=reject; rua=" + ",".join(RUAS) + ",mailto:reports@dmarc.secutix.com"


def served(values: tuple[str, ...]) -> list[str]:
    """TXT values as Route53 serves them: its values are RDATA presentation text (RFC 1035
    §5.1), so ``\\;`` is ``;`` and ``"a" "b"`` is one value of two strings."""
    return sorted(b"".join(dns.rdata.from_text("IN", "TXT", v).strings).decode()
                  for v in values)


MOSA = """
    institution: mosa
    name: Mosa Museum
    domains:
      mosamuseum.com:
        dns: managed
        target: route53
        spf:
          include: [_spf.google.com]
        dmarc:
          policy: reject
          rua: [{ruas}]
        return_path: mail
    """.format(ruas=", ".join(RUAS))


def test_route53_keeps_customer_records(
    tmp_path: Path, route53: MotoRoute53, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    write_project(tmp_path, {"route53": ROUTE53}, default="route53")
    declare(tmp_path, "mosa", MOSA)
    route53.create_zone("mosamuseum.com", CUSTOMER)
    route53.create_zone("dmarc.secutix.com")
    keep = {("www", "A"), ("", "MX"), ("google._domainkey", "TXT")}
    before = {k: v for k, v in route53.rrsets("mosamuseum.com").items() if k in keep}

    planned = run(tmp_path, capsys, "plan", "--detailed-exitcode")
    assert planned.code == 2, planned.err
    applied = run(tmp_path, capsys, "apply", "--checksum", checksum_of(planned.out))
    assert applied.code == 0, applied.err
    assert f"verify: skipped target route53 (mosamuseum.com): its Route53 API is " \
           f"{route53.endpoint}, not AWS" in applied.out

    after = route53.rrsets("mosamuseum.com")
    assert {k: v for k, v in after.items() if k in keep} == before
    assert after[("", "TXT")] == (300, (
        '"google-site-verification=Zx81-abc_123"',
        '"v=spf1 include:_spf.google.com include:spf.secutix.com ~all"'))
    assert len(DMARC) > 255
    assert served(after[("_dmarc", "TXT")][1]) == [DMARC]
    assert after[("mail", "MX")][1] == ("10 bounce.secutix.com.",)
    assert after[("stxsel2._domainkey", "CNAME")][1] == ("sel2-mosa._domainkey.dkim.secutix.com.",)

    again = run(tmp_path, capsys, "plan", "--detailed-exitcode")
    assert again.code == 0, again.out + again.err


def test_route53_missing_hosted_zone_is_an_error_not_created(
    tmp_path: Path, route53: MotoRoute53, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    write_project(tmp_path, {"route53": ROUTE53}, default="route53")
    declare(tmp_path, "mosa", MOSA)
    route53.create_zone("dmarc.secutix.com")
    result = run(tmp_path, capsys, "apply")
    assert result.code == 1
    assert "[plan.zone-missing]" in result.err and "Traceback" not in result.err
    zones = [z["Name"] for z in route53.client().list_hosted_zones()["HostedZones"]]
    assert zones == ["dmarc.secutix.com."]
