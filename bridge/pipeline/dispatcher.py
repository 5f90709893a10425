"""Per-person ordered, concurrent delivery on asyncio.

Every call goes to the lane of its contact identity (bridge.identity): one person's calls
run one at a time in the order they arrived, whatever topic or partition they came from (the
pipeline admits messages in event-time order, bridge.pipeline.lockstep). Different people run
concurrently. A call holds a concurrency slot (`max_in_flight`, with a separate set for triggers
so an OTP never waits behind upserts) only while it is at the rate governor and on the wire: a
call sleeping in a retry back-off, behind a Retry-After or waiting for its contact holds nothing
and blocks only its own lane.

Triggers. A person's triggers run in a lane of their own, in order among themselves: an OTP
never waits behind that person's backlog of upserts and tracks (each of them waiting for rate
budget), and a trigger needs no contact state (Meisa creates or enriches the recipient itself).

Waiting for a contact (bridge.pipeline.lanes). A track, tag or enrol whose contact the bridge has
not seen created lets an upsert of the same lane go first. A 404 for a contact nobody here is
creating parks the call: it is retried as the one 404 wait says (bridge.meisa.retry.ContactWait:
back-off, for `pipeline.contact_wait_seconds`; an upsert that arrives for the lane goes first
and wakes it at once), then it is poison with a reason that says so. A rule
action with `create_contact: true` instead upserts a minimal contact (email, external_id) on
the first 404 and sends the call again.

Outcomes: ok and skipped complete the call; SkipOutcome completes it and records the reason;
PoisonError marks the message failed (the other calls of a message still run, since each is
at-least-once anyway; the message goes to the DLQ once, naming the first failing rule); a
HaltError stops the dispatcher: nothing more is sent and unfinished messages stay unfinished. A
message is finished when every one of its calls is; `on_finished` then decides (done, or DLQ).

Fewer calls. Upserts merge and add_tags fold into a queued upsert in their lane
(bridge.pipeline.coalesce); enrolments to one sequence wait up to `enroll_window` seconds to go
together as one bulk-enroll (bridge.pipeline.bulk), and a person's later call sends their
batch at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence

from bridge.dlq import Failure
from bridge.errors import (
    CallAbandoned,
    ContactNotFound,
    ContactWaitExpired,
    HaltError,
    PoisonError,
    SkipOutcome,
    UnexpectedDeliveryError,
)
from bridge.identity import ContactIdentity, KnownContacts
from bridge.meisa import delivery
from bridge.meisa.calls import MeisaCall
from bridge.meisa.retry import ContactWait
from bridge.observability import mask_email
from bridge.pipeline.bulk import EnrollBatches
from bridge.pipeline.coalesce import Pending
from bridge.pipeline.inflight import InFlightLimit
from bridge.pipeline.lanes import Item, Lane, Slots, StartSlot, abandoned
from bridge.pipeline.message import InFlight, Sending, TopicPartition

log = logging.getLogger("bridge.pipeline.dispatcher")

Slot = delivery.Slot
# Sends one call for the messages it serves; takes `slot` around each attempt (not around
# back-off sleeps).
Deliver = Callable[[MeisaCall, Slot, Sending], Awaitable[object]]
# Raises a SkipOutcome when a call must not be sent (stale, suppressed); gets the event time.
Guard = Callable[[MeisaCall, float | None], None]
OnFinished = Callable[[InFlight], None]
# A call's last word, for each (call, message) it served: what `deliver` returned, or the
# SkipOutcome or PoisonError it ended with (bridge.pipeline.outcomes).
OnOutcome = Callable[[Sequence[tuple[MeisaCall, InFlight]], object], None]

CONTACT_WAIT_SECONDS = 300.0  # pipeline.contact_wait_seconds' default


def _no_guard(call: MeisaCall, event_time: float | None) -> None:
    return None


class Dispatcher:
    """Submit each message's calls; `on_finished(message)` fires once all of them are done.

    A pipeline stage (bridge.pipeline.stage): `close()` takes no new message, `join(grace)`
    waits for the calls running and queued, `terminate()` cancels them."""

    name = "dispatcher"

    def __init__(
        self,
        *,
        deliver: Deliver,
        on_finished: OnFinished,
        max_in_flight: int = 32,
        guard: Guard = _no_guard,
        on_skip: Callable[[str], None] = lambda reason: None,
        on_halt: Callable[[HaltError], None] = lambda exc: None,
        on_not_found: Callable[[str], None] = lambda kind: None,
        contact_wait: ContactWait | None = None,
        identity_capacity: int = 100_000,
        rng: random.Random | None = None,
        fence: Callable[[], Awaitable[None]] | None = None,
        on_outcome: OnOutcome | None = None,
        enroll_window: float = 0.0,
        in_flight: InFlightLimit | None = None,
    ) -> None:
        self._deliver = deliver
        self._on_outcome = on_outcome
        self._on_finished = on_finished
        self._guard = guard
        self._on_skip, self._on_halt = on_skip, on_halt
        self._on_not_found = on_not_found
        self._contact_wait = contact_wait or ContactWait(seconds=CONTACT_WAIT_SECONDS)
        self._rng = rng or random.Random()
        self._fence = fence
        # Triggers keep a fixed set: few, and each one matters now. Other calls go on the wire as
        # their answers show Meisa needs (bridge.pipeline.inflight), up to max_in_flight.
        self._slots = {True: Slots(max_in_flight), False: Slots(max_in_flight, in_flight)}
        self._lanes: dict[str, Lane] = {}
        self._parking: set[Lane] = set()  # lanes that parked a call (some may have let it go)
        self.identity = ContactIdentity(identity_capacity, busy=self._lanes.__contains__)
        self.known = KnownContacts(identity_capacity)
        self.halted: HaltError | None = None
        self._merged = 0  # calls merged or folded into a queued upsert
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.batches = EnrollBatches(
            window=enroll_window, send=self._send_bulk, halted=lambda: self.halted
        )

    @property
    def coalesced(self) -> int:
        """Calls saved: merged or folded into an upsert, or sent in a bulk request."""
        return self._merged + self.batches.saved

    @property
    def sending(self) -> int:
        """Calls holding a slot: at the rate governor or on the wire."""
        return sum(slots.held for slots in self._slots.values())

    def parked(self) -> int:
        """Calls waiting for their contact (asked every poll turn: not a scan of all lanes)."""
        self._parking = {lane for lane in self._parking if lane.parked is not None}
        return len(self._parking)

    def submit(self, message: InFlight, calls: Sequence[MeisaCall]) -> None:
        """Queue the calls of one message, in order. A message without calls finishes at once.
        Once closed, a message is left unfinished: it is read again."""
        if self._closed:
            return
        message.remaining += len(calls)
        if not calls:
            self._on_finished(message)
            return
        for call in calls:
            lane = self._lane_for(call)
            if lane.push(call, message):
                self._merged += 1
            if lane.running is not None:  # never waits in a batch past this later call
                self.batches.hurry(lane.running)
            if lane.task is None and self.halted is None:
                lane.task = self._start(lane)

    def _start(self, lane: Lane) -> asyncio.Task[None]:
        if self._loop is None:  # looked up once: get_running_loop() costs a getpid() each time
            self._loop = asyncio.get_running_loop()
        return self._loop.create_task(self._drain(lane))

    def _lane_for(self, call: MeisaCall) -> Lane:
        found = self.identity.key_for(call.body, fallback=call.contact_key)
        if call.traits.trigger:  # see the module docstring: a person's triggers, in order
            return self._resolve(f"t:{found.key}")
        lane = self._resolve(found.key)
        if found.merged_from is not None:
            other = self._lanes.get(found.merged_from)
            if other is not None and other is not lane and other.forward is None:
                lane.absorb(other)
        return lane

    def _resolve(self, key: str) -> Lane:
        lane = self._lanes.get(key)
        while lane is not None and lane.forward is not None:
            lane = lane.forward
        if lane is None:
            lane = self._lanes[key] = Lane(key)
        return lane

    def close(self) -> None:
        """Take no new message; the calls running and queued go on."""
        self._closed = True

    async def join(self, grace: float | None = None) -> bool:
        """Wait until no lane has work running or queued; False if `grace` ran out first (what
        runs goes on: `terminate` cancels it)."""
        loop = asyncio.get_running_loop()
        deadline = None if grace is None else loop.time() + grace
        while tasks := [lane.task for lane in self._lanes.values() if lane.task is not None]:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            await asyncio.wait(tasks, timeout=left)  # a lane may start anew: look again
        return True

    async def release(self, tps: Iterable[TopicPartition]) -> None:
        """Stop all work of partitions this member no longer owns (lost, or a revoke whose grace
        ran out): cancel their calls in progress and drop what is queued. Their messages are
        already cancelled; the new owner sends these calls, and a late copy from here could land
        after its newer ones. Calls of other partitions in the same lanes go on."""
        gone = set(tps)

        def abandoned(item: Item) -> bool:
            return all(m.stopped or m.tp in gone for m in item.messages())

        stopping = []
        for lane in list(self._lanes.values()):
            for item in lane.drop(abandoned):
                for m in item.messages():
                    m.cancel()
            if lane.running is not None and abandoned(lane.running) and lane.task is not None:
                stopping.append(self._cancel_running(lane, lane.task))
            lane.wake()
        await asyncio.gather(*stopping, return_exceptions=True)

    def _cancel_running(self, lane: Lane, task: asyncio.Task[None]) -> asyncio.Future[None]:
        """Cancel the call the lane's task is running (not the lane): a future set once the
        call has ended. The lane task tells this cancel from others by `lane.stopping` and
        takes it back with `uncancel()` (bridge.pipeline.dispatcher._run_in_lane)."""
        if lane.stopping is None:
            lane.stopping = asyncio.get_running_loop().create_future()
            task.cancel()
        return lane.stopping

    async def terminate(self) -> None:
        """Cancel everything still running or queued (after a halt or a join that ran out)."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.batches.aclose()

    # -- one lane ------------------------------------------------------------------------------

    async def _drain(self, lane: Lane) -> None:
        loop = self._loop or asyncio.get_running_loop()
        try:
            while self.halted is None and lane.forward is None:
                lane.look()
                item = lane.next_call(lane.key in self.known, loop.time())
                if item is None:
                    if lane.parked is None and not lane.waiting_on:
                        break
                    await self._sleep(lane, loop.time())
                    continue
                await self._run_in_lane(lane, item)
        except asyncio.CancelledError:
            lane.task = None  # closing: nothing is started again
            raise
        self._finish_lane(lane)

    async def _sleep(self, lane: Lane, now: float) -> None:
        await lane.wait(None if lane.parked is None else max(0.0, lane.due - now))

    async def _run_in_lane(self, lane: Lane, item: Item) -> None:
        # The call runs in the lane's own task: a task per call cost more CPU than the rest of
        # the dispatcher. release() cancels the lane's task while the call is running; that
        # cancel is taken back here, and the lane goes on with its next call.
        lane.running = item
        try:
            await self._run(lane, item)
        except asyncio.CancelledError:
            if lane.stopping is None or _stopped(lane) > 0:
                raise  # the lane itself is cancelled (closing), maybe as well
        finally:
            lane.running = None
            if lane.stopping is not None:
                _stopped(lane)  # the call swallowed the cancel: take it back all the same

    def _finish_lane(self, lane: Lane) -> None:
        lane.task = None
        if lane.forward is not None:
            lane.hand_over()
            if self._lanes.get(lane.key) is lane:
                del self._lanes[lane.key]
            return
        if lane.idle() and self._lanes.get(lane.key) is lane:
            del self._lanes[lane.key]
        elif not lane.idle() and self.halted is None:  # work came in while the task ended
            lane.task = self._start(lane)

    def _abandon(self, item: Item) -> None:
        """Drop a call whose messages were revoked or lost: they never count as done."""
        for m in item.messages():
            m.cancel()
        self._complete(item.messages())

    async def _run(self, lane: Lane, item: Item) -> None:
        if abandoned(item):
            self._abandon(item)
            return
        slot = StartSlot(self._slots[item.call.traits.trigger], item, self._fence)
        answer: object
        try:
            answer = await self._send_item(lane, item, slot)
        except CallAbandoned:
            self._abandon(item)
            return
        except ContactNotFound as exc:
            if await self._not_found(lane, item, slot):
                return
            answer = self._expired(item, exc)
            item.messages()[0].fail(_failure(answer, item.call))
        except PoisonError as exc:
            if item.merged:
                # One of the merged upserts is at fault: send them one by one to find which.
                for call, message in item.parts:
                    await self._run(lane, Pending(call, [(call, message)]))
                return
            answer = exc
            item.messages()[0].fail(_failure(exc, item.call))
        except SkipOutcome as exc:
            answer = exc
            self._on_skip(exc.reason)
            for m in item.messages():
                m.skipped.append(exc.reason)
        except HaltError as exc:
            self._halt(exc)
            return
        else:
            self._exists(lane)
        if self._on_outcome is not None:
            self._on_outcome(item.parts, answer)
        self._complete(item.messages())

    async def _not_found(self, lane: Lane, item: Item, slot: Slot) -> bool:
        """A 404: park the call (True), or False when its wait is over (it is poison then)."""
        self._on_not_found(item.call.kind)
        self.known.discard(lane.key)
        now = asyncio.get_running_loop().time()
        if item.waiting_since is None:
            item.waiting_since = now
        item.attempts += 1
        if self._contact_wait.over(item.attempts, now - item.waiting_since):
            return False
        if item.call.create_contact and not item.created and await self._create(item, slot):
            lane.due = now  # the contact is there now: send again at once
        else:
            lane.due = now + self._contact_wait.delay(item.attempts, self._rng)
        lane.parked = item
        self._parking.add(lane)
        log.info(
            "%s for contact %s (rule %s) waits for the contact to exist (404 #%d)",
            item.call.kind,
            mask_email(item.call.contact_key),
            item.call.rule or "-",
            item.attempts,
        )
        return True

    async def _create(self, item: Item, slot: Slot) -> bool:
        """create_contact: upsert a minimal contact (needs an email); False if it cannot."""
        item.created = True
        body = {k: item.call.body[k] for k in ("email", "external_id") if item.call.body.get(k)}
        if "email" not in body:
            return False
        upsert = MeisaCall(
            kind="upsert",
            body=body,
            contact_key=item.call.contact_key,
            rule=item.call.rule,
            action=item.call.action,
        )
        try:
            await self._send(upsert, item.messages(), slot)
        except (PoisonError, SkipOutcome):
            return False
        except HaltError as exc:
            self._halt(exc)
            return False
        return True

    def _expired(self, item: Item, exc: ContactNotFound) -> ContactWaitExpired:
        waited = asyncio.get_running_loop().time() - (item.waiting_since or 0.0)
        return ContactWaitExpired(
            f"{exc} (no contact after waiting {waited:.0f}s, {item.attempts} attempts)",
            attempts=item.attempts,
        )

    def _exists(self, lane: Lane) -> None:
        """A call of the lane succeeded: Meisa has the contact; a parked head may go now."""
        self.known.add(lane.key)
        if lane.parked is not None:
            lane.due = 0.0
            lane.wake()

    async def _send_item(self, lane: Lane, item: Item, slot: Slot) -> object:
        """Send the item's call, in a bulk request when it may go in one."""
        if self.batches.takes(item.call):
            self._guard(item.call, Sending(tuple(item.messages())).event_time)
            done, answer = await self.batches.join(item, later=bool(lane.queue))
            if done:
                return answer
        return await self._send(item.call, item.messages(), slot)

    async def _send_bulk(
        self, carried: Item, messages: Sequence[InFlight], seal: Callable[[], None]
    ) -> object:
        """One bulk request for the calls it carries, sealed once it holds a slot
        (bridge.pipeline.bulk)."""
        slot = StartSlot(self._slots[False], carried, self._fence, seal)
        return await self._send(carried.call, messages, slot)

    async def _send(self, call: MeisaCall, messages: Sequence[InFlight], slot: Slot) -> object:
        sending = Sending(tuple(messages))
        self._guard(call, sending.event_time)
        try:
            return await self._deliver(call, slot, sending)
        except (PoisonError, SkipOutcome, HaltError, CallAbandoned):
            raise
        except Exception as exc:  # a bug or an unmapped error: halt, never strand the message
            raise UnexpectedDeliveryError(f"{type(exc).__name__}: {exc}") from exc

    def _complete(self, messages: Sequence[InFlight]) -> None:
        for message in messages:
            message.remaining -= 1
            if message.remaining == 0:
                self._on_finished(message)

    def _halt(self, exc: HaltError) -> None:
        if self.halted is None:
            self.halted = exc
            log.error("halting: %s: %s", type(exc).__name__, exc)
            self._on_halt(exc)
            for lane in self._lanes.values():
                lane.wake()


def _stopped(lane: Lane) -> int:
    """Take back release()'s cancel of the lane's task and tell release() the call ended;
    returns how many other cancel requests the task still has."""
    assert lane.stopping is not None
    lane.stopping.set_result(None)
    lane.stopping = None
    me = asyncio.current_task()
    return me.uncancel() if me is not None else 0


def _failure(exc: PoisonError, call: MeisaCall) -> Failure:
    return Failure(error=exc, stage=exc.stage, rule=call.rule, attempts=exc.attempts)
