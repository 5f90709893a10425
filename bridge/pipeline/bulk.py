"""Enrolments to one sequence go out together: one bulk-enroll of up to 500 addresses.

An enrolment its kind lets go in bulk (`KINDS[...].bulk`) and that carries nothing the bulk
endpoint cannot (no `metadata`, `trigger_source` or `max_age`; its rule did not say
`coalesce: false`) joins the open batch of its sequence (and `override_unsubscribe`) instead of
being sent. It waits there holding no slot, and its lane waits with it, so its person's order
holds. The batch goes

- `window` seconds after its first enrolment joined,
- at once when it holds 500 (the endpoint's maximum), and
- at once when a person in it has a later call queued: a call never waits in a batch past its
  person's later calls (the dispatcher says so when the enrolment joins, or calls `hurry`).

"Goes" means the bulk request asks for a slot like any call; until it holds one (slots are held
by calls waiting for the rate budget, so on a tight key that is the long wait) the batch still
takes enrolments that come, up to 500, and it is sealed when the slot is granted. So a batch waits
no longer than its first enrolment alone would have, and on a 60/min key one request carries what
queued meanwhile. A batch of one goes as the plain enrolment.

The bulk request is delivered like any call (rate governor, retries of 429 and 5xx for the whole
batch); its answer names each address, enrolled or skipped with a reason, and each enrolment ends
as its own would have: already enrolled, unsubscribed, bounced or complained are done (skipped,
not poison); any other reason (an address Meisa finds invalid) sends that enrolment on its own,
so that its own answer decides. A bulk request refused as a whole (400, 404, 422) sends each
enrolment on its own, as a merged upsert Meisa rejects is sent again part by part
(bridge.pipeline.dispatcher).
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
    SendAlone,
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
# Sends the bulk call (`carried.call` once sealed) for `messages`; `seal` runs when the request
# holds its slot, before its first attempt. Returns the deliver step's answer.
Send = Callable[[Pending[InFlight], Sequence[InFlight], Callable[[], None]], Awaitable[object]]
BatchKey = BulkKey


@dataclass(eq=False)
class Batch:
    key: BatchKey
    items: list[Item] = field(default_factory=list)
    verdicts: dict[int, asyncio.Future[Verdict]] = field(default_factory=dict)  # by item seq
    timer: asyncio.TimerHandle | None = None
    going: bool = False  # its request asked for a slot; it still takes enrolments till sealed
    sealed: list[Item] | None = None  # what the request carries, fixed once it holds a slot
    answer: object = None  # the deliver step's answer to the bulk request


def batch_key(call: MeisaCall) -> BatchKey | None:
    """The batch a call may join, or None: it goes on its own."""
    return bulk_key(call)


def verdicts(answer: object) -> dict[str, Verdict]:
    """Each address's outcome from a bulk-enroll answer; an address it does not name is done.
    `answer` is the deliver step's: a CallResult, or one wrapped with its attempts (`result`,
    `attempts`: bridge.pipeline.outcomes.Answered, which sits above this module)."""
    result = getattr(answer, "result", answer)
    attempts = getattr(answer, "attempts", 1)
    body = result.body if isinstance(result, CallResult) else None
    if not isinstance(body, Mapping):
        return {}
    out: dict[str, Verdict] = {}
    for skipped in body.get("skipped_emails") or ():
        if not isinstance(skipped, Mapping) or not isinstance(skipped.get("email"), str):
            continue
        reason = str(skipped.get("reason", ""))
        done = _DONE.get(reason)
        address = skipped["email"].strip().lower()
        out[address] = ALONE if done is None else _skip(done, reason, attempts)
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
        self._open: dict[BatchKey, Batch] = {}  # batches still taking enrolments
        self._member: dict[int, Batch] = {}  # item seq -> its batch, until sealed
        self._flushing: set[asyncio.Task[None]] = set()
        self.saved = 0  # requests saved: each bulk request of n enrolments saves n - 1

    def takes(self, call: MeisaCall) -> bool:
        return self.window > 0 and batch_key(call) is not None

    async def join(self, item: Item, *, later: bool) -> tuple[bool, object]:
        """Wait for the item's batch: (True, the bulk request's answer) when done in bulk,
        (False, None) when it must be sent on its own. Raises the item's outcome (SkipOutcome,
        HaltError, CallAbandoned) like a send would. `later`: its person has a later call
        queued, so the batch goes now."""
        batch = self._batch_for(item)
        verdict = batch.verdicts[item.seq] = asyncio.get_running_loop().create_future()
        batch.items.append(item)
        self._member[item.seq] = batch
        if len(batch.items) >= self._size:
            self._open.pop(batch.key, None)  # full: the next enrolment opens another
        if later or len(batch.items) >= self._size:
            self._go(batch)
        try:
            outcome = await verdict
        except asyncio.CancelledError:
            self._leave(batch, item)
            raise
        if isinstance(outcome, BaseException):
            raise outcome
        return (True, batch.answer) if outcome is None else (False, None)

    def _batch_for(self, item: Item) -> Batch:
        key = batch_key(item.call)
        assert key is not None
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = Batch(key)
            batch.timer = asyncio.get_running_loop().call_later(self.window, self._go, batch)
        return batch

    def hurry(self, item: Item | None) -> None:
        """A later call of this item's person arrived: its batch goes now."""
        batch = None if item is None else self._member.get(item.seq)
        if batch is not None:
            self._go(batch)

    async def aclose(self) -> None:
        for batch in list(self._open.values()):
            if batch.timer is not None:
                batch.timer.cancel()
        for task in list(self._flushing):
            task.cancel()
        await asyncio.gather(*self._flushing, return_exceptions=True)

    def _leave(self, batch: Batch, item: Item) -> None:
        """A member cancelled before its batch was sealed (its lane was released)."""
        self._member.pop(item.seq, None)
        if batch.sealed is None:
            batch.items = [i for i in batch.items if i is not item]
            batch.verdicts.pop(item.seq, None)

    def _go(self, batch: Batch) -> None:
        if batch.going:
            return
        batch.going = True
        if batch.timer is not None:
            batch.timer.cancel()
        task = asyncio.get_running_loop().create_task(self._deliver(batch))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _deliver(self, batch: Batch) -> None:
        if not batch.items:  # every member left (their lanes were released) before it went
            return
        # Its addresses are filled in when it is sealed (the deliver step holds this call).
        carried: Item = Pending(bulk_of([batch.items[0].call]), [])
        messages = [m for item in batch.items for m in item.messages()]
        try:
            answer = await self._send(carried, messages, lambda: self._seal(batch, carried))
        except SendAlone:
            _settle(batch, batch.sealed or [], ALONE)
            return
        except (CallAbandoned, HaltError, SkipOutcome) as exc:
            _settle(batch, batch.sealed or batch.items, exc)
            return
        except PoisonError:  # refused as a whole: each enrolment's own answer decides
            _settle(batch, batch.sealed or batch.items, ALONE)
            return
        except asyncio.CancelledError:
            _settle(batch, batch.sealed or batch.items, CallAbandoned())
            raise
        live = batch.sealed or []
        self.saved += len(live) - 1
        batch.answer = answer
        found = verdicts(answer)
        for item in live:
            _settle(batch, [item], found.get(bulk_address(item.call)))

    def _seal(self, batch: Batch, carried: Item) -> None:
        """The bulk request holds its slot: fix what it carries (once; retries keep it)."""
        if batch.sealed is not None:
            return
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]
        for item in batch.items:
            self._member.pop(item.seq, None)
        gone = [item for item in batch.items if _abandoned(item)]
        _settle(batch, gone, CallAbandoned())
        batch.sealed = [item for item in batch.items if not _abandoned(item)]
        halt = self._halted()
        if halt is not None:
            raise halt
        if len(batch.sealed) <= 1:
            raise SendAlone
        sealed = bulk_of([item.call for item in batch.sealed])
        carried.call.body["emails"][:] = sealed.body["emails"]  # the same call, now complete
        carried.parts = [part for item in batch.sealed for part in item.parts]


def _skip(kind: type[SkipOutcome], reason: str, attempts: int) -> SkipOutcome:
    skip = kind(f"bulk-enroll skipped the address: {reason}")
    skip.attempts = attempts
    return skip


def _settle(batch: Batch, items: Sequence[Item], verdict: Verdict) -> None:
    for item in items:
        future = batch.verdicts.get(item.seq)
        if future is not None and not future.done():
            future.set_result(verdict)


def _abandoned(item: Item) -> bool:
    return all(m.stopped for _, m in item.parts)
