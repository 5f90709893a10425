"""The Envelope: one decoded Kafka message, whatever its codec, as the rules see it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bridge.meisa.calls import MeisaCall

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True, slots=True)
class Record:
    """A Kafka message exactly as delivered: the DLQ copies key, value and headers verbatim.

    Plain values, so everything past the Kafka seam (bridge.kafka) is testable without a broker.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp: int | None = None

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    @property
    def size(self) -> int:
        """Bytes of key, value and headers: what read-ahead accounts for the message."""
        size = len(self.key or b"") + len(self.value or b"")
        for name, value in self.headers:
            size += len(name) + len(value or b"")
        return size

    def decode_with(self, decoder: EventDecoder) -> Envelope:
        return decoder.decode(
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            key=self.key,
            value=self.value,
            headers=self.headers,
            timestamp=self.timestamp,
        )


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded event plus where it came from.

    `time` is the event's own time (CloudEvents `time`, or a configured field) as an ISO 8601
    string; `timestamp` is the Kafka record timestamp in epoch milliseconds.
    """

    topic: str
    partition: int
    offset: int
    data: Any
    id: str | None = None
    type: str | None = None
    source: str | None = None
    subject: str | None = None
    time: str | None = None
    key: bytes | None = None
    timestamp: int | None = None
    headers: Headers = ()

    def context(self) -> dict[str, Any]:
        """The mapping that rule expressions are evaluated against."""
        return {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "time": self.time,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
            "headers": {
                k: (v.decode("utf-8", "replace") if v is not None else None)
                for k, v in self.headers
            }
            if self.headers
            else {},
            "data": self.data,
        }

    @property
    def origin(self) -> str:
        """`topic/partition/offset`: unique per message, stable across replays."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    def event_epoch(self) -> float | None:
        """The event's time in epoch seconds: `time` if it parses, else the Kafka timestamp."""
        if self.time:
            try:
                return datetime.fromisoformat(self.time.replace("Z", "+00:00")).timestamp()
            except ValueError:
                pass
        return self.timestamp / 1000.0 if self.timestamp is not None else None


class EventDecoder(Protocol):
    """Bytes from Kafka -> Envelope (bridge.codecs.Decoder); raises DecodeError."""

    def decode(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None,
        timestamp: int | None,
    ) -> Envelope: ...


class EventRules(Protocol):
    """Envelope -> the calls the rules make (bridge.rules.RuleSet); raises MappingError."""

    def map(self, envelope: Envelope, *, replay: bool = False) -> list[MeisaCall]: ...
