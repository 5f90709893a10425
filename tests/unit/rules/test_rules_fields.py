"""BodyField.make and templates: the per-event shortcuts give what the general path gives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bridge.errors import FieldValueError
from bridge.rules.expressions import compile_value
from bridge.rules.fields import ACTION_FIELDS, FieldSpec
from bridge.rules.models import BodyField

SPECS = sorted(
    {spec for fields in ACTION_FIELDS.values() for spec in fields.values()}
    | {FieldSpec(required=True, choices=("api", "signup"))},
    key=repr,
)
VALUES: list[Any] = [None, "", "api", "x", 0, 7, 2.5, True, False, [], ["a", None, 3], {}]
VALUES += [{"a": None}, {"a": 1, "b": None, "c": ""}, "true", "FALSE"]
SHAPES = ["{{ data.v }}", "<{{ data.v }}>", {"k": "{{ data.v }}", "n": None, "z": "lit"}]


def _outcome(run: Callable[[Any], Any], arg: Any) -> tuple[str, Any]:
    try:
        return ("ok", run(arg))
    except FieldValueError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("spec", SPECS, ids=repr)
@pytest.mark.parametrize("shape", [*SHAPES, *VALUES], ids=repr)
def test_field_make_equals_check_of_value_for_every_value(spec: FieldSpec, shape: Any) -> None:
    field = BodyField(name="f", spec=spec, value=compile_value(shape))
    for value in VALUES:
        ctx = {"data": {"v": value}}
        expected = _outcome(field.check, field.value.evaluate(ctx))
        assert _outcome(field.make, ctx) == expected


def test_template_text_keeps_percent_signs_and_format_codes() -> None:
    compiled = compile_value("100% {{ data.v }}%s%%{{ data.v }}-{{ data.w }}")
    assert compiled.evaluate({"data": {"v": "%d", "w": [1]}}) == "100% %d%s%%%d-[1]"
