"""The rate governor's pure core grants exactly as the straightforward one (schedule_reference.py).

The core works its limits out once per AIMD factor and share, and asks each window only the
strictest of them; the reference works every limit out and asks every one of them at each call.
Both run the same random histories (callers queueing, grants, 429s with and without Retry-After,
share changes, requests made without a grant, the clock standing still or jumping minutes) and
must answer every call alike: who is granted, when to call again, the state and the limits.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schedule_reference import RateScheduler as Reference

from bridge.meisa.schedule import GUARD_SECONDS, HOUR, MINUTE, TICK_SECONDS, RateScheduler

PRIORITIES = st.integers(0, 2)
TOKENS = st.integers(1, 3)
# Whole ticks, the clock standing still, a busy loop's late wake-up, a window turning over (also
# exactly one window after a grant, when its token comes back), and AIMD's climb back
# (HOLD_SECONDS + RECOVERY_SECONDS) at arbitrary points.
WINDOWS = [MINUTE, MINUTE + GUARD_SECONDS, HOUR + GUARD_SECONDS]
STEPS = st.one_of(
    st.sampled_from([0.0, 0.0001, TICK_SECONDS, 0.03, 0.25, 1.0, 30.0, 61.0, *WINDOWS]),
    st.floats(0.0, 100.0),
)
OPS = st.one_of(
    st.tuples(st.just("request"), PRIORITIES, TOKENS, st.integers(1, 300)),
    st.tuples(st.just("grant")),
    st.tuples(st.just("drain"), st.integers(1, 400)),
    st.tuples(st.just("ready_at"), TOKENS, PRIORITIES),
    st.tuples(st.just("take"), PRIORITIES, TOKENS),
    st.tuples(st.just("cancel"), st.integers(0, 10_000)),
    st.tuples(st.just("rate_limited"), st.one_of(st.none(), st.floats(0.0, 30.0))),
    st.tuples(st.just("success")),
    st.tuples(st.just("share"), st.one_of(st.sampled_from([0.001, 0.5, 1.0]), st.floats(1e-4, 1))),
    st.tuples(st.just("record"), st.integers(0, 5000)),
    st.tuples(st.just("fill"), st.integers(0, 600)),
)
HISTORIES = st.lists(st.tuples(STEPS, OPS), max_size=60)
# (per minute, per hour): the four key sizes the governor is measured at, with no hourly limit,
# Meisa's usual 60 minutes' worth, and an hour that runs out within minutes; then the odd keys.
LIMITS = [
    (per_minute, per_hour)
    for per_minute in (60, 3_000, 100_000, 1_000_000)
    for per_hour in (None, 60 * per_minute, 2 * per_minute)
] + [(None, 3_000), (None, None)]


def run(core: Any, history: list[tuple[float, tuple[Any, ...]]]) -> list[Any]:
    """Play `history` on `core`; what every call answered, and what the core says after it."""
    now, seqs, answers = 0.0, [], []
    for step, (op, *args) in history:
        now += step
        if op == "request":
            priority, tokens, count = args
            answer: Any = [core.request(priority, tokens) for _ in range(count)]
            seqs.extend(answer)
        elif op == "grant":
            answer = core.grant(now)
        elif op == "drain":  # as the governor's waker: call again when told, a tick apart
            answer = []
            for _ in range(args[0]):
                granted, at = core.grant(now)
                answer.append((now, granted, at))
                if at is None:
                    break
                now = max(at, now + TICK_SECONDS)
        elif op == "ready_at":
            answer = core.ready_at(now, *args)
        elif op == "take":
            answer = core.take(now, *args)
        elif op == "cancel":
            answer = core.cancel(seqs[args[0] % len(seqs)]) if seqs else None
        elif op == "rate_limited":
            answer = core.on_rate_limited(now, args[0])
        elif op == "success":
            answer = core.on_success()
        elif op == "share":
            answer = core.set_share(args[0])
        elif op == "record":
            answer = core.record(now, args[0])
        else:  # the first window filled to `args[0]` short of its limit: where limits differ
            limit = next((limit for limit in core.limits() if limit is not None), None)
            if limit is not None:
                core.record(now, max(0, limit - core.windows[0].used(now) - args[0]))
            answer = None
        answers.append((op, answer))
        answers.append((core.state(now), core.limits(), core.pace(), core.waiting()))
        answers.append([core.allowances(priority) for priority in (0, 1, 2)])
    return answers


@pytest.mark.parametrize(("per_minute", "per_hour"), LIMITS)
@settings(max_examples=60)
@given(
    history=HISTORIES,
    share=st.sampled_from([1.0, 0.3]),
    guard=st.sampled_from([GUARD_SECONDS, 0.0]),
)
def test_the_core_grants_as_the_reference(
    per_minute: int | None,
    per_hour: int | None,
    history: list[tuple[float, tuple[Any, ...]]],
    share: float,
    guard: float,
) -> None:
    keys = {"per_minute": per_minute, "per_hour": per_hour, "share": share, "guard_seconds": guard}
    assert run(RateScheduler(**keys), history) == run(Reference(**keys), history)


@pytest.mark.parametrize("per_minute", [60, 3_000, 100_000, 1_000_000])
def test_a_backlog_behind_429s_is_granted_as_by_the_reference(per_minute: int) -> None:
    """A backlog through a halving and the whole climb back, 3 s apart: the factor changes
    with every tick, and the limits with it."""
    history: list[tuple[float, tuple[Any, ...]]] = [
        (0.0, ("request", 2, 1, 300)),
        (0.0, ("request", 0, 1, 5)),
        (0.0, ("drain", 300)),
        (0.0, ("rate_limited", None)),
        (0.001, ("rate_limited", None)),
        (0.0, ("request", 1, 2, 300)),
    ] + [(0.0, ("drain", 600)), (3.0, ("request", 2, 1, 300))] * 32
    keys = {"per_minute": per_minute, "per_hour": 60 * per_minute}
    assert run(RateScheduler(**keys), history) == run(Reference(**keys), history)
