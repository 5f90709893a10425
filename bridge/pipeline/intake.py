"""The read step: each fetched record is tracked, decoded, mapped and routed.

A message is decoded and mapped as soon as it is fetched. A message without calls is done at
once, in the poll loop (busy topics carry mostly events no rule maps: bridge.outcome's
`unmapped_type` tells plain JSON ones by their type before an Envelope is built). Messages whose
calls are all triggers (a one-time code depends on nothing and is only useful now) go to the
dispatcher at once; the others wait in the lockstep buffer until no assigned partition could
still deliver an older event, so one person's calls reach their lane in event-time order.
Unreadable messages (decode or mapping failed) are finished at once as poison.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from bridge.codecs import UNDECIDED
from bridge.dlq import Failure
from bridge.errors import HaltError, OffsetOrderError, RetryableError
from bridge.events import EventDecoder, EventRules, Record
from bridge.meisa.calls import MeisaCall
from bridge.observability.tracing import NO_TRACING, MessageTrace, Tracing
from bridge.outcome import Mapped, Unreadable, read_record, unmapped_type
from bridge.pipeline.lockstep import Lockstep
from bridge.pipeline.message import InFlight
from bridge.pipeline.offsets import OffsetTracker
from bridge.pipeline.partition import Buffered, Partition, Partitions
from bridge.pipeline.readahead import MESSAGE_OVERHEAD_BYTES
from bridge.pipeline.tally import EventTally

log = logging.getLogger("bridge.pipeline")


class Intake:
    """Routes fetched records: done at once, into the lockstep, to `submit`, or `finished` as
    poison. `count` is the DLQ breaker's (bridge.pipeline.deadletters): False when it tripped."""

    def __init__(
        self,
        *,
        decoder: EventDecoder,
        rules: EventRules,
        tracker: OffsetTracker,
        partitions: Partitions,
        lockstep: Lockstep[Buffered],
        tally: EventTally,
        submit: Callable[[InFlight, Sequence[MeisaCall]], None],
        finished: Callable[[InFlight], None],
        count: Callable[[bool], bool],
        halt: Callable[[HaltError], None],
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self._decoder = decoder
        self._rules = rules
        self._unmapped = unmapped_type(decoder, rules)
        self._tracker = tracker
        self._partitions = partitions
        self._lockstep = lockstep
        self._tally = tally
        self._submit = submit
        self._finished = finished
        self._count = count
        self._halt = halt
        self._tracing = tracing

    def use_rules(self, rules: EventRules) -> None:
        """Map every record accepted from now on with `rules` (a reload, between two records);
        messages already mapped keep their calls."""
        self._rules = rules
        self._unmapped = unmapped_type(self._decoder, rules)

    def accept(self, record: Record) -> None:
        part = self._partitions.reading(record.tp)
        if part is None:
            return  # fetched before a revoke in the same consume(); the new owner reads it
        if not self._track(record):
            return
        if self._unmapped is not None:
            event_type = self._unmapped(record)
            if event_type is not UNDECIDED:
                self._no_call(part, record, event_type)
                return
        trace = self._tracing.begin(record)
        try:
            read = read_record(record, self._decoder, self._rules, trace=trace)
        except RetryableError as exc:
            # e.g. the schema registry is down: the message is fine, so it must not be
            # dead-lettered; halting commits nothing past it and a restart reads it again.
            self._halt(HaltError(f"{record.topic}/{record.partition}@{record.offset}: {exc}"))
            return
        if isinstance(read, Unreadable) or read.calls:
            self._start(part, record, read, trace)
        elif read.envelope is None:
            # A tombstone deletes a key on a compacted topic: no event, nothing to send or DLQ.
            self._tracker.done(record.tp, record.offset)
            self._tally.count(record.topic, None, "tombstone")
        else:
            self._no_call(part, record, read.envelope.type)

    def _start(
        self, part: Partition, record: Record, read: Mapped | Unreadable, trace: MessageTrace
    ) -> None:
        """A message with calls (or poison): its calls go to the dispatcher, through the
        lockstep unless they are all triggers; poison goes to the DLQ."""
        message = InFlight(record, envelope=read.envelope, trace=trace)
        part.add(message)
        if isinstance(read, Unreadable):
            message.fail(Failure(error=read.error, stage=read.stage, rule=read.rule, attempts=0))
            self._finished(message)
            return
        message.event_time = read.event_time
        calls = read.calls
        if _all_triggers(calls):
            self._submit(message, calls)
            return
        # Event times are epoch seconds; an event with no time at all happened "now".
        event_time = message.event_time if message.event_time is not None else time.time()
        trace.waiting("lockstep")
        self._lockstep.push(record.tp, event_time, (message, calls))

    def _track(self, record: Record) -> bool:
        """False: nothing to do, the offset was seen already or an earlier owner finished it
        (the committed metadata); counted as finished then."""
        try:
            fresh = self._tracker.track(
                record.tp, record.offset, record.size + MESSAGE_OVERHEAD_BYTES
            )
        except OffsetOrderError:
            log.warning(
                "ignoring %s partition %d offset %d: already seen", *record.tp, record.offset
            )
            return False
        if not fresh:
            self._tally.count(record.topic, None, "finished_before")
        return fresh

    def _no_call(self, part: Partition, record: Record, event_type: str | None) -> None:
        """An event that makes no call is done at once: most events of a busy topic are ones no
        rule maps, so this path builds no InFlight and touches no dispatcher."""
        if self._count(False):
            self._tracker.done(record.tp, record.offset)
            self._tally.count(record.topic, event_type, "ok")
            part.quiet = record

    def advance(self) -> None:
        """Let the lockstep know how far in event time the partitions whose last messages made
        no call have got, so a partition carrying only such events does not hold the others'
        calls back until it is read to its end. One event time per partition and batch, read
        only while the lockstep holds messages (events no rule maps skip their time otherwise)."""
        quiet = self._partitions.take_quiet()
        if quiet and self._lockstep.buffered():
            for record in quiet:
                event_time = self._event_time(record)
                if event_time is not None:
                    self._lockstep.advance(record.tp, event_time)

    def _event_time(self, record: Record) -> float | None:
        """The record's event time, decoded again (no rules: it is known to make no call)."""
        try:
            return record.decode_with(self._decoder).event_epoch()
        except Exception:  # it decoded moments ago; at worst the lockstep waits as before
            return None


def _all_triggers(calls: Sequence[MeisaCall]) -> bool:
    for call in calls:  # noqa: SIM110 (a loop: all() over a generator costs more, per message)
        if not call.traits.trigger:
            return False
    return True
