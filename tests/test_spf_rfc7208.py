"""The RFC 7208 conformance suite (openspf.org 2014.04, BSD licence, tests/data/rfc7208/).

Each YAML document holds a zone and the checks to run against it. The zone is served by
:class:`ZoneResolver`, a test double of DNS that follows the suite's own driver conventions:

- The suite writes most policies as type SPF and relies on "auto-magic duplication of SPF to
  TXT records (by test suite drivers)" (its header): a name with no TXT entry at all gets its
  SPF entries as TXT. check_host() itself only ever asks for TXT (RFC 7208 §3.1, §4.4).
- ``TXT: NONE`` marks a name as having no TXT (and so no duplication).
- ``TIMEOUT`` makes a query time out unless a record of the asked type came before it.
- Names are case-insensitive; CNAMEs are followed (a loop is a DNS error).

``explanation: DEFAULT`` means "the receiver's default explanation", i.e. no exp= text: our
``SpfResult.explanation`` is "" then.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.spf import NXDomain, SpfResult, TempError, check_host

SUITE = Path(__file__).parent / "data" / "rfc7208" / "rfc7208-tests.yml"
_KINDS = frozenset({"TXT", "SPF", "A", "AAAA", "MX", "PTR", "CNAME"})


class ZoneResolver:
    """Serves one suite document's ``zonedata`` as the :class:`provisioner.spf.Resolver`."""

    def __init__(self, zonedata: dict[str, list[Any]]) -> None:
        self._zone: dict[str, list[tuple[str, Any]]] = {}
        for name, entries in zonedata.items():
            records: list[tuple[str, Any]] = []
            spf: list[tuple[str, Any]] = []
            has_txt = False
            for entry in entries:
                if entry == "TIMEOUT":
                    records.append(("TIMEOUT", None))
                    continue
                ((rtype, value),) = entry.items()
                # Fail loudly on an entry this double does not model (e.g. a future "RCODE").
                assert rtype in _KINDS, f"{name}: unsupported zonedata entry {entry!r}"
                if rtype == "TXT":
                    has_txt = True
                if rtype == "SPF":
                    spf.append(("TXT", value))
                elif value != "NONE":
                    records.append((rtype, value))
            self._zone[str(name).lower().rstrip(".")] = records + ([] if has_txt else spf)

    def query(self, name: str, rdtype: str) -> list[Any]:
        key = name.lower().rstrip(".")
        seen: set[str] = set()
        while True:
            if key in seen:
                raise TempError(f"CNAME loop at {name}")
            seen.add(key)
            records = self._zone.get(key)
            if records is None:
                raise NXDomain(name)
            cname = next((v for t, v in records if t == "CNAME"), None)
            if cname is None or rdtype == "CNAME":
                return self._answers(records, rdtype)
            key = str(cname).lower().rstrip(".")

    @staticmethod
    def _answers(records: list[tuple[str, Any]], rdtype: str) -> list[Any]:
        answers: list[Any] = []
        for rtype, value in records:
            if rtype == "TIMEOUT":
                if answers:
                    break
                raise TempError("timeout")
            if rtype != rdtype:
                continue
            if rtype == "TXT":
                answers.append("".join(value) if isinstance(value, list) else str(value))
            elif rtype == "MX":
                answers.append((int(value[0]), str(value[1])))
            else:
                answers.append(str(value))
        return answers


def _load() -> list[Any]:
    cases = []
    for doc in yaml.safe_load_all(SUITE.read_text(encoding="utf-8")):
        resolver = ZoneResolver(doc["zonedata"])
        for name, test in doc["tests"].items():
            cases.append(pytest.param(test, resolver, id=f"{doc['description']}/{name}"))
    return cases


CASES = _load()


def test_every_suite_case_is_loaded() -> None:
    """The loader drops nothing: count the cases in the raw text, independently of YAML."""
    in_file = len(re.findall(r"^    result:", SUITE.read_text(encoding="utf-8"), re.M))
    print(f"RFC 7208 suite: {len(CASES)} cases loaded, {in_file} in the file")
    assert len(CASES) == in_file == 203


@pytest.mark.parametrize(("test", "resolver"), CASES)
def test_rfc7208(test: dict[str, Any], resolver: ZoneResolver) -> None:
    mailfrom = str(test["mailfrom"])
    helo = str(test["helo"])
    domain = mailfrom.rpartition("@")[2] if mailfrom else helo
    got: SpfResult = check_host(str(test["host"]), domain, mailfrom, helo=helo, resolver=resolver)
    expected = test["result"]
    acceptable = expected if isinstance(expected, list) else [expected]
    assert got.result in acceptable, got.reason
    if "explanation" in test:
        want = "" if test["explanation"] == "DEFAULT" else test["explanation"]
        assert got.explanation == want, got.reason
