"""Pacing spends the whole key at any advertised limit: tokens per tick, not one timer per call.

The async governor runs on virtual time: its sleep advances a fake clock, so nothing here really
waits. Like a real event loop's timers, a sleep lasts a whole number of milliseconds (libuv's
resolution), and `late` makes every wake-up come that much later still (a busy event loop).
"""

from __future__ import annotations

import asyncio
import itertools
import math
from dataclasses import dataclass, field

import pytest

from bridge.meisa.governor import RateGovernor
from bridge.meisa.schedule import (
    GUARD_SECONDS,
    MINUTE,
    TICK_SECONDS,
    TRIGGER_HOUR_RESERVE,
    RateScheduler,
)

TRIGGER, UPSERT = 0, 2
LANES = 64  # callers waiting at once, as the pipeline's max_in_flight
RESOLUTION = 0.001  # uvloop's timers fire on whole milliseconds


@dataclass
class VirtualLoop:
    late: float = 0.0  # every wake-up comes this much after the time asked for
    now: float = 0.0
    asleep: list[float] = field(default_factory=list)  # when each sleep began
    alarm: tuple[float, asyncio.Event] | None = None  # set once the clock passes its time

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        for _ in range(3):  # the callers woken so far run at this instant
            await asyncio.sleep(0)
        self.asleep.append(self.now)
        self.now += math.ceil(seconds / RESOLUTION - 1e-9) * RESOLUTION + self.late
        if self.alarm is not None and self.now >= self.alarm[0]:
            self.alarm[1].set()


@dataclass
class Backlog:
    """`LANES` callers that acquire again as soon as they are granted, until `until`."""

    governor: RateGovernor
    loop: VirtualLoop
    until: float
    lanes: int = LANES
    times: list[float] = field(default_factory=list)

    async def lane(self) -> None:
        while self.loop.now < self.until:
            await self.governor.acquire(UPSERT)
            if self.loop.now < self.until:
                self.times.append(self.loop.now)

    async def run(self) -> list[float]:
        await asyncio.gather(*(self.lane() for _ in range(self.lanes)))
        await self.governor.aclose()
        return self.times


async def paced(
    per_minute: int, seconds: float, late: float = 0.0, lanes: int = LANES
) -> tuple[list[float], int]:
    loop = VirtualLoop(late=late)
    governor = RateGovernor(
        per_minute=per_minute, per_hour=None, clock=loop.clock, sleep=loop.sleep
    )
    times = await Backlog(governor, loop, seconds, lanes).run()
    return times, sum(1 for t in loop.asleep if t < seconds)  # sleeps within the run


def most_in_a_window(times: list[float], length: float) -> int:
    most, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - length:
            start += 1
        most = max(most, end - start + 1)
    return most


# Virtual seconds per limit: two minutes and more where a window turns within the test,
# a few seconds at the large keys (tens of thousands of grants).
RUNS = [(60, 5 * MINUTE), (3_000, 2.5 * MINUTE), (100_000, 6.0), (1_000_000, 2.0)]


@pytest.mark.parametrize(("per_minute", "seconds"), RUNS)
async def test_a_backlog_spends_at_least_95_percent_of_the_key(
    per_minute: int, seconds: float
) -> None:
    times, _ = await paced(per_minute, seconds)
    assert len(times) >= 0.95 * per_minute / MINUTE * seconds
    assert most_in_a_window(times, MINUTE) <= per_minute


@pytest.mark.parametrize(("per_minute", "seconds"), RUNS)
async def test_a_busy_loop_waking_30_ms_late_still_spends_95_percent(
    per_minute: int, seconds: float
) -> None:
    times, _ = await paced(per_minute, seconds, late=0.03)
    assert len(times) >= 0.95 * per_minute / MINUTE * seconds
    assert most_in_a_window(times, MINUTE) <= per_minute


@pytest.mark.parametrize(("per_minute", "least"), [(100_000, 8), (1_000_000, 80)])
async def test_each_wake_up_hands_out_a_tick_of_tokens_not_one(per_minute: int, least: int) -> None:
    # More callers than a tick's tokens (83 at 1,000,000/min), so every tick finds takers.
    times, sleeps = await paced(per_minute, 2.0, lanes=200)
    assert sleeps <= 2.2 * 2.0 / TICK_SECONDS  # a tick's wake-up, and one when its takers are done
    assert len(times) / sleeps >= least


async def test_a_small_key_still_gets_one_wake_up_per_token() -> None:
    times, sleeps = await paced(60, 2 * MINUTE)
    assert sleeps == pytest.approx(len(times), abs=2)
    interval = (MINUTE + GUARD_SECONDS) / 60
    for a, b in itertools.pairwise(times):  # evenly paced, no burst
        assert interval - 1e-9 <= b - a <= interval + RESOLUTION


async def test_a_trigger_behind_a_large_backlog_goes_at_once() -> None:
    halfway = asyncio.Event()
    loop = VirtualLoop(alarm=(0.5, halfway))
    governor = RateGovernor(per_minute=1_000_000, per_hour=None, clock=loop.clock, sleep=loop.sleep)
    backlog = Backlog(governor, loop, until=1.0)
    lanes = asyncio.gather(*(backlog.lane() for _ in range(LANES)))
    await halfway.wait()
    assert len(backlog.times) >= 0.95 * 0.5 * 1_000_000 / MINUTE, "the backlog spends the key"
    assert await governor.acquire(TRIGGER) == 0.0
    await lanes
    await governor.aclose()


async def test_between_ticks_a_newcomer_joins_the_waiters_and_a_trigger_goes_at_once() -> None:
    now = 0.0
    tick = asyncio.Event()  # never set: the governor's wake-up does not come within this test

    async def sleep(seconds: float) -> None:
        await tick.wait()

    governor = RateGovernor(per_minute=100_000, per_hour=None, clock=lambda: now, sleep=sleep)
    backlog = [asyncio.create_task(governor.acquire(UPSERT)) for _ in range(1000)]
    for _ in range(3):
        await asyncio.sleep(0)
    granted = sum(task.done() for task in backlog)
    assert 0 < granted < len(backlog), "the bucket's top went at once, the rest wait"
    now += TICK_SECONDS / 2  # 83 tokens earned since
    newcomer = asyncio.create_task(governor.acquire(UPSERT))
    for _ in range(3):
        await asyncio.sleep(0)
    assert sum(task.done() for task in backlog) == granted, "nobody goes between two ticks"
    assert not newcomer.done()
    assert await governor.acquire(TRIGGER) == 0.0
    for task in [*backlog, newcomer]:
        task.cancel()
    await asyncio.gather(*backlog, newcomer, return_exceptions=True)
    await governor.aclose()


def test_tick_pacing_keeps_the_hour_reserve_for_triggers() -> None:
    per_hour = 100_000  # a 100,000/min key spends its backlog share of the hour in a minute
    core = RateScheduler(per_minute=100_000, per_hour=per_hour)
    now, backlog = 0.0, 0
    for _ in range(per_hour):
        core.request(UPSERT)
    while True:
        granted, at = core.grant(now)
        backlog += len(granted)
        if at is None or at > 2 * MINUTE:  # the backlog waits for the hour to turn
            break
        now = max(at, now + TICK_SECONDS)
    assert backlog == math.floor(per_hour * (1 - TRIGGER_HOUR_RESERVE))
    trigger = core.request(TRIGGER)
    assert core.grant(now)[0] == [trigger], "the reserve is still there for a trigger"


def test_window_buckets_never_give_a_token_back_early() -> None:
    core = RateScheduler(per_minute=10, per_hour=None, guard_seconds=0.0)
    for at in (0.0, 0.001, 0.002):  # three grants inside one bucket of the minute's log
        core.record(at)
    window = core.windows[0]
    assert window.used(MINUTE + 0.001) == 3, "the bucket expires with its last grant"
    assert window.used(MINUTE + 0.002) == 0


@pytest.mark.parametrize("per_minute", [100_000, 1_000_000])
async def test_a_large_key_loses_nothing_to_a_loop_a_fifth_of_a_second_late(
    per_minute: int,
) -> None:
    times, _ = await paced(per_minute, 3.0, late=0.2, lanes=1000)
    assert len(times) >= 0.95 * per_minute / MINUTE * 3.0
