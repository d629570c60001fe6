"""A project whose platform owns its DKIM keys, on the test servers (not a test module).

``write_keyed_project`` writes provisioner.yaml with the DKIM and DMARC zones as platform zones
on the default target and an optional ``keys:`` policy; ``Clock`` moves the key lifecycle's
time (``provisioner.keys.clock.now``) without sleeping; ``receiver_txt`` is a receiver's TXT
lookup through dnspython (CNAME, then TXT), independent of the product's DNS client.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest

PLATFORM = """\
platform:
  name: SECUTIX
  spf_include: spf.secutix.com
  sending_ips: [192.28.148.112]
  ttl: 300
  dkim:
    zone: dkim.secutix.com
    selectors:
      stxsel1: sel1-{{institution}}
      stxsel2: sel2-{{institution}}
{keys}
  return_path_mx: bounce.secutix.com
  dmarc_rua: mailto:reports@dmarc.secutix.com
default_target: {default}
targets:
{targets}
platform_zones:
  dkim.secutix.com: {{target: {default}}}
  dmarc.secutix.com: {{target: {default}}}
"""

MOSA = """
    institution: mosa
    name: Mosa Museum
    domains:
      mosamuseum.com:
        dns: managed
        spf:
          include: [_spf.google.com]
        dmarc:
          policy: none
    """


def write_keyed_project(root: Path, targets: Mapping[str, Mapping[str, Any]], default: str,
                        keys: str = "") -> Path:
    lines = [f"  {name}: {json.dumps(dict(options))}" for name, options in targets.items()]
    block = ""
    if keys:
        block = "    keys:\n" + textwrap.indent(textwrap.dedent(keys).strip("\n"), "      ")
    (root / "zones").mkdir(parents=True, exist_ok=True)
    config = root / "provisioner.yaml"
    config.write_text(PLATFORM.format(default=default, targets="\n".join(lines), keys=block))
    return config


class Clock:
    """The key lifecycle's clock, moved by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch,
                 start: datetime = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)) -> None:
        self.now = start
        monkeypatch.setattr("provisioner.keys.clock.now", lambda: self.now)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def receiver_txt(port: int) -> Any:
    """dkimpy's ``dnsfunc``: a TXT lookup as a receiver's resolver makes it, following the
    CNAME (RFC 6376 §3.6.2.2), asked of the PowerDNS at 127.0.0.1:port with dnspython."""
    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode() if isinstance(name, bytes) else name
        for _ in range(8):
            query = dns.message.make_query(text, dns.rdatatype.TXT)
            # A 2048-bit key does not fit in 512 octets: TC=1, then TCP, as resolvers do.
            response, _ = dns.query.udp_with_fallback(query, "127.0.0.1", port=port, timeout=3)
            txt = [rd for rr in response.answer if rr.rdtype == dns.rdatatype.TXT for rd in rr]
            if txt:
                return b"".join(txt[0].strings)
            cname = [rd for rr in response.answer if rr.rdtype == dns.rdatatype.CNAME
                     for rd in rr]
            if not cname:
                return None
            text = str(cname[-1].target)
        return None

    return lookup


def key_strings(port: int, name: str) -> list[list[bytes]]:
    """The TXT records at ``name`` as their character-strings, over TCP if truncated."""
    query = dns.message.make_query(name, dns.rdatatype.TXT)
    response, _ = dns.query.udp_with_fallback(query, "127.0.0.1", port=port, timeout=3)
    return [list(rd.strings) for rr in response.answer if rr.rdtype == dns.rdatatype.TXT
            for rd in rr]
