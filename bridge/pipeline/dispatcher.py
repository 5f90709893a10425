"""Key-ordered concurrent delivery on asyncio.

Calls of one contact from one partition run one at a time, in the order they were submitted
(offset order). Different contacts run concurrently, up to `max_in_flight` calls at once, and so do
one contact's calls from different partitions: there is no order across partitions, and a track
retrying a 404 must not hold back the upsert (on another topic) that creates its contact. Triggers
get their own lane of `max_in_flight` slots, so an OTP is never stuck behind a backlog of upserts
that wait for rate budget (the rate governor then lets it go first). While a call waits for a slot,
later upserts of the same contact from the same partition merge into it (bridge.pipeline.coalesce).

Outcomes (design.md): ok and skipped complete the call; SkipOutcome completes it and records the
reason; PoisonError marks the message failed (the other calls of a message still run, since each is
at-least-once anyway; the message goes to the DLQ once, naming the first failing rule); a HaltError
stops the dispatcher: nothing more is sent and unfinished messages stay unfinished. A message is
finished when every one of its calls is; `on_finished` then decides (done, or DLQ first).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from bridge.errors import (
    HaltError,
    PoisonError,
    SkipOutcome,
    UnexpectedDeliveryError,
)
from bridge.meisa.calls import MeisaCall
from bridge.pipeline.coalesce import ContactQueues, Pending
from bridge.pipeline.guards import current_messages
from bridge.pipeline.message import Failure, InFlight, TopicPartition

log = logging.getLogger("bridge.pipeline.dispatcher")

Deliver = Callable[[MeisaCall], Awaitable[object]]
# Raises a SkipOutcome when a call must not be sent (stale, suppressed).
Guard = Callable[[MeisaCall, Sequence[InFlight]], None]
OnFinished = Callable[[InFlight], None]
QueueKey = tuple[TopicPartition, str]  # (partition, contact key): one queue, one call at a time


def _no_guard(call: MeisaCall, messages: Sequence[InFlight]) -> None:
    return None


class Dispatcher:
    """Submit each message's calls; `on_finished(message)` fires once all of them are done."""

    def __init__(
        self,
        *,
        deliver: Deliver,
        on_finished: OnFinished,
        max_in_flight: int = 32,
        guard: Guard = _no_guard,
        on_skip: Callable[[str], None] = lambda reason: None,
        on_halt: Callable[[HaltError], None] = lambda exc: None,
    ) -> None:
        self._deliver = deliver
        self._on_finished = on_finished
        self._guard = guard
        self._on_skip = on_skip
        self._on_halt = on_halt
        self._queues: ContactQueues[InFlight] = ContactQueues()
        self._lanes = {
            True: asyncio.Semaphore(max_in_flight),
            False: asyncio.Semaphore(max_in_flight),
        }
        self._tasks: dict[QueueKey, asyncio.Task[None]] = {}
        self.halted: HaltError | None = None
        self.sending = 0

    @property
    def coalesced(self) -> int:
        return self._queues.merged_total

    def waiting(self) -> int:
        return self._queues.waiting()

    def submit(self, message: InFlight, calls: Sequence[MeisaCall]) -> None:
        """Queue the calls of one message, in order. A message without calls finishes at once."""
        message.remaining += len(calls)
        if not calls:
            self._on_finished(message)
            return
        for call in calls:
            key = (message.tp, call.contact_key)
            self._queues.push(call, message, key)
            if key not in self._tasks and self.halted is None:
                self._tasks[key] = asyncio.create_task(self._drain(key))

    async def wait_idle(self, grace: float | None = None) -> bool:
        """Wait until no contact has work running or queued; False if the timeout hit first."""
        try:
            async with asyncio.timeout(grace):
                while self._tasks:
                    await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)
        except TimeoutError:
            return False
        return True

    async def release(self, tps: Iterable[TopicPartition]) -> None:
        """Stop all work of partitions this member no longer owns (lost, or a revoke whose grace
        ran out): cancel their calls in progress and drop what is queued. Their messages are
        already cancelled; the new owner sends these calls, and a late copy from here could land
        after its newer ones."""
        gone = set(tps)
        keys = [key for key in self._tasks if key[0] in gone]
        tasks = [self._tasks.pop(key) for key in keys]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for key in keys:
            self._queues.drop(key)

    async def aclose(self) -> None:
        """Cancel everything still running or queued (after a halt or a drain timeout)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self, key: QueueKey) -> None:
        try:
            while self.halted is None:
                head = self._queues.peek(key)
                if head is None:
                    return
                if _abandoned(head):  # no need to wait for a slot only to drop it
                    self._queues.pop(key)
                    self._abandon(head)
                    continue
                async with self._lanes[head.call.kind == "trigger"]:
                    item = self._queues.pop(key)
                    if item is None or self.halted is not None:
                        return
                    await self._run(item)
        finally:
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]

    def _abandon(self, item: Pending[InFlight]) -> None:
        """Drop a call whose messages were revoked or lost: they never count as done."""
        for m in item.messages():
            m.cancelled = True
        self._complete(item.messages())

    async def _run(self, item: Pending[InFlight]) -> None:
        if _abandoned(item):
            self._abandon(item)
            return
        for m in item.messages():
            m.started = True
        try:
            await self._send(item.call, item.messages())
        except PoisonError as exc:
            if item.merged:
                # One of the merged upserts is at fault: send them one by one to find which.
                for call, message in item.parts:
                    await self._run(Pending(call, [(call, message)]))
                return
            item.messages()[0].fail(_failure(exc, item.call))
        except SkipOutcome as exc:
            self._on_skip(exc.reason)
            for m in item.messages():
                m.skipped.append(exc.reason)
        except HaltError as exc:
            self._halt(exc)
            return
        self._complete(item.messages())

    async def _send(self, call: MeisaCall, messages: Sequence[InFlight]) -> None:
        self._guard(call, messages)
        self.sending += 1
        token = current_messages.set(messages)
        try:
            await self._deliver(call)
        except (PoisonError, SkipOutcome, HaltError):
            raise
        except Exception as exc:  # a bug or an unmapped error: halt, never strand the message
            raise UnexpectedDeliveryError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            current_messages.reset(token)
            self.sending -= 1

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


def _abandoned(item: Pending[InFlight]) -> bool:
    return all(m.cancelled or m.revoked for m in item.messages())


def _failure(exc: PoisonError, call: MeisaCall) -> Failure:
    return Failure(error=exc, stage=exc.stage, rule=call.rule, attempts=getattr(exc, "attempts", 1))
