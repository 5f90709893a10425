"""Run rule tests: each test's inputs go through the same decode and map path as `plan` (and so as
the live bridge), then the calls or outcomes are compared with what the test expects.

A failure is a list of lines, one per difference, each naming the call and the body field:
``call 1 upsert (rule signup): body.custom_fields.plan: expected 'pro', got 'trial'``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.codecs import Decoder
from bridge.meisa.calls import MeisaCall, is_stale
from bridge.rules.engine import RuleSet
from bridge.rules.plan import Mapped, coalesce_rows, map_lines
from bridge.rules.testfile import Expectation, ExpectedCall, Matcher, RuleTest

_ABSENT = object()  # a body field the call does not have


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one input came to: `calls` (sent), or no_match/decode_error/map_error/stale."""

    outcome: str
    reason: str
    calls: tuple[MeisaCall, ...]


@dataclass(frozen=True, slots=True)
class TestResult:
    test: RuleTest
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems


def run_test(test: RuleTest, rules: RuleSet, decoder: Decoder) -> TestResult:
    mapped = list(map_lines(test.lines, rules, decoder, topic=test.topic, replay=test.replay))
    outcomes = [_outcome(m, test) for m in mapped]
    expect = test.expect
    if expect.outcome is not None:
        return TestResult(test, tuple(_check_outcomes(outcomes, expect)))
    calls = _sent(outcomes, test.coalesce)
    problems = [
        f"input {i + 1}: {o.outcome}: {o.reason}"
        for i, o in enumerate(outcomes)
        if o.outcome in ("decode_error", "map_error")
    ]
    assert expect.calls is not None
    if expect.subset:
        problems += _compare_subset(expect.calls, calls)
    else:
        problems += _compare_exact(expect.calls, calls)
    return TestResult(test, tuple(problems))


def _outcome(mapped: Mapped, test: RuleTest) -> Outcome:
    if mapped.outcome is not None:
        return Outcome(mapped.outcome, mapped.reason, ())
    epoch = mapped.envelope.event_epoch() if mapped.envelope is not None else None
    now = test.now
    if test.age is not None and epoch is not None:
        now = epoch + test.age
    if now is None:
        return Outcome("calls", "", tuple(mapped.calls))
    fresh = tuple(c for c in mapped.calls if not is_stale(c, epoch, now))
    if not fresh:
        return Outcome("stale", "every call is older than its max_age", ())
    return Outcome("calls", "", fresh)


def _sent(outcomes: Sequence[Outcome], coalesce: bool) -> list[MeisaCall]:
    calls = [c for o in outcomes for c in o.calls]
    if not coalesce:
        return calls
    rows = coalesce_rows([({"offset": i}, c, None) for i, c in enumerate(calls)])
    return [call for _, call, _ in rows if call is not None]


def _check_outcomes(outcomes: Sequence[Outcome], expect: Expectation) -> Iterator[str]:
    for i, got in enumerate(outcomes):
        label = f"input {i + 1}" if len(outcomes) > 1 else "outcome"
        if got.outcome != expect.outcome:
            detail = f" ({got.reason})" if got.reason else ""
            made = f": {_summary(got.calls)}" if got.calls else ""
            yield f"{label}: expected {expect.outcome}, got {got.outcome}{detail}{made}"
        elif expect.reason is not None and not _reason_matches(expect.reason, got.reason):
            yield f"{label}: reason: expected {_show(expect.reason)}, got {got.reason!r}"


def _reason_matches(expected: Any, reason: str) -> bool:
    if isinstance(expected, Matcher):
        return expected.matches(reason, True)
    return str(expected) in reason


def _compare_exact(expected: Sequence[ExpectedCall], got: Sequence[MeisaCall]) -> list[str]:
    problems: list[str] = []
    for i in range(max(len(expected), len(got))):
        label = f"call {i + 1}"
        if i >= len(got):
            problems.append(f"{label}: expected {_describe(expected[i])}, got no call")
        elif i >= len(expected):
            problems.append(f"{label}: unexpected {_describe(got[i])} {_body(got[i])}")
        else:
            problems += _diff_call(label, expected[i], got[i], partial=False)
    return problems


def _compare_subset(expected: Sequence[ExpectedCall], got: Sequence[MeisaCall]) -> list[str]:
    """Each expected call matches a later call than the previous one did (others may interleave);
    bodies list only the fields to check."""
    problems: list[str] = []
    start = 0
    for n, want in enumerate(expected):
        label = f"expected call {n + 1}"
        found = next(
            (
                i
                for i in range(start, len(got))
                if not _diff_call(label, want, got[i], partial=True)
            ),
            None,
        )
        if found is not None:
            start = found + 1
            continue
        near = next((i for i in range(start, len(got)) if got[i].kind == want.kind), None)
        if near is None:
            problems.append(f"{label}: no {_describe(want)} among {_summary(got[start:])}")
        else:
            problems += _diff_call(f"{label} vs call {near + 1}", want, got[near], partial=True)
    return problems


def _diff_call(label: str, want: ExpectedCall, got: MeisaCall, *, partial: bool) -> list[str]:
    head = f"{label} {got.kind} (rule {got.rule})"
    if want.kind != got.kind:
        return [f"{label}: expected {_describe(want)}, got {_describe(got)} {_body(got)}"]
    problems: list[str] = []
    if want.rule is not None and want.rule != got.rule:
        problems.append(f"{head}: rule: expected {want.rule!r}, got {got.rule!r}")
    problems += (f"{head}: {d}" for d in diff_values(want.body, dict(got.body), "body", partial))
    return problems


def diff_values(want: Any, got: Any, path: str, partial: bool) -> list[str]:
    """One line per field that differs; `partial` ignores fields `want` does not list."""
    if isinstance(want, Matcher):
        present = got is not _ABSENT
        ok = want.matches(got if present else None, present)
        return [] if ok else [f"{path}: expected {want}, got {_show(got)}"]
    if got is _ABSENT:
        return [f"{path}: missing (expected {_show(want)})"]
    if isinstance(want, dict) and isinstance(got, dict):
        return _diff_mapping(want, got, path, partial)
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        lines: list[str] = []
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            lines += diff_values(w, g, f"{path}[{i}]", partial)
        return lines
    return [] if _equal(want, got) else [f"{path}: expected {_show(want)}, got {_show(got)}"]


def _diff_mapping(want: dict[str, Any], got: dict[str, Any], path: str, partial: bool) -> list[str]:
    lines: list[str] = []
    for key, value in want.items():
        lines += diff_values(value, got.get(key, _ABSENT), f"{path}.{key}", partial)
    if not partial:
        lines += (
            f"{path}.{k}: not expected (got {_show(v)})" for k, v in got.items() if k not in want
        )
    return lines


def _equal(want: Any, got: Any) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1."""
    if isinstance(want, bool) or isinstance(got, bool):
        return type(want) is type(got) and want == got
    return bool(want == got)


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "nothing"
    if isinstance(value, Matcher):
        return str(value)
    return repr(value)


def _describe(call: ExpectedCall | MeisaCall) -> str:
    rule = f" (rule {call.rule})" if call.rule else ""
    return f"{call.kind}{rule}"


def _body(call: MeisaCall) -> str:
    return repr(dict(call.body))


def _summary(calls: Sequence[MeisaCall]) -> str:
    if not calls:
        return "no calls"
    return "[" + ", ".join(_describe(c) for c in calls) + "]"
