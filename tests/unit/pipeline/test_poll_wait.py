"""How long one consume() may block: a commit waits that long for the consumer's thread."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import cast

import pytest

from bridge.meisa.governor import RateGovernor
from bridge.meisa.schedule import TICK_SECONDS
from bridge.pipeline.commit import POLL_WAIT_SECONDS, PollWait
from bridge.pipeline.offsets import OffsetTracker

SHORT = 0.01
UPSERT = 2  # a backlog's priority at the governor


@dataclass
class Tracker:
    open: bool = True  # messages in flight
    finished: bool = False  # finished work waits for a commit

    def busy(self) -> bool:
        return self.open or self.finished

    def finished_uncommitted(self) -> bool:
        return self.finished


@dataclass
class Slots:
    sending: int


@dataclass
class Rate:
    waiters: int
    grant_in: float | None

    def waiting(self) -> int:
        return self.waiters

    def next_grant_in(self) -> float | None:
        return self.grant_in


def wait(tracker: Tracker, sending: int = 0, rate: Rate | None = None) -> float:
    poll = PollWait(cast(OffsetTracker, tracker), SHORT, Slots(sending), rate)
    return poll()


def test_nothing_in_flight_blocks_long() -> None:
    assert wait(Tracker(open=False)) == POLL_WAIT_SECONDS


def test_work_in_flight_without_a_rate_limit_comes_back_for_commits() -> None:
    assert wait(Tracker()) == SHORT
    assert wait(Tracker(), sending=5, rate=Rate(0, None)) == SHORT


def test_every_slot_at_the_governor_blocks_until_its_next_grant() -> None:
    assert wait(Tracker(), sending=5, rate=Rate(5, 0.07)) == pytest.approx(0.07)
    assert wait(Tracker(), sending=5, rate=Rate(5, 3.0)) == POLL_WAIT_SECONDS, "capped"
    assert wait(Tracker(), sending=5, rate=Rate(5, 0.0)) == SHORT, "a grant now: calls follow"


@pytest.mark.parametrize(
    ("tracker", "sending", "rate"),
    [
        (Tracker(finished=True), 5, Rate(5, 0.07)),  # a commit is due
        (Tracker(), 6, Rate(5, 0.07)),  # a call on the wire (or in a retry's backoff)
        (Tracker(), 5, Rate(5, None)),  # no wake-up planned
    ],
)
def test_anything_that_may_finish_meanwhile_keeps_the_wait_short(
    tracker: Tracker, sending: int, rate: Rate
) -> None:
    assert wait(tracker, sending, rate) == SHORT


async def test_the_governor_says_when_its_waiters_are_next_granted() -> None:
    now = 0.0
    never = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await never.wait()

    governor = RateGovernor(per_minute=100_000, per_hour=None, clock=lambda: now, sleep=sleep)
    assert governor.next_grant_in() is None
    callers = [asyncio.create_task(governor.acquire(UPSERT)) for _ in range(1000)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert governor.waiting() == sum(not task.done() for task in callers) > 0
    first = governor.next_grant_in()
    assert first is not None
    assert 0.0 < first <= TICK_SECONDS
    now += first / 2
    assert governor.next_grant_in() == pytest.approx(first / 2)
    for task in callers:
        task.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    assert governor.next_grant_in() is None, "nobody waits"
    await governor.aclose()
