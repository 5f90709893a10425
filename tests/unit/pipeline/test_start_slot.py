"""A call that waited at the rate governor asks the fence and its messages again before it goes
out: the process may have been frozen while it waited (a Retry-After, a paced backlog), and its
partitions given to another member, whose newer calls a stale one must not follow."""

from __future__ import annotations

import asyncio

import pytest

from bridge.errors import CallAbandoned
from bridge.events import Record
from bridge.meisa.calls import MeisaCall
from bridge.meisa.delivery import Deliverer
from bridge.meisa.models import CallResult
from bridge.pipeline.coalesce import Pending
from bridge.pipeline.lanes import Slots, StartSlot
from bridge.pipeline.message import InFlight

UPSERT = MeisaCall(kind="upsert", body={"email": "a@x.io"}, contact_key="a@x.io")


class Meisa:
    def __init__(self) -> None:
        self.sent: list[MeisaCall] = []

    async def send(self, call: MeisaCall) -> CallResult:
        self.sent.append(call)
        return CallResult(status=200, body={})

    def requests_for(self, call: MeisaCall) -> int:
        return 1


class Governor:
    """Every call waits at it until `grant` is set; then it says how long it waited."""

    def __init__(self, waited: float) -> None:
        self.grant = asyncio.Event()
        self.waiting = asyncio.Event()
        self.waited = waited

    async def acquire(self, priority: int, tokens: int = 1) -> float:
        self.waiting.set()
        await self.grant.wait()
        return self.waited

    def on_success(self) -> None:
        pass

    def on_rate_limited(self, retry_after: float | None) -> None:
        pass


class Fence:
    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.asked = 0

    async def __call__(self) -> None:
        self.asked += 1
        await self.open.wait()


def setup(waited: float) -> tuple[Deliverer, Meisa, Governor, Fence, InFlight, StartSlot]:
    meisa, governor, fence = Meisa(), Governor(waited), Fence()
    message = InFlight(Record("t", 0, 0, None, None))
    slot = StartSlot(Slots(4), Pending(UPSERT, [(UPSERT, message)]), fence)
    return Deliverer(meisa, governor), meisa, governor, fence, message, slot


async def test_a_call_whose_partition_was_lost_while_it_waited_for_a_token_is_not_sent() -> None:
    deliverer, meisa, governor, _, message, slot = setup(waited=55.0)
    sending = asyncio.create_task(deliverer.deliver(UPSERT, slot))
    await asyncio.wait_for(governor.waiting.wait(), 5)
    message.cancel()  # the group gave the partition to another member meanwhile
    governor.grant.set()
    with pytest.raises(CallAbandoned):
        await asyncio.wait_for(sending, 5)
    assert meisa.sent == []


async def test_a_call_that_waited_for_a_token_waits_at_a_closed_fence_too() -> None:
    deliverer, meisa, governor, fence, _, slot = setup(waited=55.0)
    sending = asyncio.create_task(deliverer.deliver(UPSERT, slot))
    await asyncio.wait_for(governor.waiting.wait(), 5)
    fence.open.clear()  # a freeze was noticed while it waited
    governor.grant.set()
    await asyncio.sleep(0.05)
    assert meisa.sent == []
    assert not sending.done()
    fence.open.set()
    await asyncio.wait_for(sending, 5)
    assert meisa.sent == [UPSERT]
    assert fence.asked == 2, "once as it took its slot, once after the governor"


async def test_a_call_that_did_not_wait_for_a_token_asks_the_fence_once() -> None:
    deliverer, meisa, governor, fence, _, slot = setup(waited=0.0)
    governor.grant.set()
    await deliverer.deliver(UPSERT, slot)
    assert meisa.sent == [UPSERT]
    assert fence.asked == 1
