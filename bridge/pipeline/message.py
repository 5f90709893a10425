"""A Kafka message on its way through the pipeline, and how it failed if it did."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.errors import PoisonError, Stage
from bridge.events import Envelope, Record
from bridge.observability.tracing import NO_TRACE, MessageTrace

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a message is poison: the first failing call (or decode/map step) decides."""

    error: PoisonError
    stage: Stage
    rule: str = ""
    attempts: int = 1


@dataclass(eq=False)
class InFlight:
    """Mutable state of one message: calls still outstanding, the first failure, cancellation.

    `cancelled` is set when its partition is revoked or lost: queued calls that only serve
    cancelled messages are dropped, because the partition's new owner will consume them again.
    `revoked` is set when a revoke starts, on the messages past everything already finished or
    started: no new call starts for them (the new owner reads them), and one that would need a
    call is cancelled instead. Earlier messages may still finish, so the committed position
    reaches the work already done and the new owner does not repeat it. `started` is set once a
    call of the message was handed to Meisa delivery.
    """

    record: Record
    envelope: Envelope | None = None
    event_time: float | None = None  # epoch seconds (bridge.events.Envelope.event_epoch)
    remaining: int = 0
    failure: Failure | None = None
    cancelled: bool = False
    revoked: bool = False
    started: bool = False
    skipped: list[str] = field(default_factory=list)
    trace: MessageTrace = NO_TRACE  # bridge.observability.tracing; the no-op when tracing is off

    @property
    def tp(self) -> TopicPartition:
        return self.record.tp

    @property
    def offset(self) -> int:
        return self.record.offset

    def epoch(self) -> float | None:
        """The event time: as the pipeline read it, else (set up without it) the envelope's."""
        if self.event_time is not None or self.envelope is None:
            return self.event_time
        return self.envelope.event_epoch()

    def fail(self, failure: Failure) -> None:
        if self.failure is None:
            self.failure = failure


@dataclass(frozen=True, slots=True)
class Sending:
    """What a call is delivered for: the messages it serves (several once upserts coalesce)."""

    messages: tuple[InFlight, ...]

    @property
    def event_time(self) -> float | None:
        """The newest event time of the messages: max_age is measured from it."""
        epochs = [e for m in self.messages if (e := m.epoch()) is not None]
        return max(epochs) if epochs else None
