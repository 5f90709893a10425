"""max_age and suppression checks, with an injected clock; what a call checks again right before
it is sent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.errors import CallAbandoned, Forbidden, StaleEvent, Suppressed
from bridge.events import Envelope, Record
from bridge.meisa.calls import MeisaCall
from bridge.meisa.delivery import Deliverer
from bridge.meisa.models import CallResult
from bridge.pipeline.coalesce import Pending
from bridge.pipeline.dispatcher import Slot
from bridge.pipeline.guards import CallGuard, SuppressionList
from bridge.pipeline.lanes import Slots, StartSlot
from bridge.pipeline.message import InFlight, Sending
from bridge.pipeline.outcomes import with_attempts

NOW = 1_800_000_000.0


def message(event_time: float) -> InFlight:
    env = Envelope(topic="t", partition=0, offset=0, data={}, timestamp=int(event_time * 1000))
    return InFlight(Record("t", 0, 0, None, None), envelope=env)


def trigger(max_age: float | None = 600, to: str = "a@x.io") -> MeisaCall:
    return MeisaCall(
        kind="trigger",
        body={"trigger_key": "otp", "to_email": to},
        contact_key=to,
        rule="otp",
        max_age=max_age,
    )


def test_trigger_older_than_max_age_is_stale() -> None:
    guard = CallGuard(clock=lambda: NOW)
    with pytest.raises(StaleEvent):
        guard(trigger(600), NOW - 601)
    guard(trigger(600), NOW - 599)
    guard(trigger(None), NOW - 10_000)
    guard(trigger(600), None)  # no event time: nothing to measure the age from


def test_the_event_time_of_a_call_is_the_newest_of_its_messages() -> None:
    sending = Sending((message(NOW - 50), message(NOW - 10), message(NOW - 30)))
    assert sending.event_time == NOW - 10
    assert Sending(()).event_time is None


def test_suppressed_address_skips_triggers_only() -> None:
    guard = CallGuard(suppressed=lambda e: e.lower() == "a@x.io", clock=lambda: NOW)
    with pytest.raises(Suppressed):
        guard(trigger(to="A@x.io"), NOW)
    upsert = MeisaCall(kind="upsert", body={"email": "a@x.io"}, contact_key="a@x.io")
    guard(upsert, NOW)


class Inner:
    def __init__(self) -> None:
        self.sent: list[MeisaCall] = []

    async def send(self, call: MeisaCall) -> CallResult:
        self.sent.append(call)
        return CallResult(status=200, body={})

    def requests_for(self, call: MeisaCall) -> int:
        return 1


class Unlimited:
    async def acquire(self, priority: int, tokens: int = 1) -> float:
        return 0.0

    def on_success(self) -> None:
        pass

    def on_rate_limited(self, retry_after: float | None) -> None:
        pass


async def test_the_deliverer_rechecks_the_guard_right_before_sending() -> None:
    now = [NOW]
    inner = Inner()
    deliverer = Deliverer(inner, Unlimited(), guard=CallGuard(clock=lambda: now[0]))
    await deliverer.deliver(trigger(600), event_time=NOW - 100)
    now[0] += 600  # waited behind a Retry-After
    with pytest.raises(StaleEvent):
        await deliverer.deliver(trigger(600), event_time=NOW - 100)
    assert len(inner.sent) == 1


async def test_suppression_list_refreshes_and_warns_once_without_scope() -> None:
    async def fetch() -> Any:
        return ["B@x.io "]

    lst = SuppressionList(fetch, interval=60)
    await lst.refresh()
    assert "b@x.io" in lst

    async def forbidden() -> Any:
        raise Forbidden("403 contacts:read")

    lst = SuppressionList(forbidden, interval=60)
    await lst.run()  # returns instead of polling forever
    assert lst.available is False


# A call that waited at the rate governor asks the fence and its messages again before it goes
# out: the process may have been frozen while it waited (a Retry-After, a paced backlog), and its
# partitions given to another member, whose newer calls a stale one must not follow.

UPSERT = MeisaCall(kind="upsert", body={"email": "a@x.io"}, contact_key="a@x.io")


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


def parked(waited: float) -> tuple[Deliverer, Inner, Governor, Fence, InFlight, StartSlot]:
    meisa, governor, fence = Inner(), Governor(waited), Fence()
    message = InFlight(Record("t", 0, 0, None, None))
    slot = StartSlot(Slots(4), Pending(UPSERT, [(UPSERT, message)]), fence)
    return Deliverer(meisa, governor), meisa, governor, fence, message, slot


async def test_a_call_whose_partition_was_lost_while_it_waited_for_a_token_is_not_sent() -> None:
    deliverer, meisa, governor, _, message, slot = parked(waited=55.0)
    sending = asyncio.create_task(deliverer.deliver(UPSERT, slot))
    await asyncio.wait_for(governor.waiting.wait(), 5)
    message.cancel()  # the group gave the partition to another member meanwhile
    governor.grant.set()
    with pytest.raises(CallAbandoned):
        await asyncio.wait_for(sending, 5)
    assert meisa.sent == []


async def test_with_the_outcome_topic_a_call_parked_at_the_governor_is_checked_again_too() -> None:
    """The outcome topic wraps the slot to count attempts; the check after the governor must
    reach the slot through it."""
    deliverer, meisa, governor, _, message, slot = parked(waited=55.0)

    async def deliver(call: MeisaCall, slot: Slot, sending: Sending) -> object:
        return await deliverer.deliver(call, slot)

    sending = asyncio.create_task(with_attempts(deliver)(UPSERT, slot, Sending((message,))))
    await asyncio.wait_for(governor.waiting.wait(), 5)
    message.cancel()
    governor.grant.set()
    with pytest.raises(CallAbandoned):
        await asyncio.wait_for(sending, 5)
    assert meisa.sent == []


async def test_a_call_that_waited_for_a_token_waits_at_a_closed_fence_too() -> None:
    deliverer, meisa, governor, fence, _, slot = parked(waited=55.0)
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
    deliverer, meisa, governor, fence, _, slot = parked(waited=0.0)
    governor.grant.set()
    await deliverer.deliver(UPSERT, slot)
    assert meisa.sent == [UPSERT]
    assert fence.asked == 1
