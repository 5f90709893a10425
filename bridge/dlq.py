"""Dead-letter topic: the producer that writes poison messages, and the breaker that halts.

A DLQ record keeps the original key, value and headers byte for byte and appends the headers named
below (all UTF-8 strings). The producer is idempotent with acks=all; `DeadLetterProducer.send`
returns only after the broker acknowledged the record, and only then may the original offset count
as done. If the record cannot be written the bridge halts (`DeadLetterWriteFailed`): a poison
message is never dropped silently. Both halts, it and `NoDeadLetterTopic`, live in bridge.errors.

`DlqBreaker` watches the share of poison messages: too many in a row, or too large a ratio within
a window, raises DlqBreakerTripped so that a bad deploy halts the bridge instead of draining a
topic into the DLQ.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from bridge.errors import (
    BrokerError,
    DeadLetterWriteFailed,
    DlqBreakerTripped,
    PoisonError,
    Stage,
    StartupRefused,
)
from bridge.events import Record
from bridge.kafka.protocols import Producer
from bridge.observability import redact

log = logging.getLogger("bridge.dlq")

ERROR_CLASS = "meisa-bridge.error.class"
ERROR_MESSAGE = "meisa-bridge.error.message"  # emails masked, secrets redacted, <= 1,000 chars
RULE = "meisa-bridge.rule"  # the rule whose action failed ("" for decode errors)
STAGE = "meisa-bridge.stage"  # decode | map | deliver
TOPIC = "meisa-bridge.topic"  # where the original message was consumed from
PARTITION = "meisa-bridge.partition"
OFFSET = "meisa-bridge.offset"
TIMESTAMP = "meisa-bridge.timestamp"  # the original Kafka timestamp, epoch milliseconds
ATTEMPTS = "meisa-bridge.attempts"  # delivery attempts made before giving up
# With tracing on (only then): the message's trace id, 32 hex digits, after the headers above.
TRACE_ID = "meisa-bridge.trace_id"
DLQ_HEADERS = (
    ERROR_CLASS,
    ERROR_MESSAGE,
    RULE,
    STAGE,
    TOPIC,
    PARTITION,
    OFFSET,
    TIMESTAMP,
    ATTEMPTS,
)

_MAX_MESSAGE = 1000

RawHeaders = list[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a message is poison: the first failing call (or decode/map step) decides."""

    error: PoisonError
    stage: Stage
    rule: str = ""
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A poison message: the record as consumed (its key, value and headers are written back
    byte for byte) and why it failed."""

    record: Record
    failure: Failure
    trace_id: str | None = None  # with tracing on: the message's trace


def build_dlq_headers(
    *,
    error: BaseException,
    stage: Stage,
    rule: str,
    topic: str,
    partition: int,
    offset: int,
    timestamp: int | None,
    attempts: int,
) -> RawHeaders:
    """The error headers appended to a DLQ record, in DLQ_HEADERS order."""
    message = redact(str(error), mask_emails=True)[:_MAX_MESSAGE]
    values = (
        type(error).__name__,
        message,
        rule,
        stage,
        topic,
        str(partition),
        str(offset),
        "" if timestamp is None else str(timestamp),
        str(attempts),
    )
    return [(name, value.encode("utf-8")) for name, value in zip(DLQ_HEADERS, values, strict=True)]


def dlq_record_headers(letter: DeadLetter) -> RawHeaders:
    """Original headers verbatim, then the error headers."""
    record, failure = letter.record, letter.failure
    extra = build_dlq_headers(
        error=failure.error,
        stage=failure.stage,
        rule=failure.rule,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=record.timestamp,
        attempts=failure.attempts,
    )
    if letter.trace_id:
        extra.append((TRACE_ID, letter.trace_id.encode("ascii")))
    return [*record.headers, *extra]


class DeadLetterSink(Protocol):
    """Where the pipeline sends poison: the DLQ producer, or a shadow run's recorder."""

    verb: str  # what the pipeline's log line says happened to the message

    async def send(self, letter: DeadLetter) -> None: ...


class DeadLetterProducer:
    """Writes DLQ records; `await send(letter)` returns once the broker acknowledged it."""

    verb = "dead-lettered"

    def __init__(self, producer: Producer, topic: str) -> None:
        self.topic = topic
        self._producer = producer

    def __repr__(self) -> str:
        return f"DeadLetterProducer(topic={self.topic!r})"

    def check_topic(self, timeout: float = 10.0) -> None:
        """Refuse to start when the broker says the topic does not exist or may not be used.

        Without this, the first poison message would wait for the topic until librdkafka gives
        up (about 30 s) and then halt the bridge. A broker that does not answer is left to the
        consumer to report; the first DLQ write would still halt on a missing topic.
        """
        state = self._producer.topic_state(self.topic, timeout)
        if state.status == "missing":
            raise StartupRefused(
                f"dead_letter_topic {self.topic!r} does not exist; create it (the bridge never "
                "creates topics) or change dead_letter_topic"
            )
        if state.status == "forbidden":
            raise StartupRefused(
                f"dead_letter_topic {self.topic!r}: not authorized (the bridge's principal needs "
                "Describe and Write on it)"
            )
        if state.status != "ok":
            log.warning("could not check dead_letter_topic %r: %s", self.topic, state.detail)

    async def send(self, letter: DeadLetter) -> None:
        try:
            await self._producer.send(
                self.topic,
                key=letter.record.key,
                value=letter.record.value,
                headers=dlq_record_headers(letter),
            )
        except BrokerError as exc:  # refused (e.g. too large), or never acknowledged
            raise DeadLetterWriteFailed(f"DLQ write to {self.topic}: {exc}") from None

    def close(self, timeout: float = 10.0) -> int:
        """Flush outstanding records; returns how many are still not delivered."""
        return self._producer.flush(timeout)


class DlqBreaker:
    """Trips after `max_consecutive` poison messages in a row, or when more than `max_ratio` of
    the last `window` messages were poison (checked once the window is full). 0 disables a check.
    """

    def __init__(self, *, max_consecutive: int, max_ratio: float, window: int) -> None:
        self.max_consecutive = max_consecutive
        self.max_ratio = max_ratio
        self._window: deque[bool] = deque(maxlen=max(window, 1))
        self._poison = 0  # poison messages in the window: kept, not summed per message
        self._consecutive = 0

    def fill(self) -> tuple[float, float]:
        """How close each check is to tripping, (consecutive, ratio); 1 = at its limit (0: off).

        The ratio check trips once the window is full and more than `max_ratio` of it is
        poison, so its fill is the poison count over `max_ratio` times the window's length."""
        consecutive = self._consecutive / self.max_consecutive if self.max_consecutive > 0 else 0.0
        size = self._window.maxlen or 1
        ratio = self._poison / (self.max_ratio * size) if self.max_ratio > 0 else 0.0
        return consecutive, ratio

    def record(self, poison: bool) -> None:
        """Count one finished message; raises DlqBreakerTripped when a limit is passed."""
        window = self._window
        if not poison and not self._poison:  # the usual case: nothing poison to weigh
            window.append(False)
            self._consecutive = 0
            return
        if len(window) == window.maxlen:
            self._poison -= window[0]  # about to drop out of the window
        window.append(poison)
        self._poison += poison
        self._consecutive = self._consecutive + 1 if poison else 0
        if self.max_consecutive > 0 and self._consecutive >= self.max_consecutive:
            raise DlqBreakerTripped(
                f"{self._consecutive} poison messages in a row (dlq.max_consecutive="
                f"{self.max_consecutive}); halting instead of draining the topic into the DLQ"
            )
        if self.max_ratio > 0 and len(window) == window.maxlen:
            ratio = self._poison / len(window)
            if ratio > self.max_ratio:
                raise DlqBreakerTripped(
                    f"{ratio:.0%} of the last {len(window)} messages were poison "
                    f"(dlq.max_ratio={self.max_ratio}); halting"
                )
