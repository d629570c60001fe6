"""The schemas are valid JSON Schema 2020-12, and every sample says which schema it follows."""

from __future__ import annotations

import json

import jsonschema
import pytest

from provisioner import schema
from tests.conftest import REPO


@pytest.mark.parametrize("name", ["institution", "platform"])
def test_schema_is_valid_2020_12(name: str) -> None:
    loaded = json.loads((REPO / "schemas" / f"{name}.schema.json").read_text())
    assert loaded["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(loaded)


def test_a_broken_schema_is_caught_by_the_meta_schema() -> None:
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.Draft202012Validator.check_schema({"type": "mapping"})


def test_every_sample_has_the_editor_modeline() -> None:
    for path in sorted((REPO / "zones").glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schemas/institution.schema.json"
    first = (REPO / "provisioner.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=schemas/platform.schema.json"


def test_defaults_come_from_the_schema() -> None:
    assert schema.default("institution", "domains", "x", "ttl") == 3600
    assert schema.default("institution", "domains", "x", "dmarc", "policy") == "none"
    assert schema.default("institution", "domains", "x", "spf", "all") == "softfail"
    assert schema.default("platform", "default_target") == "local"
