"""Redrive: one dead-lettered message through the CURRENT codec and rules, as if consumed anew.

The envelope gets the ORIGINAL topic, partition and offset (from the DLQ headers), so default
idempotency keys (`<event id or topic/partition/offset>:<rule>:<action>`) are the ones the first
attempt used and Meisa's idempotency window dedupes a trigger that did go out. Calls past their
max_age are skipped, as in the live path. A record that fails again is written back to the DLQ
with attempts + 1 (through bridge.dlq's producer) BEFORE it is marked redriven, so a crash in
between redrives it again rather than losing it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from bridge.dlq import DeadLetter, Failure
from bridge.dlq_admin.records import DlqRecord
from bridge.errors import PoisonError, SkipOutcome, Stage
from bridge.events import EventDecoder, EventRules
from bridge.meisa.calls import MeisaCall, is_stale
from bridge.outcome import Unreadable, read_record, schema_prefetch
from bridge.replay.runner import Deliver

log = logging.getLogger("bridge.dlq")

Outcome = Literal["ok", "skipped", "failed"]
DeadLetterSink = Callable[[DeadLetter], Awaitable[None]]
Mark = Callable[[DlqRecord, str], None]


@dataclass(slots=True)
class RedriveSummary:
    selected: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)  # by kind: sent (or, dry-run, planned)

    def count(self, outcome: str, calls: Iterable[MeisaCall]) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        for call in calls:
            self.calls[call.kind] = self.calls.get(call.kind, 0) + 1


class Redriver:
    """`deliver=None` is a dry run: decode and map, count the calls, send and mark nothing."""

    def __init__(
        self,
        decoder: EventDecoder,
        rules: EventRules,
        *,
        deliver: Deliver | None,
        dead_letter: DeadLetterSink | None,
        mark: Mark | None,
        clock: Callable[[], float],
    ) -> None:
        self._decoder = decoder
        self._rules = rules
        self._deliver = deliver
        self._dead_letter = dead_letter
        self._mark = mark
        self._clock = clock

    async def run(self, records: Iterable[DlqRecord]) -> RedriveSummary:
        summary = RedriveSummary()
        records = list(records)
        prefetch = schema_prefetch(self._decoder)
        if prefetch is not None:  # registry schemas, fetched off the loop before decoding
            await prefetch([rec.original() for rec in records])
        for rec in records:
            summary.selected += 1
            outcome, sent = await self.one(rec)
            summary.count(outcome, sent)
            if self._mark is not None:
                self._mark(rec, outcome)
        return summary

    async def one(self, rec: DlqRecord) -> tuple[Outcome, list[MeisaCall]]:
        """The outcome and the calls sent (dry run: the calls that would be sent)."""
        read = read_record(rec.original(), self._decoder, self._rules)
        if isinstance(read, Unreadable):
            return await self._failed(rec, read.error, read.stage, read.rule), []
        calls = read.calls
        now = self._clock()
        fresh = [c for c in calls if not is_stale(c, read.event_time, now)]
        if self._deliver is None:
            return ("ok" if fresh or not calls else "skipped"), fresh
        return await self._send(rec, fresh, stale=len(calls) - len(fresh))

    async def _send(
        self, rec: DlqRecord, calls: list[MeisaCall], *, stale: int
    ) -> tuple[Outcome, list[MeisaCall]]:
        assert self._deliver is not None
        sent: list[MeisaCall] = []
        for call in calls:
            try:
                await self._deliver(call)
            except SkipOutcome:
                stale += 1
                continue
            except PoisonError as exc:
                return await self._failed(rec, exc, "deliver", call.rule), sent
            sent.append(call)
        return ("skipped" if stale and not sent else "ok"), sent

    async def _failed(self, rec: DlqRecord, exc: PoisonError, stage: Stage, rule: str) -> Outcome:
        log.warning("redrive of DLQ %d/%d failed again: %s", rec.partition, rec.offset, exc)
        if self._dead_letter is not None:
            failure = Failure(error=exc, stage=stage, rule=rule, attempts=rec.attempts + 1)
            await self._dead_letter(DeadLetter(rec.original(), failure))
        return "failed"
