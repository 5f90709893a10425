"""Expressions: whole values keep JSON types, templates render text, paths skip JMESPath."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.rules.expressions import (
    ExpressionError,
    compile_expression,
    compile_value,
    render_text,
    truthy,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_whole_value_expression_keeps_the_json_type(value: Any) -> None:
    ctx = {"data": {"v": value}}
    out = compile_value("{{ data.v }}").evaluate(ctx)
    assert out == value
    assert type(out) is type(value)
    out = compile_value("  {{ data.v || data.v }}  ").evaluate(ctx)  # through JMESPath too
    assert out == jmespath.search("data.v || data.v", ctx)


@given(json_values)
def test_embedded_expression_always_renders_a_string(value: Any) -> None:
    out = compile_value("v={{ data.v }}").evaluate({"data": {"v": value}})
    assert out == "v=" + render_text(value)


@given(
    st.dictionaries(st.sampled_from("abc"), st.dictionaries(st.sampled_from("xyz"), json_values))
)
def test_dotted_path_fast_path_agrees_with_jmespath(data: dict[str, Any]) -> None:
    for path in ("a", "a.x", "b.y", "c.z.q"):
        assert compile_expression(path)(data) == jmespath.search(path, data)


def test_text_rendering_rules() -> None:
    ctx = {"data": {"n": None, "t": True, "i": 3, "l": [1, "a"], "s": "x"}}
    out = compile_value("{{data.n}}|{{data.t}}|{{data.i}}|{{data.l}}|{{data.s}}").evaluate(ctx)
    assert out == '|true|3|[1,"a"]|x'


def test_containers_are_compiled_recursively_and_not_shared() -> None:
    compiled = compile_value({"a": ["{{ id }}", 1], "b": {"c": "lit"}})
    first = compiled.evaluate({"id": "e1"})
    second = compiled.evaluate({"id": "e2"})
    assert first == {"a": ["e1", 1], "b": {"c": "lit"}}
    assert second["a"][0] == "e2"
    assert first["b"] is not second["b"]


@pytest.mark.parametrize("bad", ["data.[", "", "a ==", "foo(("])
def test_bad_expressions_raise(bad: str) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, False), (False, False), ("", False), ([], False), ({}, False), (0, True), ("0", True)],
)
def test_truthiness_follows_jmespath(value: Any, expected: bool) -> None:
    assert truthy(value) is expected


@given(json_values, st.sampled_from(["==", "!="]), st.text(alphabet="abc xyz", max_size=5))
def test_string_comparison_fast_path_agrees_with_jmespath(value: Any, op: str, text: str) -> None:
    expr = f"data.v {op} '{text}'"
    ctx = {"data": {"v": value}}
    assert compile_expression(expr)(ctx) == jmespath.search(expr, ctx)


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("nope(data.x)", "unknown function nope()"),
        ("contains(data.tags)", "contains() takes 2 arguments, got 1"),
        ("data.a && length(data.b, data.c)", "length() takes 1 argument, got 2"),
        ("not_null()", "not_null() takes at least 1 argument, got 0"),
        ("data.x ==", "incomplete expression at character 9"),
    ],
)
def test_unknown_functions_and_wrong_arity_fail_at_load_not_per_event(bad: str, says: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(bad)
    assert says in str(info.value)


def test_known_functions_with_the_right_arity_compile() -> None:
    get = compile_expression("contains(keys(data), 'a') && not_null(data.x, data.y, `1`)")
    assert get({"data": {"a": 1}}) == 1
