"""One person's queue of calls (a lane), and the concurrency slots calls take only while they send.

A lane holds the calls of one contact identity (bridge.identity) in arrival order, from
whatever topic or partition they came. It runs one call at a time. Which call goes next:

- normally the head;
- a track, tag or enrol for a contact that Meisa may not have yet (not known to the bridge) lets
  the first upsert queued behind it go first: never ask Meisa about a contact the bridge is still
  creating;
- a head parked on a 404 (its contact is missing and nobody here is creating it) waits with
  back-off; meanwhile upserts and triggers behind it may go (an upsert that arrives wakes it);
  calls that need the contact stay behind it, in order.

Adjacent upserts waiting in a lane merge into one call, and an add_tag behind one folds into it
(bridge.pipeline.coalesce).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from types import TracebackType

from bridge.errors import CallAbandoned
from bridge.meisa.calls import KindTraits, MeisaCall
from bridge.pipeline.coalesce import Pending, can_fold, can_merge, fold_into, merge_into
from bridge.pipeline.inflight import InFlightLimit
from bridge.pipeline.message import InFlight

Item = Pending[InFlight]


@dataclass(eq=False)
class Lane:
    """The calls of one contact identity; `key` is its lane key."""

    key: str
    queue: deque[Item] = field(default_factory=deque)
    running: Item | None = None
    stopping: asyncio.Future[None] | None = None  # release() cancelled the running call
    parked: Item | None = None
    due: float = 0.0  # loop time at which the parked head retries
    woken: bool = False  # something changed since the lane's task last looked
    _wake: asyncio.Event | None = None  # made only when the task has to wait for a change
    task: asyncio.Task[None] | None = None
    waiting_on: set[Lane] = field(default_factory=set)  # folded lanes still running a call
    forward: Lane | None = None  # this lane was folded into `forward`

    def push(self, call: MeisaCall, message: InFlight) -> bool:
        """Queue a call; True when it merged (an upsert) or folded (an add_tag) into the upsert
        waiting at the tail."""
        if self.queue and can_merge(self.queue[-1].call, call):
            merge_into(self.queue[-1], call, message)
            return True
        if self.queue and can_fold(self.queue[-1].call, call):
            fold_into(self.queue[-1], call, message)
            return True
        self.queue.append(Pending(call, [(call, message)]))
        self.wake()
        return False

    def absorb(self, other: Lane) -> None:
        """Fold `other` (the same person, learnt late) into this lane, keeping arrival order."""
        merged = sorted([*self.queue, *other.queue], key=lambda item: item.seq)
        self.queue = deque(merged)
        other.queue.clear()
        if other.parked is not None:
            self.queue.appendleft(other.parked)
            other.parked = None
        if other.running is not None:
            self.waiting_on.add(other)
        other.forward = self
        other.wake()
        self.wake()

    def hand_over(self) -> None:
        """This folded lane ended: its target may go on (with a call that parked meanwhile)."""
        assert self.forward is not None
        target = self.forward
        if self.parked is not None:
            target.queue.appendleft(self.parked)
            self.parked = None
        target.queue.extendleft(reversed(self.queue))
        self.queue.clear()
        target.waiting_on.discard(self)
        target.wake()

    def wake(self) -> None:
        """Tell the lane's task to look again (a call came, a parked call may go, ...)."""
        self.woken = True
        if self._wake is not None:
            self._wake.set()

    def look(self) -> None:
        """The lane's task is looking now: later changes wake it again."""
        self.woken = False
        if self._wake is not None:
            self._wake.clear()

    async def wait(self, until: float | None) -> None:
        """Until `wake()` (at once if it came since `look()`) or `until` seconds passed."""
        if self.woken:
            return
        if self._wake is None:
            self._wake = asyncio.Event()
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), until)

    def idle(self) -> bool:
        return not self.queue and self.parked is None and self.running is None

    def next_call(self, known: bool, now: float) -> Item | None:
        """The call to run now (taken off the lane), or None: nothing may run yet."""
        if self.waiting_on:
            return None
        if self.parked is not None:
            if now >= self.due:
                item, self.parked = self.parked, None
                return item
            return self._take_first(_overtakes_parked)
        if not self.queue:
            return None
        if self.queue[0].call.traits.needs_contact and not known:
            creator = self._take_first(_creates_contact)
            if creator is not None:
                return creator
        return self.queue.popleft()

    def _take_first(self, which: Callable[[KindTraits], bool]) -> Item | None:
        for index, item in enumerate(self.queue):
            if which(item.call.traits):
                del self.queue[index]
                return item
        return None

    def drop(self, abandoned: Callable[[Item], bool]) -> list[Item]:
        """Take out every queued or parked call for which `abandoned` holds."""
        gone = [item for item in self.queue if abandoned(item)]
        if gone:
            self.queue = deque(item for item in self.queue if not abandoned(item))
        if self.parked is not None and abandoned(self.parked):
            gone.append(self.parked)
            self.parked = None
        return gone


def _overtakes_parked(traits: KindTraits) -> bool:
    return traits.overtakes_parked


def _creates_contact(traits: KindTraits) -> bool:
    return traits.creates_contact


class Slots:
    """At most `limit` calls sending at once; a call holds a slot only around one attempt.

    First come, first served, and a freed slot passes straight to the next waiter, so entering
    and leaving cost the same however many wait. (asyncio.Semaphore looks through all its waiters
    on every acquire and release, and in a backlog hundreds of lanes wait for 64 slots: it cost
    more than the rest of the dispatcher.) With an `InFlightLimit`, its value is the limit, read
    on every entry and release: a lower one lets slots go out of use as their calls end, a
    higher one hands the new slots out at the next release."""

    def __init__(self, limit: int, adaptive: InFlightLimit | None = None) -> None:
        self._limit = limit
        self._adaptive = adaptive
        self._waiters: deque[asyncio.Future[None]] = deque()  # cancelled ones are skipped
        self._taken = 0  # slots held, and handed to a waiter that has not woken yet
        self.held = 0

    @property
    def limit(self) -> int:
        return self._limit if self._adaptive is None else self._adaptive.value

    async def __aenter__(self) -> None:
        if self._taken < self.limit and not self._waiters:
            self._taken += 1
        else:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._taken -= 1  # handed a slot as it was cancelled: pass it on
                    self._release()
                raise
        self.held += 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.held -= 1
        self._taken -= 1
        self._release()

    def _release(self) -> None:
        while self._waiters and self._taken < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._taken += 1
                waiter.set_result(None)


class StartSlot:
    """A slot that marks the call's messages started once it holds the slot, and refuses to
    start a call whose messages were revoked or lost meanwhile (a revoke lets started work
    finish; a call still waiting for a slot has not started)."""

    def __init__(
        self,
        slots: Slots,
        item: Item,
        fence: Callable[[], Awaitable[None]] | None,
        on_slot: Callable[[], None] | None = None,
    ) -> None:
        self._slots = slots
        self._item = item
        self._fence = fence
        self._on_slot = on_slot  # a bulk request fixes what it carries here

    async def __aenter__(self) -> None:
        await self._slots.__aenter__()
        try:
            if self._fence is not None:
                # Held after a freeze until the group had its say, and while commits fail.
                # Asked once the slot is ours, not before: a call that passed an open fence and
                # then queued for a slot would otherwise go out after the fence closed.
                await self._fence()
            if self._on_slot is not None:
                self._on_slot()  # a bulk request fixes what it carries (may raise SendAlone)
            if abandoned(self._item):
                raise CallAbandoned
        except BaseException:  # CallAbandoned, or the lane cancelled (its partition released)
            await self._slots.__aexit__(None, None, None)  # `async with` will not: we raised
            raise
        for m in self._item.messages():
            m.start()

    async def __aexit__(self, *exc: object) -> None:
        await self._slots.__aexit__(None, None, None)

    async def granted(self) -> None:
        """After a wait at the rate governor (the Deliverer calls it once a token came), ask
        the fence and the messages again: the process may have been frozen while it waited
        (a Retry-After, a paced backlog) and its partitions given to another member, whose
        newer calls this one must not follow (a zombie's stale upsert)."""
        if self._fence is not None:
            await self._fence()
        if abandoned(self._item):
            raise CallAbandoned


def abandoned(item: Item) -> bool:
    """Every message the item serves was revoked or lost: the call has no one to serve."""
    for _, m in item.parts:  # noqa: SIM110 (a loop: all() over a generator costs more, per call)
        if not m.stopped:
            return False
    return True
