"""Slots (bridge.pipeline.lanes): at most `limit` holders, waiters served in arrival order, and a
waiter cancelled before or just after it was handed a slot never loses one."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.pipeline.inflight import InFlightLimit
from bridge.pipeline.lanes import Slots


async def _hold(slots: Slots, name: int, order: list[int], release: asyncio.Event) -> None:
    async with slots:
        order.append(name)
        await release.wait()


async def test_waiters_get_freed_slots_in_the_order_they_came() -> None:
    slots, order, release = Slots(2), [], asyncio.Event()
    tasks = [asyncio.create_task(_hold(slots, n, order, release)) for n in range(6)]
    await asyncio.sleep(0)
    assert (order, slots.held) == ([0, 1], 2)
    release.set()
    await asyncio.gather(*tasks)
    assert (order, slots.held) == ([0, 1, 2, 3, 4, 5], 0)


async def test_a_waiter_cancelled_after_it_was_handed_a_slot_passes_it_on() -> None:
    slots, order, release = Slots(1), [], asyncio.Event()
    await slots.__aenter__()
    second = asyncio.create_task(_hold(slots, 1, order, release))
    third = asyncio.create_task(_hold(slots, 2, order, release))
    await asyncio.sleep(0)  # both wait
    await slots.__aexit__(None, None, None)  # hands the slot to `second`, which has not run yet
    second.cancel()
    release.set()
    await asyncio.gather(second, third, return_exceptions=True)
    assert second.cancelled()
    assert order == [2]
    assert slots.held == 0
    async with slots:  # the one slot is free again
        assert slots.held == 1


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 4),
    plan=st.lists(st.tuples(st.booleans(), st.integers(0, 3)), min_size=1, max_size=12),
)
def test_never_more_holders_than_slots_and_every_slot_comes_back(
    limit: int, plan: list[tuple[bool, int]]
) -> None:
    async def scenario() -> None:
        slots, peak = Slots(limit), [0]

        async def use(ticks: int) -> None:
            async with slots:
                peak[0] = max(peak[0], slots.held)
                for _ in range(ticks):
                    await asyncio.sleep(0)

        tasks = [asyncio.create_task(use(ticks)) for _, ticks in plan]
        await asyncio.sleep(0)
        for (cancel, _), task in zip(plan, tasks, strict=True):
            if cancel:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert peak[0] <= limit
        assert slots.held == 0
        held = [asyncio.create_task(use(1)) for _ in range(limit)]
        await asyncio.sleep(0)
        assert slots.held == limit  # all of them free again: none lost to a cancel
        await asyncio.gather(*held)

    asyncio.run(scenario())


@pytest.mark.parametrize("limit", [1, 3])
async def test_a_free_slot_is_taken_without_waiting(limit: int) -> None:
    slots = Slots(limit)
    async with slots:
        assert slots.held == 1
    assert slots.held == 0


class _Limit(InFlightLimit):
    """An InFlightLimit whose value the test sets."""

    def __init__(self, value: int) -> None:
        super().__init__(64, adaptive=False)
        self.value = value


async def test_a_lower_adaptive_limit_lets_slots_go_out_of_use_as_their_calls_end() -> None:
    limit = _Limit(3)
    slots, order, release = Slots(64, limit), [], asyncio.Event()
    tasks = [asyncio.create_task(_hold(slots, n, order, release)) for n in range(3)]
    await asyncio.sleep(0)
    limit.value = 1
    late = [asyncio.create_task(_hold(slots, n, order, asyncio.Event())) for n in (3, 4)]
    await asyncio.sleep(0)
    assert (order, slots.held) == ([0, 1, 2], 3)  # holders keep their slots, newcomers wait
    release.set()
    await asyncio.gather(*tasks)
    await asyncio.sleep(0)
    assert (order, slots.held) == ([0, 1, 2, 3], 1)  # one at a time from now on
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)


async def test_a_higher_adaptive_limit_hands_out_the_new_slots_at_the_next_release() -> None:
    limit = _Limit(1)
    slots, order, release = Slots(64, limit), [], asyncio.Event()
    first = asyncio.Event()
    head = asyncio.create_task(_hold(slots, 0, order, first))
    tasks = [asyncio.create_task(_hold(slots, n, order, release)) for n in range(1, 5)]
    await asyncio.sleep(0)
    assert order == [0]
    limit.value = 3
    first.set()
    await head
    await asyncio.sleep(0)
    assert (order, slots.held) == ([0, 1, 2, 3], 3)
    release.set()
    await asyncio.gather(*tasks)
    assert slots.held == 0
