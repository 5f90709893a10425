"""What `status` shows, as frozen values, and the arithmetic behind it (no I/O here).

Lag is counted as the bridge reads: from the group's committed offset, or, where the group has
committed nothing, from where `auto.offset.reset` sends a new member (the start of the partition
by default), up to the last stable offset. The pace is the committed offsets' progress between
two samples; the time to catch up divides the lag by the pace net of what arrived meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.kafka.protocols import GroupState, TopicPartition


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    start: int
    end: int
    committed: int | None
    lag: int
    owner: str | None  # member id of the member that holds it, None: unassigned


def lag_of(start: int, end: int, committed: int | None, reset: str = "earliest") -> int:
    """Messages the group has still to read in [start, end). A committed offset below the
    start (deleted by retention) reads from the start, as the consumer would after the reset."""
    if committed is not None:
        return max(0, end - max(committed, start))
    return 0 if reset == "latest" else max(0, end - start)


def partition_lags(
    bounds: Mapping[TopicPartition, tuple[int, int]],
    committed: Mapping[TopicPartition, int],
    group: GroupState,
    reset: str = "earliest",
) -> list[PartitionLag]:
    owners = {tp: m.member_id for m in group.members for tp in m.assignment}
    rows = []
    for tp in sorted(bounds):
        start, end = bounds[tp]
        done = committed.get(tp)
        lag = lag_of(start, end, done, reset)
        rows.append(PartitionLag(tp[0], tp[1], start, end, done, lag, owners.get(tp)))
    return rows


@dataclass(frozen=True, slots=True)
class Sample:
    """Committed and end offsets at one moment (seconds on any monotonic clock)."""

    at: float
    committed: Mapping[TopicPartition, int]
    end: Mapping[TopicPartition, int]


@dataclass(frozen=True, slots=True)
class Pace:
    """Progress between two samples: messages committed and arrived per second, and the
    seconds until the lag is gone at that pace (None: it does not shrink)."""

    seconds: float
    committed_per_second: float
    arriving_per_second: float
    eta_seconds: float | None


def pace_between(first: Sample, second: Sample, lag: int) -> Pace:
    """Partitions that have a committed offset in both samples count (a first commit says
    nothing about how much was read before it)."""
    seconds = max(second.at - first.at, 1e-9)
    done = sum(
        max(0, offset - first.committed[tp])
        for tp, offset in second.committed.items()
        if tp in first.committed
    )
    arrived = sum(max(0, end - first.end[tp]) for tp, end in second.end.items() if tp in first.end)
    committed_rate, arriving_rate = done / seconds, arrived / seconds
    return Pace(seconds, committed_rate, arriving_rate, eta(lag, committed_rate - arriving_rate))


def eta(lag: int | float, drain_per_second: float) -> float | None:
    """Seconds until `lag` is gone when it shrinks by `drain_per_second`; 0 when there is none,
    None when it does not shrink."""
    if lag <= 0:
        return 0.0
    if drain_per_second <= 0 or math.isnan(drain_per_second):
        return None
    return lag / drain_per_second


@dataclass(frozen=True, slots=True)
class Budget:
    """What one replica's /metrics says about the API key's rate budget and that replica.

    `per_minute`: this replica's budget now (its share, after any lowering on repeated 429s);
    `key_per_minute`/`key_per_hour`: the whole key's limits; `requests_per_event`: Meisa
    requests per Kafka message this replica handled so far (None before the first message)."""

    per_minute: float | None = None
    share: float | None = None
    key_per_minute: float | None = None
    key_per_hour: float | None = None
    throttled: str | None = None
    halted: bool = False
    assigned_partitions: int | None = None
    requests_per_event: float | None = None

    def key_requests_per_second(self) -> float | None:
        """The most the whole key sustains: the tighter of its minute and hour limits."""
        rates = [r / s for r, s in ((self.key_per_minute, 60), (self.key_per_hour, 3600)) if r]
        return min(rates) if rates else None

    def eta_at_budget(self, lag: int) -> float | None:
        """Seconds to read `lag` messages if the whole key's budget went to them at this
        replica's requests per message: the soonest the lag can be gone while Meisa's budget is
        what limits the bridge. None when a figure is missing."""
        rate = self.key_requests_per_second()
        if rate is None or self.requests_per_event is None:
            return None
        if self.requests_per_event == 0:
            return 0.0
        return eta(lag, rate / self.requests_per_event)


@dataclass(frozen=True, slots=True)
class BridgeView:
    """A replica's /metrics: reached (with its budget) or not (with why)."""

    url: str
    budget: Budget | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetters:
    topic: str
    records: int | None  # None: the topic does not exist
    partitions: int = 0


@dataclass(frozen=True, slots=True)
class Status:
    group: GroupState
    partitions: list[PartitionLag]
    missing_topics: list[str] = field(default_factory=list)
    dead_letters: DeadLetters | None = None
    pace: Pace | None = None
    bridge: BridgeView | None = None

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)
