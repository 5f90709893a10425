"""`meisa-bridge schema`: a draft 2020-12 JSON Schema that the examples satisfy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bridge.rules.commands import schema_command
from bridge.yamlio import parse_yaml

ROOT = Path(__file__).resolve().parents[3]


def _schema(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert schema_command(argparse.Namespace()) == 0
    schema: dict[str, Any] = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _doc(name: str) -> Any:
    text = (ROOT / "examples" / name).read_text()
    doc, errors = parse_yaml(text, file=name, env={}, strict_env=False)
    assert errors == []
    return doc


@pytest.mark.parametrize("name", ["rules.yaml", "bridge.yaml"])
def test_examples_validate_against_the_schema(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc(name)
    validator = jsonschema.Draft202012Validator(_schema(capsys))
    assert isinstance(doc, dict)
    assert doc
    assert [e.message for e in validator.iter_errors(doc)] == []
    # The same document with a misspelt key is refused: the schema really checks this file.
    assert not validator.is_valid({**doc, "rulez": []})


def test_schema_rejects_unknown_actions_and_spec_absent_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    validator = jsonschema.Draft202012Validator(_schema(capsys))
    rule = {"name": "r", "on": "t", "do": [{"tweet": {}}]}
    assert not validator.is_valid({"rules": [rule]})
    rule["do"] = [{"upsert": {"email": "a@b.c", "tags": ["x"]}}]
    assert not validator.is_valid({"rules": [rule]})
    rule["do"] = [{"upsert": {"email": "a@b.c"}, "coalesce": False, "max_age": "10m"}]
    assert validator.is_valid({"rules": [rule]})
