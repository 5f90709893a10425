"""Rules YAML -> RuleSet, collecting every error with file, line, rule and field."""

from __future__ import annotations

import bisect
import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from bridge.errors import ConfigError, ExpressionError, FieldValueError
from bridge.meisa.calls import (
    COALESCES,
    DEFAULT_ON_REPLAY,
    WAITS_ON_404,
    CallKind,
    ReplayPolicy,
)
from bridge.rules.engine import RuleSet
from bridge.rules.expressions import (
    Compiled,
    Getter,
    compile_expression,
    compile_value,
)
from bridge.rules.fields import (
    ACTION_FIELDS,
    ACTION_KINDS,
    AT_LEAST_ONE,
    EXACTLY_ONE,
    SPEC_ABSENT,
    FieldSpec,
)
from bridge.rules.models import Action, BodyField, Matcher, Rule, check_value
from bridge.yamlio import line_of

RULE_KEYS = ("name", "description", "on", "when", "do")
ACTION_OPTIONS = ("when", "max_age", "on_replay", "coalesce", "create_contact")
# A 404 for these can be answered by upserting a minimal contact first.
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """`30s`, `10m`, `1h30m`, `2d`, `500ms`, or a number of seconds -> seconds (> 0)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value and _DURATION.sub("", value.replace(" ", "")) == "":
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(value))
    else:
        raise ValueError(f"bad duration {value!r} (use e.g. 30s, 10m, 1h, 1d)")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


@dataclass
class _Ctx:
    """Where we are while compiling: errors are collected here, never raised one by one."""

    file: str
    errors: list[ConfigError] = field(default_factory=list)
    rule: str | None = None

    def error(self, message: str, line: int | None, fld: str | None = None) -> None:
        self.errors.append(
            ConfigError(message, file=self.file, line=line, rule=self.rule, field=fld)
        )


def compile_rules(
    node: Any, *, file: str, line: int | None = None
) -> tuple[RuleSet, list[ConfigError]]:
    """Compile the value of `rules:`. Returns the rules that compiled and every error."""
    ctx = _Ctx(file)
    if not isinstance(node, list):
        ctx.error(f"expected a list of rules (- name: ...), got {_kind(node)}", line, "rules")
        return RuleSet(source=file), ctx.errors
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(node):
        rule = _compile_rule(item, i, line_of(node, i, line), ctx, seen)
        if rule is not None:
            rules.append(rule)
    return RuleSet(tuple(rules), source=file, version=rules_version(node)), ctx.errors


def rules_version(node: Any) -> str:
    """12 hex digits of SHA-256 over the rules as data (keys sorted, `${VAR}` interpolated):
    comments, formatting and key order do not change it, any rule or value does."""
    try:
        data = orjson.dumps(node, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:  # not plain YAML data (rules built in code): its repr, stable enough
        data = repr(node).encode()
    return hashlib.sha256(data).hexdigest()[:12]


def name_rules(errors: list[ConfigError], node: Any, file: str) -> list[ConfigError]:
    """Errors found while parsing the YAML (duplicate keys, ...) get the rule they sit in."""
    starts = getattr(node, "item_lines", None)
    if not isinstance(node, list) or not starts:
        return errors
    out = []
    for err in errors:
        if err.rule is None and err.file == file and err.line is not None and err.line >= starts[0]:
            i = bisect.bisect_right(starts, err.line) - 1
            name = node[i].get("name") if isinstance(node[i], dict) else None
            rule = name if isinstance(name, str) and name.strip() else f"#{i + 1}"
            out.append(
                ConfigError(err.message, file=err.file, line=err.line, rule=rule, field=err.field)
            )
            continue
        out.append(err)
    return out


def _compile_rule(
    item: Any, index: int, line: int | None, ctx: _Ctx, seen: dict[str, int]
) -> Rule | None:
    ctx.rule = f"#{index + 1}"  # until it has a usable name: its position in the list
    if not isinstance(item, dict):
        ctx.error("each rule must be a mapping with name, on, do", line)
        return None
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        ctx.error("required: a non-empty string", line_of(item, "name", line), "name")
        name = ctx.rule
    ctx.rule = name
    if name in seen:
        ctx.error(
            f"duplicate rule name (first at line {seen[name]})", line_of(item, "name"), "name"
        )
    seen.setdefault(name, line or 0)
    for key in item:
        if key not in RULE_KEYS:
            ctx.error(f"unknown key (rule keys: {', '.join(RULE_KEYS)})", line_of(item, key), key)
    matcher = _compile_on(item, line, ctx)
    when_ok, when = _compile_when(item, ctx)
    actions = _compile_actions(item, line, ctx)
    if matcher is None or actions is None or not when_ok:
        return None
    return Rule(name=name, on=matcher, actions=actions, when=when, line=line or 0)


def _patterns(value: Any) -> tuple[frozenset[str], tuple[re.Pattern[str], ...]] | None:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        return None
    exact = frozenset(n for n in names if not any(c in n for c in "*?["))
    globs = tuple(re.compile(fnmatch.translate(n)) for n in names if n not in exact)
    return exact, globs


def _compile_on(item: dict[str, Any], line: int | None, ctx: _Ctx) -> Matcher | None:
    if "on" not in item:
        ctx.error("required: an event type, a list of types, or {type:, topic:}", line, "on")
        return None
    value, where = item["on"], line_of(item, "on")
    spec = value if isinstance(value, dict) else {"type": value}
    bad = [k for k in spec if k not in ("type", "topic")]
    if bad or not spec:
        ctx.error(
            "expected an event type, a list of types, or a mapping of type/topic", where, "on"
        )
        return None
    parts: dict[str, tuple[frozenset[str], tuple[re.Pattern[str], ...]]] = {}
    for key, names in spec.items():
        compiled = _patterns(names)
        if compiled is None:
            ctx.error(
                "expected a non-empty string or list of strings",
                line_of(spec, key, where),
                f"on.{key}",
            )
            return None
        parts[key] = compiled
    types, type_globs = parts.get("type", (frozenset(), ()))
    topics, topic_globs = parts.get("topic", (frozenset(), ()))
    return Matcher(types=types, type_globs=type_globs, topics=topics, topic_globs=topic_globs)


def _compile_when(item: dict[str, Any], ctx: _Ctx, prefix: str = "") -> tuple[bool, Getter | None]:
    """(compiled?, getter): the getter is None when there is no `when`; errors are recorded."""
    if "when" not in item:
        return True, None
    value, where = item["when"], line_of(item, "when")
    text = value.strip() if isinstance(value, str) else ""
    # `when: "{{ expr }}"` is accepted too: people write braces out of habit.
    if text.startswith("{{") and text.endswith("}}"):
        text = text[2:-2]
    try:
        return True, compile_expression(text) if text else _fail("expected a JMESPath expression")
    except ExpressionError as exc:
        ctx.error(str(exc), where, f"{prefix}when")
        return False, None


def _kind(value: Any) -> str:
    """How a YAML value's type reads in an error message."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _fail(message: str) -> Getter:
    raise ExpressionError(message)


def _compile_actions(
    item: dict[str, Any], line: int | None, ctx: _Ctx
) -> tuple[Action, ...] | None:
    do = item.get("do")
    if not isinstance(do, list) or not do:
        message = "required: a non-empty list of actions"
        if do is not None and not isinstance(do, list):
            message = f"expected a list of actions (- upsert: ...), got {_kind(do)}"
        ctx.error(message, line_of(item, "do", line), "do")
        return None
    actions = [_compile_action(a, i, line_of(do, i, line), ctx) for i, a in enumerate(do)]
    return tuple(a for a in actions if a is not None) if all(actions) else None


def _compile_action(item: Any, index: int, line: int | None, ctx: _Ctx) -> Action | None:
    where = f"do[{index}]"
    if not isinstance(item, dict):
        ctx.error(
            f"expected a mapping like {{upsert: {{...}}}} (actions: {', '.join(ACTION_KINDS)})",
            line,
            where,
        )
        return None
    kinds = [k for k in item if k in ACTION_FIELDS]
    others = [k for k in item if k not in ACTION_FIELDS and k not in ACTION_OPTIONS]
    for key in others:
        what = "unknown action" if not kinds else "unknown key"
        ctx.error(
            f"{what} {key!r} (actions: {', '.join(ACTION_KINDS)}; options: "
            f"{', '.join(ACTION_OPTIONS)})",
            line_of(item, key, line),
            where,
        )
    if len(kinds) != 1:
        if not others:
            ctx.error(f"expected exactly one action, got {len(kinds)}", line, where)
        return None
    kind: CallKind = kinds[0]
    fields = _compile_fields(kind, item[kind], line_of(item, kind, line), ctx, f"{where}.{kind}")
    options = _compile_options(kind, item, ctx, where)
    when_ok, when = _compile_when(item, ctx, f"{where}.")
    if fields is None or options is None or not when_ok or others:
        return None
    max_age, on_replay, coalesce, create_contact = options
    return Action(
        kind=kind,
        index=index,
        fields=fields,
        when=when,
        max_age=max_age,
        on_replay=on_replay,
        coalesce=coalesce,
        create_contact=create_contact,
        line=line or 0,
    )


def _compile_fields(
    kind: CallKind, body: Any, line: int | None, ctx: _Ctx, where: str
) -> tuple[BodyField, ...] | None:
    if not isinstance(body, dict):
        ctx.error("expected a mapping of body fields", line, where)
        return None
    specs, absent = ACTION_FIELDS[kind], SPEC_ABSENT.get(kind, {})
    ok, out = True, []
    for name, value in body.items():
        fline = line_of(body, name, line)
        if name in absent:
            ctx.error(absent[name], fline, f"{where}.{name}")
        elif name not in specs:
            ctx.error(
                f"unknown field for {kind} (fields: {', '.join(specs)})", fline, f"{where}.{name}"
            )
        else:
            compiled = _compile_field(specs[name], value, fline, ctx, f"{where}.{name}")
            if compiled is not None:
                out.append(BodyField(name=name, spec=specs[name], value=compiled))
                continue
        ok = False
    ok = _check_presence(kind, body, line, ctx, where) and ok
    return tuple(out) if ok else None


def _compile_field(
    spec: FieldSpec, value: Any, line: int | None, ctx: _Ctx, where: str
) -> Compiled | None:
    try:
        compiled = compile_value(value)
        if compiled.is_constant:  # a literal can be checked now rather than on every event
            check_value(spec, compiled.evaluate({}))
    except (ExpressionError, FieldValueError) as exc:
        ctx.error(str(exc), line, where)
        return None
    return compiled


def _check_presence(
    kind: CallKind, body: dict[str, Any], line: int | None, ctx: _Ctx, where: str
) -> bool:
    ok = True
    for name, spec in ACTION_FIELDS[kind].items():
        if spec.required and name not in body:
            ctx.error(f"required by the Meisa spec for {kind}", line, f"{where}.{name}")
            ok = False
    for group in AT_LEAST_ONE.get(kind, ()):
        if not any(n in body for n in group):
            ctx.error(f"{kind} needs {' or '.join(group)}", line, f"{where}.{'/'.join(group)}")
            ok = False
    group1 = EXACTLY_ONE.get(kind, ())
    if sum(n in body for n in group1) > 1:
        ctx.error(f"give only one of {', '.join(group1)}", line, f"{where}.{'/'.join(group1)}")
        ok = False
    return ok


def _compile_options(
    kind: CallKind, item: dict[str, Any], ctx: _Ctx, where: str
) -> tuple[float | None, ReplayPolicy, bool, bool] | None:
    ok = True
    max_age: float | None = None
    if "max_age" in item:
        try:
            max_age = parse_duration(item["max_age"])
        except ValueError as exc:
            ctx.error(str(exc), line_of(item, "max_age"), f"{where}.max_age")
            ok = False
    on_replay: ReplayPolicy = DEFAULT_ON_REPLAY[kind]
    if "on_replay" in item:
        value = item["on_replay"]
        if value in ("send", "skip"):
            on_replay = value
        else:
            ctx.error(
                f"must be send or skip, got {value!r}",
                line_of(item, "on_replay"),
                f"{where}.on_replay",
            )
            ok = False
    coalesce = True
    if "coalesce" in item:
        value = item["coalesce"]
        if kind not in COALESCES:
            ctx.error(
                f"only {', '.join(COALESCES)} coalesce",
                line_of(item, "coalesce"),
                f"{where}.coalesce",
            )
            ok = False
        elif not isinstance(value, bool):
            ctx.error(
                f"must be true or false, got {value!r}",
                line_of(item, "coalesce"),
                f"{where}.coalesce",
            )
            ok = False
        else:
            coalesce = value
    create_contact = _create_contact(kind, item, ctx, where)
    if create_contact is None:
        return None
    return (max_age, on_replay, coalesce, create_contact) if ok else None


def _create_contact(kind: CallKind, item: dict[str, Any], ctx: _Ctx, where: str) -> bool | None:
    """The `create_contact` option: a bool, only on calls that need an existing contact."""
    if "create_contact" not in item:
        return False
    value, line = item["create_contact"], line_of(item, "create_contact")
    if kind not in WAITS_ON_404:
        ctx.error(
            f"only {', '.join(WAITS_ON_404)} create a contact",
            line,
            f"{where}.create_contact",
        )
        return None
    if not isinstance(value, bool):
        ctx.error(f"must be true or false, got {value!r}", line, f"{where}.create_contact")
        return None
    return value
