"""Compile rule values once: literals, `{{ expr }}` expressions and text templates.

- A value that is exactly one `{{ expr }}` (whitespace around it allowed) keeps the JSON type the
  expression yields: numbers stay numbers, lists stay lists, null stays null.
- Text with embedded expressions renders a string. An embedded value renders as: null -> "",
  string -> itself, true/false -> "true"/"false", number -> its decimal form, list/object ->
  compact JSON.
- Anything else is a literal. Mappings and lists are compiled item by item.

`expr` is JMESPath over `Envelope.context()` (id, type, source, subject, time, key, topic,
partition, offset, timestamp, headers, data). A plain dotted path (`data.user.email`,
`headers.trace`) is read with dict lookups, and `path == 'text'` / `path != 'text'` compares
directly, without the general evaluator: JMESPath costs ~3 us
per lookup, a dict walk ~0.2 us, and most rule values are plain paths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import jmespath
import jmespath.functions
import orjson
from jmespath.exceptions import JMESPathError

from bridge.errors import EvaluationError, ExpressionError

Getter = Callable[[dict[str, Any]], Any]

_WHOLE = re.compile(r"^\s*\{\{(.*?)\}\}\s*$", re.DOTALL)
_EMBEDDED = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
# `data.plan == 'pro'`: the most common condition, answered without the general evaluator.
_COMPARE = re.compile(r"^(\S+)\s*(==|!=)\s*'([^'\\]*)'$")


def _path_getter(parts: tuple[str, ...]) -> Getter:
    if len(parts) == 1:
        (only,) = parts
        return lambda ctx: ctx.get(only)
    if len(parts) == 2:
        first, second = parts

        def get2(ctx: dict[str, Any]) -> Any:
            cur = ctx.get(first)
            return cur.get(second) if type(cur) is dict else None

        return get2

    def get(ctx: dict[str, Any]) -> Any:
        cur: Any = ctx
        for part in parts:
            if type(cur) is not dict:
                return None
            cur = cur.get(part)
        return cur

    return get


def _compare_getter(m: re.Match[str]) -> Getter:
    """`path == 'text'` / `path != 'text'`: string equality, which JMESPath defines the same way."""
    get = _path_getter(tuple(m.group(1).split(".")))
    literal = m.group(3)
    if m.group(2) == "==":
        return lambda ctx: get(ctx) == literal
    return lambda ctx: get(ctx) != literal


def compile_expression(source: str) -> Getter:
    """Compile one JMESPath expression (no braces) to a getter over the context mapping."""
    text = source.strip()
    if not text:
        raise ExpressionError("empty expression")
    if _PATH.match(text):
        return _path_getter(tuple(text.split(".")))
    compare = _COMPARE.match(text)
    if compare and _PATH.match(compare.group(1)):
        return _compare_getter(compare)
    try:
        compiled = jmespath.compile(text)
    except JMESPathError as exc:
        raise ExpressionError(f"invalid JMESPath {text!r}: {_parse_problem(exc)}") from None
    problem = _function_problem(compiled.parsed)
    if problem:
        # jmespath checks functions only when it runs them: every event would be a mapping error.
        raise ExpressionError(f"invalid JMESPath {text!r}: {problem}")

    def search(ctx: dict[str, Any]) -> Any:
        try:
            return compiled.search(ctx)
        except JMESPathError as exc:
            raise EvaluationError(f"{text!r}: {_first_line(exc)}") from None

    return search


_FUNCTIONS = jmespath.functions.Functions().FUNCTION_TABLE


def _function_problem(node: Any) -> str | None:
    """An unknown function or a wrong number of arguments anywhere in a parsed expression."""
    if isinstance(node, list):
        return next((p for p in map(_function_problem, node) if p), None)
    if not isinstance(node, dict):
        return None
    if node.get("type") == "function_expression":
        name, args = node["value"], len(node["children"])
        spec = _FUNCTIONS.get(name)
        if spec is None:
            return f"unknown function {name}() (JMESPath has {', '.join(sorted(_FUNCTIONS))})"
        want = len(spec["signature"])
        variadic = bool(spec["signature"]) and spec["signature"][-1].get("variadic", False)
        if (args < want) if variadic else (args != want):
            noun = "argument" if want == 1 else "arguments"
            least = "at least " if variadic else ""
            return f"{name}() takes {least}{want} {noun}, got {args}"
    return _function_problem(node.get("children", []))


def _parse_problem(exc: JMESPathError) -> str:
    """jmespath's multi-line message as one line: what is wrong and where."""
    first = _first_line(exc).split(": ", 1)[-1].rstrip(":").removesuffix(", for expression")
    first = first[:1].lower() + first[1:]
    position = getattr(exc, "lex_position", None)
    return f"{first} at character {position}" if isinstance(position, int) else first


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; all else (0 too) is true."""
    if value is True:
        return True
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def render_text(value: Any) -> str:  # noqa: PLR0911 (one return per JSON type)
    """How an embedded expression's value appears inside a text template."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return str(value)
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # integers beyond 64 bits, or a value orjson does not know
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class Compiled:
    """A compiled value: `evaluate(ctx)` builds the concrete value for one event.

    `items` is set for a mapping: its keys with their values' getters, so a field that drops
    null entries can build its object in one pass instead of building and then filtering it.
    `path` is set for a whole value that is one plain dotted path, so a field can read it
    inline."""

    __slots__ = ("evaluate", "is_constant", "items", "path", "source")

    def __init__(
        self,
        evaluate: Getter,
        *,
        is_constant: bool,
        source: Any,
        items: tuple[tuple[str, Getter], ...] | None = None,
        path: tuple[str, ...] | None = None,
    ) -> None:
        self.evaluate = evaluate
        self.is_constant = is_constant
        self.source = source
        self.items = items
        self.path = path


def _constant(value: Any) -> Compiled:
    return Compiled(lambda _ctx: value, is_constant=True, source=value)


def _template(text: str) -> Compiled:
    pieces: list[str | Getter] = []
    pos = 0
    for m in _EMBEDDED.finditer(text):
        if m.start() > pos:
            pieces.append(text[pos : m.start()])
        pieces.append(compile_expression(m.group(1)))
        pos = m.end()
    if pos < len(text):
        pieces.append(text[pos:])
    if any(isinstance(p, str) and "{{" in p for p in pieces):
        # Sent as is, "{{ data.email" would reach Meisa as a literal address.
        raise ExpressionError(f"unclosed {{{{ in {text!r} (write {{{{ expression }}}})")

    # The text parts become one %-format, so an event costs one format and no per-piece dispatch.
    form = "".join(p.replace("%", "%%") if isinstance(p, str) else "%s" for p in pieces)
    getters = tuple(p for p in pieces if not isinstance(p, str))

    def render(ctx: dict[str, Any]) -> str:
        return form % tuple([render_text(get(ctx)) for get in getters])

    return Compiled(render, is_constant=False, source=text)


def compile_value(value: Any) -> Compiled:
    """Compile a rule value (scalar, mapping or list). Raises ExpressionError."""
    if isinstance(value, str):
        if "{{" not in value:
            return _constant(value)
        whole = _WHOLE.match(value)
        if whole and "{{" not in whole.group(1):
            getter = compile_expression(whole.group(1))
            text = whole.group(1).strip()
            path = tuple(text.split(".")) if _PATH.match(text) else None
            return Compiled(getter, is_constant=False, source=value, path=path)
        return _template(value)
    if isinstance(value, dict):
        return _compile_mapping(value)
    if isinstance(value, list):
        return _compile_list(value)
    return _constant(value)


def _compile_mapping(value: dict[str, Any]) -> Compiled:
    for key in value:
        if "{{" in str(key):
            raise ExpressionError(
                f"key {key!r}: keys are literal, expressions go in values "
                "(or give the whole mapping as one expression)"
            )
    items = [(str(k), compile_value(v)) for k, v in value.items()]
    pairs = tuple((k, c.evaluate) for k, c in items)

    def build(ctx: dict[str, Any]) -> dict[str, Any]:
        return {k: get(ctx) for k, get in pairs}

    # A fresh container per event even when constant, so no two calls share a mutable body.
    constant = all(c.is_constant for _, c in items)
    return Compiled(build, is_constant=constant, source=value, items=pairs)


def _compile_list(value: list[Any]) -> Compiled:
    items = [compile_value(v) for v in value]
    getters = [c.evaluate for c in items]

    def build(ctx: dict[str, Any]) -> list[Any]:
        return [get(ctx) for get in getters]

    return Compiled(build, is_constant=all(c.is_constant for c in items), source=value)
