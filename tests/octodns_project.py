"""A project directory for the plan/apply tests: provisioner.yaml pointing at the test servers.

Test modules import from here (it is not a test module): ``write_project`` writes the platform
file with the given targets, ``declare`` an institution, ``run`` the CLI as a user runs it.
"""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from provisioner.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent

PLATFORM = """\
platform:
  name: SECUTIX
  spf_include: spf.secutix.com
  sending_ips: [192.28.148.112]
  dkim:
    zone: dkim.secutix.com
    selectors:
      stxsel1: sel1-{{institution}}
      stxsel2: sel2-{{institution}}
  return_path_mx: bounce.secutix.com
  dmarc_rua: mailto:reports@dmarc.secutix.com
default_target: {default}
targets:
{targets}
platform_zones:
  dmarc.secutix.com: {{target: {default}}}
"""


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


# A customer's zone before the platform arrives, as the DNS host stores it (presentation form):
# the records every apply scenario must leave byte for byte as they were.
CUSTOMER = [
    ("www", "A", 300, ["192.0.2.10"]),
    ("", "MX", 3600, ["10 mx1.mosa-mail.example."]),
    ("", "TXT", 300, ['"google-site-verification=Zx81-abc_123"',
                      '"v=spf1 include:_spf.google.com ~all"']),
    ("google._domainkey", "TXT", 3600, ['"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNAD"']),
]


def write_project(root: Path, targets: Mapping[str, Mapping[str, Any]], default: str) -> Path:
    lines = []
    for name, options in targets.items():
        lines.append(f"  {name}: {json.dumps(dict(options))}")
    (root / "zones").mkdir(parents=True, exist_ok=True)
    config = root / "provisioner.yaml"
    config.write_text(PLATFORM.format(default=default, targets="\n".join(lines)))
    return config


def declare(root: Path, code: str, text: str) -> Path:
    path = root / "zones" / f"{code}.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def run(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    capsys.readouterr()
    code = main([args[0], "--config", str(root / "provisioner.yaml"), *args[1:]])
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def checksum_of(output: str) -> str:
    for line in output.splitlines():
        if "--checksum" in line:
            return line.rsplit(" ", 1)[1]
    raise AssertionError(f"no checksum in:\n{output}")


def answer(port: int, name: str, rtype: str) -> list[Any]:
    """The rdatas the server at 127.0.0.1:port answers for ``name``/``rtype`` (authoritative)."""
    query = dns.message.make_query(name, dns.rdatatype.from_text(rtype))
    response = dns.query.udp(query, "127.0.0.1", port=port, timeout=3)
    if response.rcode() != 0 or not response.answer:
        return []
    return [rd for rrset in response.answer if rrset.rdtype == query.question[0].rdtype
            for rd in rrset]


def txt_strings(port: int, name: str) -> list[str]:
    """Each TXT value as the resolver rebuilds it: its character-strings joined."""
    return sorted(b"".join(rd.strings).decode() for rd in answer(port, name, "TXT"))


@cache
def dkim_public_key() -> str:
    """A 2048-bit RSA public key, base64 DER, as a DKIM ``p=`` (RFC 8301: no warning)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return base64.b64encode(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
                            ).decode()


def publish_platform_dns(server: Any, codes: Iterable[str],
                         sending: str = "ip4:192.28.148.112") -> None:
    """What the platform and the customers' other senders publish themselves, on ``server``
    (a PdnsServer): the SPF include (``sending``: its mechanisms), DKIM keys for ``codes``,
    Google's SPF. With these, a correct apply verifies; change ``sending`` to make SPF fail."""
    server.create_zone("google.com", [("_spf", "TXT", 3600,
                                       ['"v=spf1 ip4:209.85.128.0/17 ~all"'])])
    server.create_zone("secutix.com", [("spf", "TXT", 3600, [f'"v=spf1 {sending} -all"'])])
    server.create_zone("dkim.secutix.com", [
        (f"sel{i}-{code}._domainkey", "TXT", 3600,
         [f'"v=DKIM1; k=rsa; p={dkim_public_key()}"'])
        for i in (1, 2) for code in codes])
