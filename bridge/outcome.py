"""Decode -> map -> outcome: the one path from a Kafka record to the calls its rules make, and
the one naming of what a call's answer means.

The live pipeline, replay, DLQ redrive, `plan` and rule tests all call `read_record`, so a record
that one of them maps, skips or rejects is mapped, skipped or rejected the same way by the others:

- a tombstone (no value and no CloudEvents binary headers) deletes a key on a compacted topic: it
  is no event, so it makes no call and is not poison;
- a DecodeError or MappingError (or any PoisonError) is `Unreadable`, poison at its stage;
- an unexpected exception of the codec or the rules is poison of that stage too, so one odd event
  cannot stop every partition (the DLQ breaker still halts a bad deploy);
- a RetryableError (e.g. the schema registry is down) is raised: the record is fine, it must not
  be dead-lettered, only read again later.

`read_record` is synchronous, and decoding never waits on the network while an event loop runs: a
record naming a registry schema the decoder has not fetched raises SchemaPending (retryable)
there. Callers on a loop first await `schema_prefetch(decoder)` with the records they are about
to read (the live consumer once per batch, `dlq redrive` once for its selection); the fetch runs
on a worker thread, and every later record of that schema finds it cached.

Most events of a busy topic are often ones no rule maps. `unmapped_type` tells those apart
before an Envelope is built, for plain JSON events with the bridge's own decoder and rules: it
answers only where `read_record` would answer `Mapped` with no call, and gives the event type
that Mapped's envelope would carry. The live pipeline asks it first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from bridge.codecs import UNDECIDED, Decoder, Undecided
from bridge.errors import (
    DecodeError,
    HaltError,
    MappingError,
    PoisonError,
    RetryableError,
    SkipOutcome,
    Stage,
)
from bridge.events import Envelope, EventDecoder, EventRules, Record
from bridge.meisa.calls import MeisaCall
from bridge.observability.tracing import NO_TRACE, MessageTrace
from bridge.rules.engine import RuleSet

Outcome = Literal["ok", "skipped", "retry", "poison", "halt"]


@dataclass(frozen=True, slots=True)
class Mapped:
    """The calls a record makes (none: no rule matched, or a tombstone)."""

    envelope: Envelope | None  # None: a tombstone, no event
    calls: list[MeisaCall]

    @property
    def tombstone(self) -> bool:
        return self.envelope is None

    @property
    def event_time(self) -> float | None:
        return self.envelope.event_epoch() if self.envelope is not None else None


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record that can never make its calls: poison at `stage`, naming the failing rule if any."""

    error: PoisonError
    envelope: Envelope | None  # None: the bytes did not decode

    @property
    def stage(self) -> Stage:
        return self.error.stage

    @property
    def rule(self) -> str:
        return self.error.rule or ""


def read_record(
    record: Record,
    decoder: EventDecoder,
    rules: EventRules,
    *,
    replay: bool = False,
    trace: MessageTrace = NO_TRACE,
) -> Mapped | Unreadable:
    """Decode and map one record (see the module docstring); raises only RetryableError.
    `trace` is told when each step ends (bridge.observability.tracing).

    Runs for every message the bridge reads, most of which often make no call: no closures."""
    if is_tombstone(record):
        return Mapped(None, [])
    try:
        envelope = record.decode_with(decoder)
    except Exception as exc:
        trace.decoded(None)
        return Unreadable(_poison(exc, DecodeError), None)
    trace.decoded(envelope)
    try:
        calls = rules.map(envelope, replay=replay)
    except Exception as exc:
        trace.mapped()
        return Unreadable(_poison(exc, MappingError), envelope)
    trace.mapped()
    return Mapped(envelope, calls)


def _poison(exc: Exception, poison: type[PoisonError]) -> PoisonError:
    """A step's exception as poison of that step; a RetryableError is raised again."""
    if isinstance(exc, RetryableError):
        raise exc
    if isinstance(exc, PoisonError):
        return exc
    return poison(f"unexpected {type(exc).__name__}: {exc}")


UnmappedType = Callable[[Record], "str | Undecided | None"]


def unmapped_type(decoder: EventDecoder, rules: EventRules) -> UnmappedType | None:
    """For the live pipeline: a check that gives the type of an event no rule maps, or
    UNDECIDED (`read_record` decides); None when the decoder or the rules cannot tell early."""
    if not (isinstance(decoder, Decoder) and isinstance(rules, RuleSet)):
        return None
    plain_type, matching = decoder.plain_type, rules.matching

    def check(record: Record) -> str | Undecided | None:
        event_type = plain_type(record)
        if event_type is UNDECIDED or matching(event_type, record.topic):
            return UNDECIDED
        return event_type

    return check


Prefetch = Callable[[Iterable[Record]], Awaitable[None]]


def schema_prefetch(decoder: EventDecoder) -> Prefetch | None:
    """The decoder's off-loop fetch of the registry schemas records name, None when it has no
    registry (nothing to fetch, nothing to await)."""
    if isinstance(decoder, Decoder) and decoder.registry is not None:
        return decoder.prefetch
    return None


def is_tombstone(record: Record) -> bool:
    """No value and no CloudEvents binary headers (a binary-mode event may carry no data)."""
    return record.value is None and not any(k.startswith("ce_") for k, _ in record.headers)


def outcome_of(error: BaseException | None) -> Outcome:
    """What a call's answer means for its message: ok, skipped, retry, poison or halt."""
    if error is None:
        return "ok"
    if isinstance(error, SkipOutcome):
        return "skipped"
    if isinstance(error, RetryableError):
        return "retry"
    if isinstance(error, HaltError):
        return "halt"
    return "poison"
