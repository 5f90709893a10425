"""Kafka records as plain values, so everything past the Kafka seam is testable without a broker."""

from __future__ import annotations

from dataclasses import dataclass, field

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True, slots=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Records read, and per partition the next offset to read once they are processed."""

    records: list[RawRecord]
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
