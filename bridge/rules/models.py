"""Compiled rules: frozen values built once at load, evaluated per event."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import EvaluationError, FieldValueError, MappingError
from bridge.events import Envelope
from bridge.meisa.calls import COALESCES, KINDS, CallKind, MeisaCall, ReplayPolicy, contact_key
from bridge.rules.expressions import Compiled, Getter, truthy
from bridge.rules.fields import AT_LEAST_ONE, FieldSpec

# Longer default idempotency keys (very long event ids) are replaced by a digest.
MAX_IDEMPOTENCY_KEY = 200


def _as_string(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # numeric user ids are common; Meisa wants strings
    raise FieldValueError(f"expected a string, got {type(value).__name__}")


def _as_object(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FieldValueError(f"expected an object, got {type(value).__name__}")
    kept = {k: v for k, v in value.items() if v is not None}
    return kept or None


def _as_string_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise FieldValueError(f"expected a list of strings, got {type(value).__name__}")
    items = [s for s in (_as_string(v) for v in value) if s is not None]
    return items or None


def _as_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise FieldValueError(f"expected true or false, got {value!r}")


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "string": _as_string,
    "object": _as_object,
    "string_list": _as_string_list,
    "bool": _as_bool,
}


def checker(spec: FieldSpec) -> Callable[[Any], Any]:
    """The normaliser for one field: None means "leave the field out". Raises FieldValueError."""
    convert = _CONVERT[spec.type]
    if not spec.choices and not spec.required:
        return convert  # the common case pays for one call only

    def check(value: Any) -> Any:
        out = convert(value)
        if out is not None and spec.choices and out not in spec.choices:
            raise FieldValueError(f"{out!r} is not one of {', '.join(spec.choices)}")
        if out is None and spec.required:
            raise FieldValueError("required, but the value is null or empty")
        return out

    return check


def check_value(spec: FieldSpec, value: Any) -> Any:
    """Normalise one field value; None means "leave the field out". Raises FieldValueError."""
    return checker(spec)(value)


@dataclass(frozen=True, slots=True)
class BodyField:
    """One body field. `make(ctx)` is its value for one event, checked: the value's getter and
    the field's check fused once at load, so the common shapes cost one call per event."""

    name: str
    spec: FieldSpec
    value: Compiled
    check: Callable[[Any], Any] = field(init=False, repr=False, compare=False)
    make: Getter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check = checker(self.spec)
        object.__setattr__(self, "check", check)
        object.__setattr__(self, "make", _fused(self.value, self.spec, check))


def _fused(value: Compiled, spec: FieldSpec, check: Callable[[Any], Any]) -> Getter:
    """`check(value.evaluate(ctx))`, specialised where that can skip work per event."""
    evaluate = value.evaluate
    if value.is_constant and not isinstance(value.source, dict | list):
        try:
            fixed = check(value.source)
        except FieldValueError:
            pass  # reported per event, as for any other bad value
        else:
            return lambda _ctx: fixed
    if spec.type == "string" and value.path is not None and len(value.path) == 2:
        return _string_at(value.path, frozenset(spec.choices), check)
    if spec.type == "string":
        choices = frozenset(spec.choices)

        def make_string(ctx: dict[str, Any]) -> Any:
            got = evaluate(ctx)
            # A non-empty string (among the choices, if any) is what every check returns as is.
            if type(got) is str and got and (not choices or got in choices):
                return got
            return check(got)

        return make_string
    pairs = value.items
    if check is _as_object and pairs is not None and len({k for k, _ in pairs}) == len(pairs):

        def make_object(ctx: dict[str, Any]) -> dict[str, Any] | None:
            # _as_object over the built mapping, without building the nulls first.
            return {k: got for k, get in pairs if (got := get(ctx)) is not None} or None

        return make_object
    return lambda ctx: check(evaluate(ctx))


def _string_at(
    path: tuple[str, ...], choices: frozenset[str], check: Callable[[Any], Any]
) -> Getter:
    """A string field whose value is `{{ a.b }}` (most are `data.x`): the read is inlined."""
    first, second = path

    def make(ctx: dict[str, Any]) -> Any:
        cur = ctx.get(first)
        got = cur.get(second) if type(cur) is dict else None
        if type(got) is str and got and (not choices or got in choices):
            return got
        return check(got)

    return make


@dataclass(frozen=True, slots=True)
class Action:
    """One `do:` item. `index` is its position in the rule (0-based)."""

    kind: CallKind
    index: int
    fields: tuple[BodyField, ...]
    when: Getter | None = None
    max_age: float | None = None
    on_replay: ReplayPolicy = "send"
    coalesce: bool = True
    create_contact: bool = False  # on a 404, upsert a minimal contact and send again
    line: int = 0
    # Per-event constants, worked out once here rather than looked up for every event.
    _steps: tuple[tuple[str, Getter], ...] = field(init=False, repr=False, compare=False)
    _groups: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)
    _idempotent: bool = field(init=False, repr=False, compare=False)
    _coalesces: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_steps", tuple((f.name, f.make) for f in self.fields))
        object.__setattr__(self, "_groups", AT_LEAST_ONE.get(self.kind, ()))
        object.__setattr__(self, "_idempotent", KINDS[self.kind].idempotent)
        object.__setattr__(self, "_coalesces", self.kind in COALESCES and self.coalesce)

    def build(self, rule: str, envelope: Envelope, ctx: dict[str, Any]) -> MeisaCall:
        body: dict[str, Any] = {}
        name = ""
        try:
            for name, make in self._steps:
                value = make(ctx)
                if value is not None:
                    body[name] = value
        except (FieldValueError, EvaluationError) as exc:
            raise self._error(rule, name, str(exc)) from None
        for group in self._groups:
            if not any(member in body for member in group):
                raise self._error(rule, "/".join(group), "all of these are null or empty")
        if self._idempotent and "idempotency_key" not in body:
            body["idempotency_key"] = default_idempotency_key(envelope, rule, self.index)
        return MeisaCall(
            kind=self.kind,
            body=body,
            contact_key=contact_key(body),
            rule=rule,
            action=self.index,
            max_age=self.max_age,
            on_replay=self.on_replay,
            coalesce=self._coalesces,
            create_contact=self.create_contact,
        )

    def _error(self, rule: str, field: str, message: str) -> MappingError:
        return MappingError(
            f"rule '{rule}' action {self.index} ({self.kind}): {field}: {message}",
            rule=rule,
            action=self.index,
            field=field,
        )


def default_idempotency_key(envelope: Envelope, rule: str, index: int) -> str:
    """`<event id or topic/partition/offset>:<rule>:<action index>`, stable across replays."""
    key = f"{envelope.id or envelope.origin}:{rule}:{index}"
    if len(key) <= MAX_IDEMPOTENCY_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Matcher:
    """`on:` compiled: event types and topics, exact names or shell-style globs (`user.*`)."""

    types: frozenset[str] = frozenset()
    type_globs: tuple[re.Pattern[str], ...] = ()
    topics: frozenset[str] = frozenset()
    topic_globs: tuple[re.Pattern[str], ...] = ()

    def matches(self, event_type: str | None, topic: str) -> bool:
        if (self.types or self.type_globs) and not _hit(event_type, self.types, self.type_globs):
            return False
        return not (self.topics or self.topic_globs) or _hit(topic, self.topics, self.topic_globs)


def _hit(value: str | None, exact: frozenset[str], globs: tuple[re.Pattern[str], ...]) -> bool:
    if value is None:
        return False
    return value in exact or any(g.match(value) for g in globs)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    on: Matcher
    actions: tuple[Action, ...]
    when: Getter | None = None
    line: int = 0

    def applies(self, ctx: dict[str, Any]) -> bool:
        if self.when is None:
            return True
        try:
            return truthy(self.when(ctx))
        except EvaluationError as exc:
            raise MappingError(f"rule '{self.name}': when: {exc}", rule=self.name) from None
