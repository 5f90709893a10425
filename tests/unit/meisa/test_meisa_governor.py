"""Rate governor: budgets never exceeded, strict priority, pacing, the hour reserve.

The pure scheduler is driven by a manually advanced clock; the async wrapper by a fake sleep that
advances a fake clock (virtual time), so nothing here really waits.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.meisa.governor import RateGovernor
from bridge.meisa.models import PingInfo
from bridge.meisa.schedule import (
    BACKLOG_SLACK_SECONDS,
    GUARD_SECONDS,
    HOUR,
    MINUTE,
    TRIGGER_HOUR_RESERVE,
    RateScheduler,
)
from bridge.settings import MeisaSettings

TRIGGER, TRACK, UPSERT = 0, 1, 2


@dataclass
class Sim:
    """Drives a RateScheduler like the async pump does, recording every grant."""

    core: RateScheduler
    now: float = 0.0
    grants: list[tuple[float, int, int]] = field(default_factory=list)  # (time, seq, tokens)
    asked: dict[int, tuple[int, int]] = field(default_factory=dict)  # seq -> (priority, tokens)
    wake: float | None = None

    def pump(self, until: float) -> None:
        """Grant everything the budget allows up to `until`, stepping through wake-ups."""
        while True:
            waiting = sorted((p, s) for s, (p, _) in self.asked.items() if s in self.pending())
            granted, self.wake = self.core.grant(self.now)
            assert [s for _, s in waiting[: len(granted)]] == granted, "served out of order"
            self.grants.extend((self.now, s, self.asked[s][1]) for s in granted)
            if self.wake is None or self.wake > until:
                self.now = until
                return
            self.now = self.wake

    def pending(self) -> set[int]:
        done = {s for _, s, _ in self.grants}
        return {s for s in self.asked if s not in done and s in self.core._waiters}

    def request(self, priority: int, tokens: int = 1) -> int:
        seq = self.core.request(priority, tokens)
        self.asked[seq] = (priority, tokens)
        return seq


def spent_in_window(grants: list[tuple[float, int, int]], end: float, length: float) -> int:
    return sum(tokens for t, _, tokens in grants if end - length < t <= end)


actions = st.one_of(
    st.tuples(st.just("request"), st.integers(0, 2), st.integers(1, 2)),
    st.tuples(st.just("limited"), st.one_of(st.none(), st.floats(0, 120)), st.just(0)),
    st.tuples(st.just("success"), st.just(0), st.just(0)),
    st.tuples(st.just("cancel"), st.integers(0, 50), st.just(0)),
)


@settings(max_examples=200, deadline=None)
@given(
    per_minute=st.integers(6, 12),  # every budget >= 2: a 2-request call always fits
    per_hour=st.integers(6, 40),
    share=st.sampled_from([1.0, 0.5, 1 / 3]),
    steps=st.lists(st.tuples(st.floats(0, 90), actions), max_size=80),
)
def test_budget_is_never_exceeded_in_any_window(
    per_minute: int, per_hour: int, share: float, steps: list[tuple[float, tuple[str, object, int]]]
) -> None:
    sim = Sim(RateScheduler(per_minute=per_minute, per_hour=per_hour, share=share))
    for dt, (kind, arg, tokens) in steps:
        sim.pump(sim.now + dt)
        if kind == "request":
            sim.request(int(arg), tokens)  # type: ignore[call-overload]
        elif kind == "limited":
            sim.core.on_rate_limited(sim.now, arg)  # type: ignore[arg-type]
        elif kind == "success":
            sim.core.on_success()
        elif kind == "cancel" and sim.pending():
            pending = sorted(sim.pending())
            sim.core.cancel(pending[int(arg) % len(pending)])  # type: ignore[call-overload]
    sim.pump(sim.now + 10 * HOUR)
    assert sim.pending() == set(), "a waiter was never served"
    minute_budget = max(1, math.floor(per_minute * share))
    hour_budget = max(1, math.floor(per_hour * share))
    for t, _, _ in sim.grants:
        assert spent_in_window(sim.grants, t, MINUTE) <= minute_budget
        assert spent_in_window(sim.grants, t, HOUR) <= hour_budget


@given(upserts=st.integers(1, 30), budget=st.integers(1, 10))
def test_waiting_trigger_overtakes_waiting_upserts(upserts: int, budget: int) -> None:
    sim = Sim(RateScheduler(per_minute=budget, per_hour=10_000))
    early = [sim.request(UPSERT) for _ in range(budget)]
    sim.pump(0.0)
    first = [seq for _, seq, _ in sim.grants]
    assert first, "the first upsert goes at once"
    assert first == early[: len(first)], "the rest are paced"
    queued = [sim.request(UPSERT) for _ in range(upserts)]
    track = sim.request(TRACK)
    trigger = sim.request(TRIGGER)
    sim.pump(10 * HOUR)
    order = [seq for _, seq, _ in sim.grants][len(first) :]
    assert order[:2] == [trigger, track]
    assert order[2:] == early[len(first) :] + queued


def test_rate_limit_pauses_everyone_until_retry_after_has_run() -> None:
    sim = Sim(RateScheduler(per_minute=60, per_hour=1000))
    for _ in range(3):  # a run of 429s: the key, not one request, is refused
        sim.core.on_rate_limited(0.0, 30.0)
    sim.request(TRIGGER)
    sim.pump(29.9)
    assert sim.grants == []
    sim.pump(40.0)
    assert sim.grants[0][0] == 30.0


def test_share_splits_the_key_budget() -> None:
    core = RateScheduler(per_minute=60, per_hour=1000, share=0.25)
    assert core.limits() == (15, 250)


def test_from_ping_uses_key_limits_unless_overridden() -> None:
    info = PingInfo(rate_limit_per_minute=120, rate_limit_per_hour=5000)
    plain = RateGovernor.from_ping(info, MeisaSettings())
    assert plain.core.limits() == (120, 5000)
    tuned = RateGovernor.from_ping(info, MeisaSettings(rate_limit_per_minute=30, rate_share=0.5))
    assert tuned.core.limits() == (15, 2500)


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        # Let the tasks woken so far run at the current instant before time jumps.
        for _ in range(5):
            await asyncio.sleep(0)
        self.now += seconds


async def test_async_governor_paces_and_serves_trigger_first() -> None:
    vt = VirtualTime()
    governor = RateGovernor(per_minute=3, per_hour=1000, clock=vt.clock, sleep=vt.sleep)
    interval = (MINUTE + GUARD_SECONDS) / 3
    done: list[tuple[str, float]] = []

    async def go(name: str, priority: int) -> float:
        waited = await governor.acquire(priority)
        done.append((name, vt.now))
        return waited

    upserts = [asyncio.create_task(go(f"u{i}", UPSERT)) for i in range(7)]
    await asyncio.sleep(0)
    trigger = asyncio.create_task(go("otp", TRIGGER))
    await asyncio.gather(*upserts, trigger)
    names = [n for n, _ in done]
    assert names == ["u0", "otp"] + [f"u{i}" for i in range(1, 7)]
    times = [t for _, t in done]
    for t in times:
        assert sum(1 for s in times if t - MINUTE - 0.5 < s <= t) <= 3
    # Paced, not burst: the trigger takes the next token instead of waiting out the minute.
    assert trigger.result() == pytest.approx(interval)
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([interval] * 7)
    await governor.aclose()


async def test_cancelled_waiter_leaves_the_queue() -> None:
    vt = VirtualTime()
    governor = RateGovernor(per_minute=1, per_hour=1000, clock=vt.clock, sleep=vt.sleep)
    assert await governor.acquire(UPSERT) == 0.0
    waiting = asyncio.create_task(governor.acquire(UPSERT))
    await asyncio.sleep(0)
    assert governor.core.waiting() == 1
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert governor.core.waiting() == 0
    await governor.aclose()


def test_key_without_limits_is_not_paced_but_still_paused_on_429() -> None:
    sim = Sim(RateScheduler(per_minute=None, per_hour=None))
    for _ in range(500):
        sim.request(UPSERT)
    sim.pump(0.0)
    assert len(sim.grants) == 500
    for _ in range(3):
        sim.core.on_rate_limited(0.0, 5.0)
    sim.request(TRIGGER)
    sim.pump(4.0)
    assert len(sim.grants) == 500
    sim.pump(6.0)
    assert len(sim.grants) == 501


def test_ping_null_limit_means_unlimited_and_absent_means_spec_default() -> None:
    info = PingInfo.from_json({"api_key": {"rate_limit_per_minute": None}})
    assert (info.rate_limit_per_minute, info.rate_limit_per_hour) == (None, 1000)


# -- pacing ------------------------------------------------------------------------------------


@dataclass
class Driver:
    """A lighter Sim for long runs: grants in time order, no per-step bookkeeping."""

    core: RateScheduler
    now: float = 0.0
    wake: float | None = None
    granted: dict[int, float] = field(default_factory=dict)  # seq -> grant time

    def run(self, until: float) -> None:
        while True:
            seqs, self.wake = self.core.grant(self.now)
            self.granted.update((s, self.now) for s in seqs)
            if self.wake is None or self.wake > until:
                self.now = max(self.now, until)
                return
            self.now = self.wake

    def until_granted(self, seq: int) -> float:
        while seq not in self.granted:
            assert self.wake is not None, "nothing left to wait for"
            self.run(self.wake)
        return self.granted[seq]


def interval_of(core: RateScheduler) -> float:
    pace = core.pace()
    assert pace is not None
    return 1.0 / pace[0]


@settings(max_examples=150, deadline=None)
@given(
    per_minute=st.integers(1, 600),
    share=st.sampled_from([1.0, 0.5, 1 / 3]),
    hourly=st.sampled_from([None, 1_000_000]),
    arrivals=st.lists(st.floats(0, 300), min_size=1, max_size=6),
)
def test_trigger_behind_an_upsert_backlog_waits_at_most_one_token_interval(
    per_minute: int, share: float, hourly: int | None, arrivals: list[float]
) -> None:
    drive = Driver(RateScheduler(per_minute=per_minute, per_hour=hourly, share=share))
    interval = interval_of(drive.core)
    for _ in range(math.ceil(sum(arrivals) / interval) + 20):  # still waiting at the end
        drive.core.request(UPSERT)
    for gap in arrivals:  # each trigger arrives `gap` seconds after the previous was served
        arrived = drive.now + gap
        drive.run(arrived)
        trigger = drive.core.request(TRIGGER)
        assert drive.until_granted(trigger) - arrived <= interval + 1e-6
    assert drive.core.waiting() > 0, "the backlog lasted the whole test"


@pytest.mark.parametrize("per_minute", [1, 7, 60, 600])
def test_pacing_spends_the_whole_budget_over_ten_minutes_of_saturation(per_minute: int) -> None:
    drive = Driver(RateScheduler(per_minute=per_minute, per_hour=None))
    for i in range(12 * per_minute):
        drive.core.request(TRIGGER if i % 10 == 0 else UPSERT)
    drive.run(10 * MINUTE)
    times = sorted(drive.granted.values())
    # The sliding window gives back a token MINUTE + GUARD_SECONDS after it was spent, so that is
    # the most any schedule can send; pacing loses nothing to it.
    most = 10 * MINUTE / (MINUTE + GUARD_SECONDS) * per_minute
    # ... but the room a backlog leaves for triggers in each window (BACKLOG_SLACK_SECONDS).
    room = max(1, math.floor(BACKLOG_SLACK_SECONDS / interval_of(drive.core))) - 1
    assert math.floor(most) - 10 * room <= len(times) <= 10 * per_minute
    assert drive.core.waiting() > 0
    for t in times:  # and never above the budget in any minute
        assert sum(1 for s in times if t - MINUTE < s <= t) <= per_minute


def test_upserts_are_paced_and_triggers_may_spend_the_burst() -> None:
    drive = Driver(RateScheduler(per_minute=600, per_hour=None))
    interval = interval_of(drive.core)
    upserts = [drive.core.request(UPSERT) for _ in range(1000)]
    drive.run(10.0)
    times = [drive.granted[s] for s in upserts if s in drive.granted]
    # The top BACKLOG_SLACK_SECONDS of the bucket at once (whole tokens), then one per interval.
    slack = max(1, math.floor(BACKLOG_SLACK_SECONDS / interval))
    assert times.count(0.0) == slack
    assert len(times) == slack + math.floor(10.0 / interval)
    gaps = [b - a for a, b in itertools.pairwise(times[slack - 1 :])]
    assert gaps == pytest.approx([interval] * len(gaps))
    triggers = [drive.core.request(TRIGGER) for _ in range(5)]
    drive.run(10.0)
    assert [drive.granted.get(s) for s in triggers] == [10.0] * 5, "a few OTPs go at once"


def test_hour_reserve_keeps_room_for_triggers_after_a_backlog_spent_the_hour() -> None:
    per_hour = 20
    kept = math.floor(per_hour * (1 - TRIGGER_HOUR_RESERVE))
    drive = Driver(RateScheduler(per_minute=60, per_hour=per_hour))
    upserts = [drive.core.request(UPSERT) for _ in range(50)]
    track = drive.core.request(TRACK)
    drive.run(10 * MINUTE)
    assert sum(1 for s in upserts if s in drive.granted) == kept - 1  # the track came first
    assert track in drive.granted
    triggers = [drive.core.request(TRIGGER) for _ in range(per_hour - kept + 1)]
    drive.run(10 * MINUTE + 5.0)
    served = [s for s in triggers if s in drive.granted]
    assert served == triggers[:-1], "triggers use the reserve; then the hour is spent"
    assert drive.until_granted(triggers[-1]) >= HOUR


def test_a_new_share_resizes_both_windows_and_keeps_the_aimd_state() -> None:
    core = RateScheduler(per_minute=60, per_hour=1000, share=1.0)
    core.set_share(0.25)
    assert core.limits() == (15, 250)
    core.set_share(0.0)  # owns no partition: one request per window, never zero
    assert core.limits() == (1, 1)
    core.set_share(1.0)
    assert core.limits() == (60, 1000)


async def test_a_larger_share_lets_a_waiting_caller_go_sooner() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(0)
        now[0] += max(seconds, 0.001)

    governor = RateGovernor(
        per_minute=60, per_hour=None, share=1 / 60, clock=lambda: now[0], sleep=sleep
    )
    assert await governor.acquire(UPSERT) == 0.0  # the only token of a 1/min share
    waiter = asyncio.create_task(governor.acquire(UPSERT))
    await asyncio.sleep(0)
    governor.set_share(1.0)  # a scale-in: this replica now owns every partition
    waited = await asyncio.wait_for(waiter, 5)
    assert waited < 5.0  # at the full pace (1 per second), not the old one (1 per minute)
    await governor.aclose()


def test_take_grants_a_lone_caller_at_once_and_never_jumps_the_queue() -> None:
    core = RateScheduler(per_minute=2, per_hour=1000, guard_seconds=0.0)
    assert core.take(0.0, TRIGGER)  # nobody waits, the budget allows: no queueing
    assert core.windows[0].used(0.0) == 1
    seq = core.request(UPSERT)  # an upsert waits for the pacing bucket to fill again
    assert core.grant(0.0)[0] == []
    assert not core.take(100.0, TRIGGER), "a caller arriving later queues behind the waiter"
    assert core.grant(100.0)[0] == [seq]
    unlimited = RateScheduler(per_minute=None, per_hour=None)
    for _ in range(3):
        unlimited.on_rate_limited(0.0, retry_after=5.0)  # the key is refused: everyone pauses
    assert not unlimited.take(1.0, TRIGGER)
    assert unlimited.take(5.0, TRIGGER)
