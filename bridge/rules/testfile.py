"""Rule test files (`*.test.yaml`) -> RuleTest values; every error names file, line and field.

The format is documented in docs/rules-testing.md. A file holds `tests:` and optionally `rules:`
(the rules or config file under test, relative to the test file; by default the test file's
name without `.test`) and `topic:` (the topic of events given without one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from bridge.errors import ConfigError
from bridge.meisa.calls import ENDPOINTS, CallKind
from bridge.rules.loader import parse_duration
from bridge.yamlio import line_of, load_yaml

FILE_KEYS = ("rules", "topic", "tests")
TEST_KEYS = (
    "name",
    "event",
    "events",
    "message",
    "messages",
    "topic",
    "age",
    "now",
    "replay",
    "coalesce",
    "expect",
)
INPUT_KEYS = ("event", "events", "message", "messages")
EXPECT_KEYS = ("calls", "match", "outcome", "reason")
CALL_OPTIONS = ("rule",)
OUTCOMES = ("no_match", "decode_error", "map_error", "stale")
MATCHES = ("exact", "subset")
TYPES = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}
RAW_KEYS = ("topic", "partition", "offset", "key", "headers")


@dataclass(frozen=True, slots=True)
class Matcher:
    """A `{$op: arg}` in an expected value: it matches values that vary from run to run."""

    op: str  # any | regex | type | absent
    arg: Any

    def matches(self, value: Any, present: bool) -> bool:
        if self.op == "absent":
            return not present
        if not present:
            return False
        if self.op == "regex":
            return isinstance(value, str) and re.fullmatch(self.arg, value) is not None
        if self.op == "type":
            if isinstance(value, bool):  # a bool is an int to Python, not to JSON
                return bool(self.arg == "boolean")
            return isinstance(value, TYPES[str(self.arg)])
        return True  # any

    def __str__(self) -> str:
        return f"{{${self.op}: {orjson.dumps(self.arg).decode()}}}"


@dataclass(frozen=True, slots=True)
class ExpectedCall:
    kind: CallKind
    body: Any  # plain values and Matchers
    line: int
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class Expectation:
    """Either `calls` (exact, or a subset) or an `outcome` every input must have."""

    calls: tuple[ExpectedCall, ...] | None = None
    subset: bool = False
    outcome: str | None = None
    reason: Any = None  # a substring, or a Matcher


@dataclass(frozen=True, slots=True)
class RuleTest:
    name: str
    file: str
    line: int
    lines: tuple[str, ...]  # the inputs as `meisa-bridge plan` reads them (JSON Lines)
    topic: str
    expect: Expectation
    age: float | None = None  # seconds between the event time and when the bridge reads it
    now: float | None = None  # or a fixed clock (epoch seconds)
    replay: bool = False
    coalesce: bool = False


@dataclass(frozen=True, slots=True)
class TestFile:
    path: str
    rules: str
    tests: tuple[RuleTest, ...]
    errors: tuple[ConfigError, ...] = field(default=())


@dataclass
class _Ctx:
    file: str
    errors: list[ConfigError] = field(default_factory=list)

    def error(self, message: str, line: int | None, where: str) -> None:
        self.errors.append(ConfigError(message, file=self.file, line=line, field=where))


def default_rules(path: Path) -> Path:
    """`x.test.yaml` tests `x.yaml` beside it."""
    name = path.name
    for suffix in (".test.yaml", ".test.yml"):
        if name.endswith(suffix):
            return path.with_name(name.removesuffix(suffix) + ".yaml")
    return path.with_name("rules.yaml")


def load_test_file(path: str | Path, *, rules: str | None = None) -> TestFile:
    """Parse one test file; problems are collected in `errors`, never raised."""
    file = str(path)
    doc, errors = load_yaml(path, strict_env=False)
    ctx = _Ctx(file, list(errors))
    rules_path = rules or str(default_rules(Path(path)))
    if doc is None and not ctx.errors:
        ctx.error("empty test file (add `tests:`)", 1, "tests")
    if ctx.errors:
        return TestFile(file, rules_path, (), tuple(ctx.errors))
    if not isinstance(doc, dict):
        ctx.error(f"expected a mapping with `tests:`, got {_kind(doc)}", line_of(doc, 0, 1), "-")
        return TestFile(file, rules_path, (), tuple(ctx.errors))
    _unknown(doc, FILE_KEYS, "", ctx)
    if rules is None and "rules" in doc:
        if isinstance(doc["rules"], str) and doc["rules"]:
            rules_path = str(Path(path).parent / doc["rules"])
        else:
            ctx.error("expected the path of a rules or config file", line_of(doc, "rules"), "rules")
    topic = doc.get("topic", "events")
    if not isinstance(topic, str) or not topic:
        ctx.error("expected a topic name", line_of(doc, "topic"), "topic")
        topic = "events"
    tests = _tests(doc, topic, ctx)
    return TestFile(file, rules_path, tuple(tests), tuple(ctx.errors))


def _tests(doc: dict[str, Any], topic: str, ctx: _Ctx) -> list[RuleTest]:
    items = doc.get("tests")
    if not isinstance(items, list) or not items:
        ctx.error(
            "expected a non-empty list of tests (- name: ...)", line_of(doc, "tests"), "tests"
        )
        return []
    out: list[RuleTest] = []
    names: dict[str, int] = {}
    for i, item in enumerate(items):
        line = line_of(items, i) or 1
        test = _test(item, f"tests[{i}]", line, topic, ctx)
        if test is None:
            continue
        if test.name in names:
            ctx.error(f"duplicate test name (first at line {names[test.name]})", line, "name")
        names.setdefault(test.name, line)
        out.append(test)
    return out


def _test(item: Any, where: str, line: int, topic: str, ctx: _Ctx) -> RuleTest | None:
    if not isinstance(item, dict):
        ctx.error(f"expected a test (name:, event:, expect:), got {_kind(item)}", line, where)
        return None
    before = len(ctx.errors)
    name = item.get("name")
    if not isinstance(name, str) or not name:
        ctx.error("every test needs a `name:`", line_of(item, "name"), f"{where}.name")
        name = where
    where = f"{where} ({name})"
    _unknown(item, TEST_KEYS, where, ctx)
    topic = _string(item, "topic", where, ctx) or topic
    lines = _inputs(item, where, topic, ctx)
    expect = _expect(item, where, ctx)
    age, now = _clock(item, where, ctx)
    replay = _flag(item, "replay", where, ctx)
    coalesce = _flag(item, "coalesce", where, ctx)
    if len(ctx.errors) > before or expect is None:
        return None
    return RuleTest(name, ctx.file, line, lines, topic, expect, age, now, replay, coalesce)


def _inputs(item: dict[str, Any], where: str, topic: str, ctx: _Ctx) -> tuple[str, ...]:
    given = [k for k in INPUT_KEYS if k in item]
    if len(given) != 1:
        found = ", ".join(given) if given else "none"
        ctx.error(
            f"give exactly one of {', '.join(INPUT_KEYS)} (found {found})",
            line_of(item, None),
            where,
        )
        return ()
    key = given[0]
    value = item[key]
    many = key.endswith("s")
    values = value if many else [value]
    if many and (not isinstance(value, list) or not value):
        ctx.error("expected a non-empty list", line_of(item, key), f"{where}.{key}")
        return ()
    lines: list[str] = []
    for i, one in enumerate(values):
        at = f"{where}.{key}[{i}]" if many else f"{where}.{key}"
        line = line_of(values, i) if many else line_of(item, key)
        if not isinstance(one, dict):
            ctx.error(f"expected a mapping, got {_kind(one)}", line, at)
            continue
        if key.startswith("message"):
            if "value" not in one:
                ctx.error("a raw message needs `value:` (and topic, key, headers...)", line, at)
                continue
            one = {"topic": topic, **one}  # noqa: PLW2901 - the line is built from the copy
        try:
            lines.append(orjson.dumps(one).decode())
        except TypeError as exc:  # e.g. an integer past 64 bits
            ctx.error(f"cannot be written as JSON: {exc}", line, at)
    return tuple(lines)


def _expect(item: dict[str, Any], where: str, ctx: _Ctx) -> Expectation | None:
    where = f"{where}.expect"
    exp = item.get("expect")
    if not isinstance(exp, dict):
        ctx.error(
            "every test needs `expect:` with calls: or outcome:", line_of(item, "expect"), where
        )
        return None
    _unknown(exp, EXPECT_KEYS, where, ctx)
    if ("calls" in exp) == ("outcome" in exp):
        ctx.error("give exactly one of calls: or outcome:", line_of(exp, None), where)
        return None
    if "outcome" in exp:
        return _expect_outcome(exp, where, ctx)
    match = exp.get("match", "exact")
    if match not in MATCHES:
        ctx.error(f"expected one of {', '.join(MATCHES)}", line_of(exp, "match"), f"{where}.match")
    calls = exp["calls"]
    if not isinstance(calls, list):
        ctx.error("expected a list of calls (- upsert: {...})", line_of(exp, "calls"), where)
        return None
    expected = [
        _call(c, f"{where}.calls[{i}]", line_of(calls, i), ctx) for i, c in enumerate(calls)
    ]
    if "reason" in exp:
        ctx.error("reason: goes with outcome:", line_of(exp, "reason"), f"{where}.reason")
    return Expectation(calls=tuple(c for c in expected if c is not None), subset=match == "subset")


def _expect_outcome(exp: dict[str, Any], where: str, ctx: _Ctx) -> Expectation | None:
    outcome = exp["outcome"]
    if outcome not in OUTCOMES:
        ctx.error(
            f"expected one of {', '.join(OUTCOMES)} (or calls: instead)",
            line_of(exp, "outcome"),
            f"{where}.outcome",
        )
        return None
    if "match" in exp:
        ctx.error("match: goes with calls:", line_of(exp, "match"), f"{where}.match")
    reason = exp.get("reason")
    if reason is not None:
        reason = _expected_value(reason, f"{where}.reason", line_of(exp, "reason"), ctx)
        if not isinstance(reason, str | Matcher):
            ctx.error("expected a text or a matcher", line_of(exp, "reason"), f"{where}.reason")
    return Expectation(outcome=outcome, reason=reason)


def _call(node: Any, where: str, line: int | None, ctx: _Ctx) -> ExpectedCall | None:
    if not isinstance(node, dict):
        ctx.error(f"expected a call such as `- upsert: {{...}}`, got {_kind(node)}", line, where)
        return None
    kinds = [k for k in node if k in ENDPOINTS]
    others = [k for k in node if k not in ENDPOINTS and k not in CALL_OPTIONS]
    if len(kinds) != 1 or others:
        ctx.error(
            f"a call is one of {', '.join(ENDPOINTS)} with its body, optionally with rule:"
            + (f" (unknown key {others[0]!r})" if others else ""),
            line,
            where,
        )
        return None
    kind: CallKind = kinds[0]
    body = node[kind]
    if not isinstance(body, dict):
        ctx.error(f"expected the call's body as a mapping, got {_kind(body)}", line, where)
        return None
    rule = node.get("rule")
    if rule is not None and not isinstance(rule, str):
        ctx.error("expected a rule name", line_of(node, "rule"), f"{where}.rule")
        rule = None
    body = _expected_value(body, f"{where}.{kind}", line_of(node, kind), ctx)
    return ExpectedCall(kind, body, line_of(node, kind) or 0, rule)


def _expected_value(node: Any, where: str, line: int | None, ctx: _Ctx) -> Any:
    """Plain YAML values, with each `{$op: arg}` mapping turned into a Matcher."""
    if isinstance(node, dict):
        dollar = [k for k in node if k.startswith("$")]
        if dollar:
            return _matcher(node, dollar, where, line_of(node, dollar[0], line), ctx)
        return {
            k: _expected_value(v, f"{where}.{k}", line_of(node, k, line), ctx)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [
            _expected_value(v, f"{where}[{i}]", line_of(node, i, line), ctx)
            for i, v in enumerate(node)
        ]
    return node


def _matcher(node: dict[str, Any], keys: list[str], where: str, line: int | None, ctx: _Ctx) -> Any:
    if len(node) != 1:
        ctx.error("a matcher is a mapping with one $key only", line, where)
        return None
    op, arg = keys[0][1:], node[keys[0]]
    if op in ("any", "absent") and arg is not True:
        ctx.error(f"write {{${op}: true}}", line, where)
    elif op == "regex":
        try:
            re.compile(arg if isinstance(arg, str) else "(")
        except re.error as exc:
            ctx.error(f"bad regular expression {arg!r}: {exc}", line, where)
    elif op == "type" and arg not in TYPES:
        ctx.error(f"$type is one of {', '.join(TYPES)}", line, where)
    elif op not in ("any", "absent", "regex", "type"):
        ctx.error(f"unknown matcher ${op} (use $any, $absent, $regex or $type)", line, where)
    return Matcher(op, arg)


def _clock(item: dict[str, Any], where: str, ctx: _Ctx) -> tuple[float | None, float | None]:
    age = now = None
    if "age" in item and "now" in item:
        ctx.error("give age: or now:, not both", line_of(item, "now"), f"{where}.now")
    if "age" in item:
        try:
            age = parse_duration(item["age"])
        except ValueError as exc:
            ctx.error(str(exc), line_of(item, "age"), f"{where}.age")
    if "now" in item:
        try:
            now = datetime.fromisoformat(str(item["now"]).replace("Z", "+00:00")).timestamp()
        except ValueError:
            ctx.error(
                "expected an ISO 8601 time such as 2026-03-02T10:00:00Z",
                line_of(item, "now"),
                f"{where}.now",
            )
    return age, now


def _flag(item: dict[str, Any], key: str, where: str, ctx: _Ctx) -> bool:
    value = item.get(key, False)
    if not isinstance(value, bool):
        ctx.error("expected true or false", line_of(item, key), f"{where}.{key}")
        return False
    return value


def _string(item: dict[str, Any], key: str, where: str, ctx: _Ctx) -> str | None:
    value = item.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        ctx.error("expected a non-empty string", line_of(item, key), f"{where}.{key}")
        return None
    return value


def _unknown(node: dict[str, Any], allowed: tuple[str, ...], where: str, ctx: _Ctx) -> None:
    for key in node:
        if key not in allowed:
            at = f"{where}.{key}" if where else key
            ctx.error(f"unknown key (expected one of {', '.join(allowed)})", line_of(node, key), at)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else repr(value)
