"""Property: any declaration, random or mutated from a valid one, either validates or fails with
located problems; the loader never raises anything else and the CLI never prints a traceback."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provisioner.config import build_institution
from provisioner.errors import InvalidInput
from provisioner.model import Institution
from provisioner.schema import check
from provisioner.yamlload import parse
from tests.conftest import REPO
from tests.watchdog import no_hang

SAMPLE = yaml.safe_load((REPO / "zones" / "gva-opera.yaml").read_text())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.text(max_size=40),
    st.sampled_from(
        [
            "managed",
            "external",
            "fail",
            "strict",
            "mailto:x@y.example",
            "_spf.a.b",
            "xn--caf-dma.example",
            "ÉCOLE.example",
            "a" * 70,
            "",
            " ",
            "\t",
            '"',
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _load(text: str) -> tuple[bool, list[Any]]:
    from provisioner.config import _empty_platform  # the platform is not the subject here
    from provisioner.errors import Origin

    try:
        with no_hang(5, text):
            doc = parse(text, "zones/gva-opera.yaml")
    except InvalidInput as exc:
        return False, list(exc.problems)
    problems = check("institution", doc)
    if problems:
        return False, problems
    found: list[Any] = []
    inst = build_institution(doc, "gva-opera", _empty_platform(Origin("provisioner.yaml")), found)
    assert isinstance(inst, Institution)
    return not any(p.is_error for p in found), found


def _assert_located(ok: bool, problems: list[Any]) -> None:
    if not ok:
        assert problems
    for p in problems:
        assert p.origin.file == "zones/gva-opera.yaml"
        assert p.code and p.message
        assert "\n" not in str(p)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    _assert_located(*_load(text))


paths = st.lists(
    st.sampled_from(
        [
            "domains",
            "gtg.ch",
            "billetterie.gtg.ch",
            "spf",
            "dmarc",
            "include",
            "rua",
            "alignment",
            "ttl",
            "zone",
            0,
            1,
        ]
    ),
    min_size=1,
    max_size=4,
)


def _mutate(doc: Any, path: list[Any], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    node = doc
    for part in path[:-1]:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            node = node[part]
        else:
            break
    last = path[-1]
    if isinstance(node, dict):
        node[str(last)] = value
    elif isinstance(node, list):
        node.append(value)
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paths, values)
def test_mutated_declaration(path: list[Any], value: Any) -> None:
    text = yaml.safe_dump(_mutate(SAMPLE, path, value), allow_unicode=True)
    _assert_located(*_load(text))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_through_the_file_loader(tmp_path_factory: Any, data: bytes) -> None:
    from provisioner.yamlload import load

    path = Path(tmp_path_factory.mktemp("bytes")) / "x.yaml"
    path.write_bytes(data)
    try:
        with no_hang(5, data):
            load(path, "zones/x.yaml")
    except InvalidInput as exc:
        assert exc.problems and all(p.origin.file == "zones/x.yaml" for p in exc.problems)
