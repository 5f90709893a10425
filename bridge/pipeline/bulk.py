"""Enrolments to one sequence go out together: one bulk-enroll of up to 500 addresses.

An enrolment its kind lets go in bulk (`KINDS[...].bulk`) and that carries nothing the bulk
endpoint cannot (no `metadata`, `trigger_source` or `max_age`; its rule did not say
`coalesce: false`) joins the open batch of its sequence (and `override_unsubscribe`) instead of
being sent. It waits there holding no slot, and its lane waits with it, so its person's order
holds. The batch goes

- `window` seconds after its first enrolment joined,
- at once when it holds 500 (the endpoint's maximum), and
- at once when a person in it has a later call queued: a call never waits past its person's
  later calls (the dispatcher calls `hurry`).

A batch of one goes as the plain enrolment. The bulk request is delivered like any call (rate
governor, retries of 429 and 5xx for the whole batch); its answer names each address, enrolled or
skipped with a reason, and each enrolment ends as its own would have: already enrolled,
unsubscribed, bounced or complained are done (skipped, not poison); any other reason (an address
Meisa finds invalid) sends that enrolment on its own, so that its own answer decides. A bulk
request refused as a whole (400, 404, 422) sends each enrolment on its own, as a merged upsert
Meisa rejects is sent again part by part (bridge.pipeline.dispatcher).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bridge.errors import (
    AlreadyEnrolled,
    CallAbandoned,
    HaltError,
    PoisonError,
    SkipOutcome,
    Unsubscribed,
)
from bridge.meisa.calls import BulkKey, MeisaCall, bulk_address, bulk_key, bulk_of
from bridge.meisa.models import BULK_ENROLL_MAX, CallResult
from bridge.pipeline.coalesce import Pending
from bridge.pipeline.lanes import Item
from bridge.pipeline.message import InFlight

# Skip reasons that mean the enrolment is done: the person is in the sequence already, or must
# not be emailed (the single enrol answers these with 400 already enrolled and 422).
_DONE: Mapping[str, type[SkipOutcome]] = {
    "already_enrolled": AlreadyEnrolled,
    "unsubscribed": Unsubscribed,
    "bounced": Unsubscribed,
    "complained": Unsubscribed,
}
Alone = Literal["alone"]  # the enrolment must be sent on its own
ALONE: Alone = "alone"
Verdict = Alone | BaseException | None  # None: done in bulk; an exception: its outcome
# Sends the bulk call for every message its parts serve; returns the deliver step's answer.
Send = Callable[[Pending[InFlight]], Awaitable[object]]
BatchKey = BulkKey


@dataclass(eq=False)
class Batch:
    key: BatchKey
    items: list[Item] = field(default_factory=list)
    verdicts: dict[int, asyncio.Future[Verdict]] = field(default_factory=dict)  # by item seq
    timer: asyncio.TimerHandle | None = None


def batch_key(call: MeisaCall) -> BatchKey | None:
    """The batch a call may join, or None: it goes on its own."""
    return bulk_key(call)


def bulk_call(items: Sequence[Item]) -> MeisaCall:
    """The one request that enrols every item's address (each address once)."""
    return bulk_of([item.call for item in items])


def verdicts(answer: object) -> dict[str, Verdict]:
    """Each address's outcome from a bulk-enroll answer; an address it does not name is done."""
    body = answer.body if isinstance(answer, CallResult) else None
    if not isinstance(body, Mapping):
        return {}
    out: dict[str, Verdict] = {}
    for skipped in body.get("skipped_emails") or ():
        if not isinstance(skipped, Mapping) or not isinstance(skipped.get("email"), str):
            continue
        reason = str(skipped.get("reason", ""))
        done = _DONE.get(reason)
        address = skipped["email"].strip().lower()
        out[address] = (
            done(f"bulk-enroll skipped the address: {reason}") if done is not None else ALONE
        )
    for email in body.get("enrolled_emails") or ():
        if isinstance(email, str):
            out[email.strip().lower()] = None
    return out


class EnrollBatches:
    """The open batches, one per sequence; `join` waits for the item's verdict."""

    def __init__(
        self,
        *,
        window: float,
        send: Send,
        halted: Callable[[], HaltError | None],
        size: int = BULK_ENROLL_MAX,
    ) -> None:
        self.window = window
        self._send = send
        self._halted = halted
        self._size = size
        self._open: dict[BatchKey, Batch] = {}
        self._member: dict[int, Batch] = {}  # item seq -> its open batch
        self._flushing: set[asyncio.Task[None]] = set()
        self.saved = 0  # requests saved: each bulk request of n enrolments saves n - 1

    def takes(self, call: MeisaCall) -> bool:
        return self.window > 0 and batch_key(call) is not None

    async def join(self, item: Item) -> bool:
        """Wait for the item's batch; True: done in bulk, False: send it on its own. Raises
        the item's outcome (SkipOutcome, HaltError, CallAbandoned) like a send would."""
        key = batch_key(item.call)
        assert key is not None
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = Batch(key)
            loop = asyncio.get_running_loop()
            batch.timer = loop.call_later(self.window, self._close, batch)
        verdict = batch.verdicts[item.seq] = asyncio.get_running_loop().create_future()
        batch.items.append(item)
        self._member[item.seq] = batch
        if len(batch.items) >= self._size:
            self._close(batch)
        try:
            outcome = await verdict
        except asyncio.CancelledError:
            self._leave(batch, item)
            raise
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome is None

    def hurry(self, item: Item | None) -> None:
        """A later call of this item's person arrived: its batch goes now."""
        batch = None if item is None else self._member.get(item.seq)
        if batch is not None:
            self._close(batch)

    async def aclose(self) -> None:
        for batch in list(self._open.values()):
            if batch.timer is not None:
                batch.timer.cancel()
        for task in list(self._flushing):
            task.cancel()
        await asyncio.gather(*self._flushing, return_exceptions=True)

    def _leave(self, batch: Batch, item: Item) -> None:
        """A member cancelled before its batch went (its lane was released)."""
        self._member.pop(item.seq, None)
        if self._open.get(batch.key) is batch:
            batch.items = [i for i in batch.items if i is not item]
            batch.verdicts.pop(item.seq, None)

    def _close(self, batch: Batch) -> None:
        if self._open.get(batch.key) is not batch:
            return
        del self._open[batch.key]
        if batch.timer is not None:
            batch.timer.cancel()
        for item in batch.items:
            self._member.pop(item.seq, None)
        task = asyncio.get_running_loop().create_task(self._go(batch))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _go(self, batch: Batch) -> None:
        live = [item for item in batch.items if not _abandoned(item)]
        _settle(batch, [i for i in batch.items if _abandoned(i)], CallAbandoned())
        halt = self._halted()
        if halt is not None or len(live) <= 1:
            _settle(batch, live, halt or ALONE)
            return
        call = bulk_call(live)
        try:
            answer = await self._send(Pending(call, [p for item in live for p in item.parts]))
        except (CallAbandoned, HaltError, SkipOutcome) as exc:
            _settle(batch, live, exc)
            return
        except PoisonError:  # refused as a whole: each enrolment's own answer decides
            _settle(batch, live, ALONE)
            return
        except asyncio.CancelledError:
            _settle(batch, live, CallAbandoned())
            raise
        self.saved += len(live) - 1
        found = verdicts(answer)
        for item in live:
            _settle(batch, [item], found.get(bulk_address(item.call)))


def _settle(batch: Batch, items: Sequence[Item], verdict: Verdict) -> None:
    for item in items:
        future = batch.verdicts.get(item.seq)
        if future is not None and not future.done():
            future.set_result(verdict)


def _abandoned(item: Item) -> bool:
    return all(m.stopped for _, m in item.parts)
