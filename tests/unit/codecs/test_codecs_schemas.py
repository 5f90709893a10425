"""schemas/: every example event validates against its JSON Schema and round-trips its .avsc."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = ROOT / "schemas"
TYPES = sorted(p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json"))
# Deliberately bad examples: evt_0038 has no email (the demo's mapping error).
INVALID = {"evt_0038"}


def _events() -> list[dict[str, Any]]:
    out = []
    for line in (ROOT / "examples" / "events.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the one malformed line
    return out


def test_every_required_type_has_both_contracts() -> None:
    assert len(TYPES) == 11
    for name in TYPES:
        assert (SCHEMAS / f"{name}.avsc").exists()


def test_example_events_validate_against_their_json_schema() -> None:
    checked, failed = 0, set()
    for event in _events():
        path = SCHEMAS / f"{event['type']}.schema.json"
        if not path.exists():
            continue
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(event))
        checked += 1
        if errors:
            failed.add(event["id"])
    assert failed == INVALID
    assert checked >= 35
    assert {e["type"] for e in _events()} >= set(TYPES)


@pytest.mark.parametrize("name", TYPES)
def test_a_sample_of_each_type_round_trips_through_avro(name: str) -> None:
    schema = fastavro.parse_schema(json.loads((SCHEMAS / f"{name}.avsc").read_text()))
    sample = next(e for e in _events() if e["type"] == name and e["id"] not in INVALID)
    fields = [f["name"] for f in schema["fields"][4]["type"]["fields"]]
    record = {**sample, "data": {f: sample["data"].get(f) for f in fields}}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    back = fastavro.schemaless_reader(io.BytesIO(buf.getvalue()), schema, None)
    assert back == record
