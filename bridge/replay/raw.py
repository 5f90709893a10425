"""Batches of Kafka records as plain values, so replay is testable without a broker."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.events import Record


@dataclass(frozen=True, slots=True)
class Batch:
    """Records read, and per partition the next offset to read once they are processed."""

    records: list[Record]
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
