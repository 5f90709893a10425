"""The stall fence: after a freeze, new sends wait until the group could report a lost member."""

from __future__ import annotations

import asyncio

from bridge.pipeline.fence import StallFence


def test_a_clock_jump_past_the_stall_threshold_closes_the_fence_for_the_hold() -> None:
    fence = StallFence(stall=5.0, hold=8.0, clock=lambda: 0.0)
    for now in (0.0, 0.5, 1.0):
        fence.observe(now)
    assert not fence.holding(1.0)
    fence.observe(31.0)  # SIGSTOP for 30 s, then SIGCONT
    assert fence.stalls == 1
    assert fence.holding(31.0)
    assert fence.holding(38.9)
    assert not fence.holding(39.0)


async def test_a_call_that_wakes_from_a_freeze_before_the_ticker_notices_it_itself() -> None:
    now = [0.0]
    fence = StallFence(stall=5.0, hold=8.0, clock=lambda: now[0])
    fence.observe(0.0)
    now[0] = 30.0  # SIGCONT: this call's timer ran before the fence's tick
    waiter = asyncio.create_task(fence.wait())
    await asyncio.sleep(0)
    assert not waiter.done(), "held like the ticker would have"
    assert fence.stalls == 1
    waiter.cancel()


def test_ordinary_ticks_never_close_it() -> None:
    fence = StallFence(stall=5.0, hold=8.0, clock=lambda: 0.0)
    for n in range(100):
        fence.observe(n * 0.5)
    assert fence.stalls == 0
    assert not fence.holding(50.0)


async def test_wait_returns_once_the_hold_is_over() -> None:
    now = [0.0]
    fence = StallFence(stall=1.0, hold=0.05, clock=lambda: now[0])
    fence.observe(0.0)
    now[0] = 2.0
    fence.observe(2.0)
    assert fence.holding(2.0)
    waiter = asyncio.create_task(fence.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    now[0] = 3.0
    await asyncio.wait_for(waiter, 1)
    assert waiter.done()


def test_it_holds_while_the_caller_is_blocked_and_opens_once_it_is_not() -> None:
    blocked = [False]
    fence = StallFence(stall=5.0, hold=8.0, tick=0.5, clock=lambda: 0.0, blocked=lambda: blocked[0])
    fence.observe(0.0)
    assert not fence.holding(0.0)
    blocked[0] = True  # e.g. finished work has waited seconds for a commit
    fence.observe(0.5)
    assert fence.holding(0.5)
    assert fence.holding(1.4)
    fence.observe(1.0)
    blocked[0] = False
    fence.observe(1.5)
    assert not fence.holding(2.0)
    assert fence.stalls == 0


async def test_a_call_asks_the_blocked_predicate_itself_between_ticks() -> None:
    blocked = [True]
    fence = StallFence(tick=0.05, blocked=lambda: blocked[0])
    waiter = asyncio.create_task(fence.wait())  # no tick has run: the call asks by itself
    await asyncio.sleep(0.12)
    assert not waiter.done()
    blocked[0] = False
    await asyncio.wait_for(waiter, 1)
    assert fence.blocks == 1
