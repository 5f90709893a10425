"""The two phases of a replay: read (decode, map with replay=True, fold) and send.

Both work on the state file only, so either can be interrupted and resumed. Kafka, the codec, the
rules and the Meisa client come in as plain callables and protocols, which keeps this module free
of I/O and testable with an injected clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bridge.errors import HaltError, PoisonError, SkipOutcome
from bridge.events import EventDecoder, EventRules, Record
from bridge.kafka.protocols import Batch
from bridge.meisa.calls import MeisaCall, is_stale
from bridge.outcome import Unreadable, read_record
from bridge.replay.fold import FOLDABLE, ContactFold
from bridge.replay.progress import Progress
from bridge.replay.state import SHARDS, StateStore

log = logging.getLogger("bridge.replay")

Deliver = Callable[[MeisaCall], Awaitable[Any]]

DEFAULT_MAX_CONTACTS = 50_000  # folds held in memory before they spill to the state file
FLUSH_EVERY = 20_000  # events between flushes: bounds the re-read after a kill


class ReadPhase:
    """Folds the range into the state file; flushes atomically with the read positions."""

    def __init__(
        self,
        store: StateStore,
        decoder: EventDecoder,
        rules: EventRules,
        *,
        progress: Progress | None = None,
        max_contacts: int = DEFAULT_MAX_CONTACTS,
        flush_every: int = FLUSH_EVERY,
    ) -> None:
        self._store = store
        self._decoder = decoder
        self._rules = rules
        self._progress = progress
        self._max_contacts = max_contacts
        self._flush_every = flush_every
        self._reset()

    def _reset(self) -> None:
        self._folds: dict[str, ContactFold] = {}
        self._calls: list[tuple[MeisaCall, float | None]] = []
        self._positions: dict[tuple[str, int], int] = {}
        self._counts: dict[str, int] = {}
        self._unflushed = 0

    def run(self, batches: Iterable[Batch], *, already_read: int = 0) -> None:
        read = already_read
        for batch in batches:
            for rec in batch.records:
                self._one(rec)
            self._positions.update(batch.positions)
            self._unflushed += len(batch.records)
            read += len(batch.records)
            if self._unflushed >= self._flush_every or len(self._folds) >= self._max_contacts:
                self.flush()
            if self._progress is not None:
                self._progress.update(events_read=read)
        self.flush()

    def flush(self) -> None:
        self._store.flush(self._folds, self._calls, self._positions, self._counts)
        self._reset()

    def _count(self, name: str) -> None:
        self._counts[name] = self._counts.get(name, 0) + 1

    def _one(self, rec: Record) -> None:
        self._count("events")
        read = read_record(rec, self._decoder, self._rules, replay=True)
        if isinstance(read, Unreadable):
            self._count(f"error.{read.stage}")
            log.warning(
                "replay: %s at %s/%d/%d: %s", type(read.error).__name__, *_where(rec), read.error
            )
            return
        for call in read.calls:
            self._take(call, read.event_time)

    def _take(self, call: MeisaCall, event_time: float | None) -> None:
        if call.on_replay == "skip":  # the rules drop these already; never send one by accident
            self._count(f"policy_skip.{call.kind}")
        elif call.kind in FOLDABLE:
            self._folds.setdefault(call.contact_key, ContactFold(call.contact_key)).apply(call)
        else:
            self._calls.append((call, event_time))


def _where(rec: Record) -> tuple[str, int, int]:
    return rec.topic, rec.partition, rec.offset


class SendPhase:
    """Sends every unfinished contact (its folded calls, in order), then the non-foldable calls.

    Contacts are spread over SHARDS shards; each worker owns whole shards, so one contact's calls
    never run concurrently and always in order. Progress is marked per call as it completes.
    """

    def __init__(
        self,
        store: StateStore,
        deliver: Deliver,
        *,
        clock: Callable[[], float],
        workers: int,
        progress: Progress | None = None,
    ) -> None:
        self._store = store
        self._deliver = deliver
        self._clock = clock
        self._workers = max(1, min(workers, SHARDS))
        self._progress = progress
        self._left, self._done = store.left()

    async def run(self) -> None:
        """Outcomes are counted in the state file (sent.KIND, skip.REASON, failed.KIND).

        Contacts whose fold has an upsert go first, then tag-only folds, then the loose calls
        (tracks, triggers, enrolments): no call asks Meisa about a contact the replay is still
        creating (a tag keyed by email alone folds apart from the upsert keyed by external_id).
        """
        self._tick()
        await self._each_worker(self._creators)
        await self._each_worker(self._contacts)
        await self._each_worker(self._loose_calls)

    async def _each_worker(self, work: Callable[[int], Awaitable[None]]) -> None:
        async def worker(first: int) -> None:
            for shard in range(first, SHARDS, self._workers):
                await work(shard)

        tasks = [asyncio.create_task(worker(i)) for i in range(self._workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _creators(self, shard: int) -> None:
        await self._contacts(shard, creators_only=True)

    async def _contacts(self, shard: int, *, creators_only: bool = False) -> None:
        for fold, done in self._store.pending_contacts(shard):
            if creators_only and fold.upsert is None:
                continue
            calls = fold.calls()
            for index in range(done, len(calls)):
                outcome = await self._send(calls[index])
                self._store.mark_contact(fold.key, index + 1, outcome)
                self._advance()

    async def _loose_calls(self, shard: int) -> None:
        for pending in self._store.pending_calls(shard):
            if is_stale(pending.call, pending.event_epoch, self._clock()):
                outcome = "skip.stale"
            else:
                outcome = await self._send(pending.call)
            self._store.mark_call(pending.seq, outcome)
            self._advance()

    async def _send(self, call: MeisaCall) -> str:
        """One call through the Deliverer; returns the outcome counter name. Halts propagate."""
        try:
            await self._deliver(call)
        except SkipOutcome as exc:
            return f"skip.{exc.reason}"
        except PoisonError as exc:
            log.warning("replay: %s for contact %s failed: %s", call.kind, call.contact_key, exc)
            return f"failed.{call.kind}"
        except HaltError:
            raise
        return f"sent.{call.kind}"

    def _advance(self) -> None:
        self._left -= 1
        self._done += 1
        self._tick()

    def _tick(self) -> None:
        if self._progress is not None:
            self._progress.update(phase="send", calls_sent=self._done, calls_left=self._left)
