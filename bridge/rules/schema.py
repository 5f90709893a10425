"""JSON Schema (draft 2020-12) of the config/rules file, for editors (`meisa-bridge schema`).

Values may be `{{ expr }}` strings anywhere, so typed fields also accept a string.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from bridge.rules.fields import ACTION_FIELDS, AT_LEAST_ONE, SPEC_ABSENT, FieldSpec
from bridge.settings import SECTIONS

SCALAR = ["string", "number", "boolean"]
DURATION = {"type": ["string", "number"], "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"}
_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": ["string", "number"]},
    "object": {"type": ["object", "string"]},
    "string_list": {"type": ["array", "string"], "items": {"type": ["string", "number"]}},
    "bool": {"type": ["boolean", "string"]},
}


def _field(spec: FieldSpec) -> dict[str, Any]:
    out = dict(_TYPES[spec.type])
    if spec.choices:
        out = {"anyOf": [{"enum": list(spec.choices)}, {"type": "string", "pattern": r"\{\{"}]}
    return out


def _action(kind: str) -> dict[str, Any]:
    fields = ACTION_FIELDS[kind]  # type: ignore[index]
    body: dict[str, Any] = {
        "type": "object",
        "properties": {name: _field(spec) for name, spec in fields.items()},
        "required": [n for n, s in fields.items() if s.required],
        "additionalProperties": False,
    }
    groups = AT_LEAST_ONE.get(kind, ())  # type: ignore[call-overload]
    if groups:
        body["allOf"] = [{"anyOf": [{"required": [n]} for n in g]} for g in groups]
    if kind in SPEC_ABSENT:
        body["description"] = next(iter(SPEC_ABSENT[kind].values()))  # type: ignore[index]
    options: dict[str, Any] = {
        "when": {"type": "string", "description": "JMESPath condition"},
        "max_age": DURATION,
        "on_replay": {"enum": ["send", "skip"]},
    }
    if kind == "upsert":
        options["coalesce"] = {"type": "boolean"}
    if kind in ("track", "add_tag", "remove_tag"):
        options["create_contact"] = {
            "type": "boolean",
            "description": "on a 404, upsert a minimal contact (email, external_id) first",
        }
    return {
        "type": "object",
        "properties": {kind: body, **options},
        "required": [kind],
        "additionalProperties": False,
    }


def _names() -> dict[str, Any]:
    return {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}


def rule_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "description": {"type": "string"},
            "on": {
                "anyOf": [
                    *_names()["anyOf"],
                    {
                        "type": "object",
                        "properties": {"type": _names(), "topic": _names()},
                        "additionalProperties": False,
                        "minProperties": 1,
                    },
                ]
            },
            "when": {"type": "string", "description": "JMESPath condition"},
            "do": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/action"}},
        },
        "required": ["name", "on", "do"],
        "additionalProperties": False,
    }


def _section(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "additionalProperties": False}


def _settings_sections() -> dict[str, Any]:
    return {name: _section({f.name: {} for f in fields(cls)}) for name, cls in SECTIONS.items()}


def config_schema() -> dict[str, Any]:
    """The schema of a deployment config; a file holding only `rules:` validates too."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "meisa-bridge config and rules",
        "type": "object",
        "properties": {
            "kafka": {"type": "object", "additionalProperties": {"type": SCALAR}},
            "topics": _names(),
            "dead_letter_topic": {"type": "string"},
            **_settings_sections(),
            "rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}},
            "rules_file": {"type": "string"},
        },
        "additionalProperties": False,
        "$defs": {
            "rule": rule_schema(),
            "action": {"oneOf": [_action(kind) for kind in ACTION_FIELDS]},
        },
    }
