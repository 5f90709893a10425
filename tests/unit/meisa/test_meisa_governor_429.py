"""Rate governor under 429s: Retry-After pauses, at most one decrease per window, bounded recovery.

The scheduler runs on a manually advanced clock; nothing here waits except the last test, which
waits (with a generous timeout) for a 50 ms pause to end on the real clock.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.meisa.aimd import HOLD_SECONDS, RECOVERY_SECONDS
from bridge.meisa.governor import RateGovernor
from bridge.meisa.schedule import (
    GUARD_SECONDS,
    MINUTE,
    GovernorState,
    RateScheduler,
)

UPSERT = 2
WINDOW = MINUTE + GUARD_SECONDS
BOUND = HOLD_SECONDS + RECOVERY_SECONDS  # full budget again this long after the last 429


def saturated(per_minute: int, until: float, core: RateScheduler | None = None) -> RateScheduler:
    """A scheduler whose minute window was filled by a paced backlog up to `until`."""
    core = core or RateScheduler(per_minute=per_minute, per_hour=None)
    for _ in range(min(2 * per_minute, 1_000)):
        core.request(UPSERT)
    now = 0.0
    while (wake := core.grant(now)[1]) is not None and wake <= until:
        now = wake
    return core


def test_retry_after_pauses_every_call_when_the_key_is_refused_and_leaves_the_budget() -> None:
    core = RateScheduler(per_minute=60, per_hour=1000)
    assert core.on_rate_limited(10.0, 3.0) is None  # one 429: its own call waits, no one else
    assert core.on_rate_limited(10.2, 3.0) is None
    assert core.on_rate_limited(10.5, 3.0) == "retry_after"  # a run of three: the key is refused
    assert core.limits() == (60, 1000)
    core.request(UPSERT)
    assert core.grant(13.4) == ([], 13.5)
    assert core.grant(13.5)[0] != []
    assert core.limits() == (60, 1000)


def test_a_429_now_and_then_among_successes_holds_back_no_one_else() -> None:
    core = RateScheduler(per_minute=None, per_hour=None)
    paused = 0
    for step in range(5_000):  # a proxy refusing every 50th request, Retry-After: 1
        if step % 50 == 49:
            paused += core.on_rate_limited(step * 0.001, 1.0) is not None
        else:
            core.on_success()
    assert paused == 0
    assert not core.state(5.0).throttled


@given(before=st.integers(0, 40))
def test_a_run_of_429s_pauses_the_key_once_they_are_half_of_the_last_answers(
    before: int,
) -> None:
    core = RateScheduler(per_minute=None, per_hour=None)
    for _ in range(before):
        core.on_success()
    reasons = [core.on_rate_limited(1.0 + i * 0.001, 30.0) for i in range(12)]
    # the n-th 429 of the run: n >= 3 and n >= half of the last 20 answers
    needed = next(n for n in range(3, 13) if n >= 0.5 * min(before + n, 20))
    assert reasons.index("retry_after") == needed - 1
    assert core.state(2.0).throttled


def test_two_429s_in_a_row_among_successes_hold_back_only_their_calls() -> None:
    core = RateScheduler(per_minute=None, per_hour=None)
    for _ in range(30):
        core.on_success()
    assert [core.on_rate_limited(1.0, 30.0), core.on_rate_limited(1.001, 30.0)] == [None, None]
    assert not core.state(2.0).throttled


def test_429s_half_of_the_last_answers_pause_the_key_though_never_in_a_row() -> None:
    core = RateScheduler(per_minute=None, per_hour=None)
    for _ in range(20):
        core.on_success()
    reasons = []
    for step in range(40):  # 429, ok, 429, ok, ...
        if step % 2 == 0:
            reasons.append(core.on_rate_limited(step * 0.01, 30.0))
        else:
            core.on_success()
    assert reasons[:1] == [None]
    assert "retry_after" in reasons
    assert core.state(1.0).throttled


@pytest.mark.parametrize("every", [10, 5, 4])
def test_429s_spread_among_successes_never_pause_the_key(every: int) -> None:
    """A proxy refusing one request in 10, 5 or 4: each refused call waits, nobody else."""
    core = RateScheduler(per_minute=None, per_hour=None)
    reasons = []
    for step in range(400):
        if step % every == 0:
            reasons.append(core.on_rate_limited(step * 0.01, 30.0))
        else:
            core.on_success()
    assert set(reasons) == {None}
    assert not core.state(5.0).throttled


def test_retry_after_burst_from_requests_in_flight_is_one_pause() -> None:
    core = RateScheduler(per_minute=None, per_hour=None)
    reasons = [core.on_rate_limited(5.0 + i * 0.01, 1.0) for i in range(20)]
    assert [r for r in reasons if r] == ["retry_after"]  # reported once, the pause extended
    assert core.paused_until == pytest.approx(5.0 + 0.19 + 1.0)
    assert core.state(5.5) == GovernorState("retry_after", core.paused_until, None)
    assert not core.state(6.5).throttled


def test_retry_after_zero_means_go_on() -> None:
    core = RateScheduler(per_minute=60, per_hour=1000)
    assert core.on_rate_limited(1.0, 0.0) is None
    assert not core.state(1.0).throttled


def test_one_429_without_retry_after_at_full_use_does_not_shrink() -> None:
    core = saturated(60, until=120.0)
    assert core.on_rate_limited(120.0, None) is None
    assert core.limits()[0] == 60


def test_429s_that_repeat_halve_the_budget_once_per_window() -> None:
    core = saturated(60, until=120.0)
    core.on_rate_limited(120.0, None)
    assert core.on_rate_limited(121.0, None) == "repeated_429"
    assert core.limits()[0] == 30
    for i in range(50):  # the answers to requests already in flight: the same overload
        assert core.on_rate_limited(121.0 + i, None) is None
    assert core.limits()[0] == 30
    assert core.on_rate_limited(121.0 + WINDOW, None) == "repeated_429"
    assert core.limits()[0] == 15


def test_a_429_below_the_limit_proves_it_lower_and_shrinks_at_once() -> None:
    core = RateScheduler(per_minute=60, per_hour=None)
    core.request(UPSERT)
    core.grant(0.0)  # one request this minute, refused: someone else spends the key
    assert core.on_rate_limited(0.1, None) == "limit_lower"
    state = core.state(0.1)
    assert (state.reason, state.per_minute) == ("limit_lower", 30)


def test_a_burst_of_429s_without_retry_after_is_one_decrease() -> None:
    core = saturated(600, until=90.0)
    reasons = [core.on_rate_limited(90.0, None) for _ in range(100)]
    assert [r for r in reasons if r] == ["repeated_429"]
    assert core.limits()[0] == 300


@pytest.mark.parametrize("per_minute", [2, 60, 600, 60_000])
def test_sustained_throttling_shrinks_once_per_window_down_to_one_request(per_minute: int) -> None:
    core = saturated(per_minute, until=0.0)
    decreases = []
    for step in range(int(20 * WINDOW)):  # a 429 every second for twenty minutes
        if core.on_rate_limited(float(step), None):
            decreases.append(step)
    assert all(b - a >= WINDOW for a, b in itertools.pairwise(decreases))
    assert core.limits()[0] == 1


@settings(max_examples=60, deadline=None)
@given(
    per_minute=st.sampled_from([1, 5, 60, 1_000, 100_000]),
    strikes=st.lists(st.floats(0, 30), min_size=1, max_size=40),
)
def test_full_budget_within_bound_after_the_last_429_whatever_the_limit(
    per_minute: int, strikes: list[float]
) -> None:
    core = saturated(per_minute, until=0.0)
    now = 0.0
    for gap in strikes:
        now += gap
        core.on_rate_limited(now, None)
    low = core.limits()[0]
    assert low is not None
    assert core.state(now + HOLD_SECONDS).per_minute == low, "no climb while 429s may follow"
    climb = [core.state(now + HOLD_SECONDS + s).per_minute or 0 for s in range(0, 61, 5)]
    assert climb == sorted(climb), "the climb back never dips"
    full = core.state(now + BOUND + 1e-9)
    assert (full.per_minute, full.throttled) == (per_minute, False)


def test_pace_follows_the_lowered_budget_and_recovers() -> None:
    core = saturated(60, until=120.0)
    core.on_rate_limited(120.0, None)
    core.on_rate_limited(120.5, None)
    pace = core.pace()
    assert pace is not None
    assert pace[0] == pytest.approx(30 / WINDOW)
    core.state(120.5 + BOUND + 1e-9)
    pace = core.pace()
    assert pace is not None
    assert pace[0] == pytest.approx(60 / WINDOW)


def test_unlimited_key_has_no_budget_to_shrink() -> None:
    core = RateScheduler(per_minute=None, per_hour=None)
    assert [core.on_rate_limited(float(i), None) for i in range(5)] == [None] * 5
    assert not core.state(5.0).throttled


async def test_pause_is_reported_with_reason_and_end_then_the_return(
    caplog: pytest.LogCaptureFixture,
) -> None:
    states: list[GovernorState] = []
    back = asyncio.Event()

    def observe(state: GovernorState) -> None:
        states.append(state)
        if not state.throttled:
            back.set()

    governor = RateGovernor(per_minute=600, per_hour=None, observer=observe)
    with caplog.at_level(logging.INFO, logger="bridge.meisa.governor"):
        governor.on_rate_limited(0.05)  # one 429: only its own call waits
        governor.on_rate_limited(0.05)
        assert states == []
        governor.on_rate_limited(0.05)  # a run of three: the key is refused, everyone waits
        governor.on_rate_limited(0.05)  # the same pause: neither reported nor logged again
        assert [s.reason for s in states] == ["retry_after"]
        await asyncio.wait_for(back.wait(), timeout=10)
        await governor.aclose()
    assert [s.reason for s in states] == ["retry_after", None]
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2
    assert lines[0][0] == "WARNING"
    assert "429 with Retry-After: 0.05s" in lines[0][1]
    assert "UTC" in lines[0][1]
    assert lines[1] == ("INFO", "rate budget back to the full 600/min")


def test_lowered_budget_warning_says_why_and_until_when(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    states: list[GovernorState] = []
    governor = RateGovernor(
        per_minute=60, per_hour=None, clock=lambda: now[0], observer=states.append
    )
    with caplog.at_level(logging.WARNING, logger="bridge.meisa.governor"):
        governor.on_rate_limited(None)
    assert [(s.reason, s.per_minute, s.until) for s in states] == [("limit_lower", 30, BOUND)]
    (line,) = [r.getMessage() for r in caplog.records]
    assert "budget lowered to 30/min" in line
    assert "by " in line
    assert "UTC" in line
