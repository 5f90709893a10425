"""A Kafka message on its way through the pipeline, and how it failed if it did."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from bridge.dlq import Failure
from bridge.events import Envelope, Record
from bridge.observability.tracing import NO_TRACE, MessageTrace

TopicPartition = tuple[str, int]


class MessageState(Enum):
    """Where a message is between being read and being done or dropped.

        QUEUED ──start──> STARTED ──revoke──> REVOKED ──cancel──> CANCELLED
           └─────────────revoke──────────────────┘ ↑                 ↑
           └───────────────────cancel─────────────┴─────────────────┘ (from any state)

    QUEUED: read, no call of it handed to Meisa delivery yet. STARTED: a call of it holds (or
    held) a concurrency slot. REVOKED: its partition is being revoked: no new call starts for it
    (the new owner reads it), calls in progress finish. CANCELLED: its partition is gone (revoked,
    lost) or its calls were dropped: it never counts as done, the new owner sends it again.
    A move the table below does not allow leaves the state as it is: a revoked message whose
    merged upsert starts stays revoked, a cancelled one stays cancelled.
    """

    QUEUED = "queued"
    STARTED = "started"
    REVOKED = "revoked"
    CANCELLED = "cancelled"

    # Members are singletons compared by identity; Enum's own hash is a Python call on the name,
    # paid in every state move of every message.
    __hash__ = object.__hash__


# Module names for the members: `MessageState.STARTED` is a slow class attribute lookup on
# Python 3.11, and every message is moved and asked a few times.
_STARTED, _REVOKED, _CANCELLED = MessageState.STARTED, MessageState.REVOKED, MessageState.CANCELLED


_MOVES: dict[MessageState, frozenset[MessageState]] = {
    MessageState.QUEUED: frozenset(
        {MessageState.STARTED, MessageState.REVOKED, MessageState.CANCELLED}
    ),
    MessageState.STARTED: frozenset({MessageState.REVOKED, MessageState.CANCELLED}),
    MessageState.REVOKED: frozenset({MessageState.CANCELLED}),
    MessageState.CANCELLED: frozenset(),
}
_STOPPED = frozenset({_REVOKED, _CANCELLED})


@dataclass(eq=False)
class InFlight:
    """Mutable state of one message: calls still outstanding, the first failure, its state.

    A revoke marks REVOKED the messages past everything already finished or started
    (bridge.pipeline.partition): earlier messages may still finish, so the committed position
    reaches the work already done and the new owner does not repeat it; a call that would start
    for a revoked message is cancelled instead. Queued calls that only serve cancelled messages
    are dropped, because the partition's new owner will consume them again.
    """

    record: Record
    envelope: Envelope | None = None
    event_time: float | None = None  # epoch seconds (bridge.events.Envelope.event_epoch)
    remaining: int = 0
    failure: Failure | None = None
    state: MessageState = MessageState.QUEUED
    skipped: list[str] = field(default_factory=list)
    trace: MessageTrace = NO_TRACE  # bridge.observability.tracing; the no-op when tracing is off

    def _move(self, to: MessageState) -> None:
        if to in _MOVES[self.state]:
            self.state = to

    def start(self) -> None:
        """A call of the message holds a slot: Meisa delivery has it."""
        self._move(_STARTED)

    def revoke(self) -> None:
        """Its partition is being revoked: no new call starts for it."""
        self._move(_REVOKED)

    def cancel(self) -> None:
        """Its partition is gone: it never counts as done."""
        self._move(_CANCELLED)

    @property
    def started(self) -> bool:
        return self.state is _STARTED

    @property
    def cancelled(self) -> bool:
        return self.state is _CANCELLED

    @property
    def stopped(self) -> bool:
        """No new call starts for it (revoked or cancelled)."""
        return self.state in _STOPPED

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
    """What a call is delivered for: the messages it serves (several once upserts coalesce).

    `event_time` is the newest event time of the messages (max_age is measured from it), worked
    out once: the dispatcher's guard and the deliverer's each read it for every call."""

    messages: tuple[InFlight, ...]
    event_time: float | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_time", _newest(self.messages))


def _newest(messages: tuple[InFlight, ...]) -> float | None:
    if len(messages) == 1:  # the usual call: one message
        return messages[0].epoch()
    epochs = [e for m in messages if (e := m.epoch()) is not None]
    return max(epochs) if epochs else None
