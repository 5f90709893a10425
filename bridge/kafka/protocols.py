"""What the rest of the bridge needs from Kafka, as small protocols and plain values.

    Source        the live pipeline's consumer: subscribe with a rebalance listener (told the
                  committed offsets and metadata of what it is assigned), consume records and
                  end-of-partition events, pause/resume, commit explicit offsets with metadata,
                  watermarks, fetch lags and partition counts
    Producer      write a record and wait for the broker's acknowledgement; check a topic
    Admin         which topics exist; create one; a group's committed offsets, members and
                  assignment, and the offset range of partitions (the `status` command)
    RangeReader   read fixed offset ranges without a group membership or commits (replay, DLQ)

bridge.kafka.source, .producer, .admin and .ranges implement them on confluent-kafka;
bridge.kafka.memory implements them on an in-memory broker for tests. Nothing here imports the
client library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from bridge.events import Record

TopicPartition = tuple[str, int]
Headers = Sequence[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    """A committed position and the string the broker stores with it (bridge.pipeline.finished:
    the offsets already finished past it)."""

    offset: int
    metadata: str = ""


class RebalanceListener(Protocol):
    """The pipeline's side of a rebalance. The source awaits each handler on the event loop and
    applies the assignment change after it returned."""

    async def on_assign(
        self, tps: list[TopicPartition], committed: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> None:
        """`committed`: the group's committed offset and metadata of the partitions that have
        one (read before the handler runs; absent when the broker did not answer in time)."""
        ...

    async def on_revoke(self, tps: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Returns the offsets to commit before the partitions go to their new owner."""
        ...

    async def on_lost(self, tps: list[TopicPartition]) -> None:
        """The partitions may already belong to another member: nothing may be committed."""
        ...


class Source(Protocol):
    """Subscribe, consume batches, pause/resume, commit explicit offsets, close."""

    group_id: str
    # Called on the loop when the client loses a broker connection (None: nobody listens).
    on_unreachable: Callable[[], None] | None

    async def start(self, listener: RebalanceListener, *, callback_timeout: float) -> None:
        """Join the group; rebalance handlers that run longer than `callback_timeout` fail."""

    async def consume(
        self, max_messages: int, wait: float
    ) -> tuple[list[Record], list[TopicPartition]]:
        """Records, and the partitions whose end was reached after them. Rebalance handlers run
        inside this call. Raises BrokerError on a fatal error."""
        ...

    async def commit(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Commit now; returns what was committed (nothing when a rebalance ran since the offsets
        were computed). A source whose broker refuses the metadata as too large commits the
        offsets without it from then on. Raises BrokerError on failure."""
        ...

    async def pause(self, tps: Iterable[TopicPartition]) -> None: ...

    async def resume(self, tps: Iterable[TopicPartition]) -> None: ...

    async def high_watermarks(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Last known high watermarks (no broker round trip), for the lag metric."""
        ...

    async def partition_counts(self) -> dict[str, int]:
        """Partitions of each subscribed topic that exists (a metadata request)."""
        ...

    async def fetch_lags(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Messages between the position and the high watermark where both are known: 0 caught
        up, more: data on its way, absent: not known yet."""
        ...

    async def close(self) -> None:
        """Leave the group (the revoke handler commits what is done)."""


@dataclass(frozen=True, slots=True)
class TopicState:
    """What the broker says about a topic a producer is about to use."""

    status: Literal["ok", "missing", "forbidden", "unknown"]
    detail: str = ""


class Producer(Protocol):
    async def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Returns once the broker acknowledged the record; raises BrokerError."""

    def send_sync(
        self, topic: str, *, partition: int, value: bytes | None, headers: Headers
    ) -> None:
        """The same, blocking, for command-line tools."""

    def topic_state(self, topic: str, timeout: float) -> TopicState: ...

    def flush(self, timeout: float) -> int:
        """Wait for outstanding records; returns how many are still not acknowledged."""
        ...


@dataclass(frozen=True, slots=True)
class GroupMember:
    """One member of a consumer group and the partitions it owns. `target`: the assignment the
    coordinator is moving it to (consumer protocol only; None when the broker does not say)."""

    member_id: str
    client_id: str
    host: str
    assignment: tuple[TopicPartition, ...]
    target: tuple[TopicPartition, ...] | None = None


@dataclass(frozen=True, slots=True)
class GroupState:
    """A consumer group as the coordinator describes it. `protocol`: classic, consumer (KIP-848)
    or unknown; `state`: stable, empty, dead (no such group), preparing_rebalance, ..."""

    group: str
    protocol: str
    state: str
    assignor: str
    members: tuple[GroupMember, ...]


class Admin(Protocol):
    def missing_topics(self, topics: Iterable[str], timeout: float) -> list[str]:
        """Those of `topics` the cluster does not have; BrokerError when no broker answers."""
        ...

    def ensure_topic(
        self, topic: str, *, partitions: int, config: Mapping[str, str], timeout: float
    ) -> bool:
        """Create the topic unless it exists; True when this call created it."""
        ...

    def offset_bounds(
        self, topics: Iterable[str], timeout: float
    ) -> dict[TopicPartition, tuple[int, int]]:
        """(start, end) of every partition of those `topics` that exist; the end is the last
        stable offset, what a read_committed consumer reads up to. BrokerError when no broker
        answers."""
        ...

    def committed_offsets(
        self, group: str, tps: Iterable[TopicPartition], timeout: float
    ) -> dict[TopicPartition, int]:
        """The group's committed offsets of `tps`; a partition without one is absent."""
        ...

    def describe_group(self, group: str, timeout: float) -> GroupState:
        """The group's protocol, state, members and their assignment (state `dead`, no members:
        no such group)."""
        ...


@dataclass(frozen=True, slots=True)
class Range:
    """A fixed [start, end) of one partition and `position`, the next offset to read."""

    topic: str
    partition: int
    start: int
    end: int
    position: int

    @property
    def left(self) -> int:
        return max(0, self.end - self.position)


@dataclass(frozen=True, slots=True)
class Batch:
    """Records read, and per partition the next offset to read once they are processed."""

    records: list[Record]
    positions: dict[TopicPartition, int] = field(default_factory=dict)


class RangeReader(Protocol):
    def plan_ranges(
        self, topics: list[str], start_ms: int | None, end_ms: int | None
    ) -> list[Range]:
        """Fixed [start, end) per partition. None means earliest (start) or now (end)."""
        ...

    def read_ranges(self, ranges: list[Range], *, batch_size: int = 500) -> Iterator[Batch]:
        """Every record in [position, end) of each range, in batches, then stop."""
        ...

    def read_one(self, topic: str, partition: int, offset: int) -> Record | None: ...

    def scan_topic(self, topic: str) -> Iterator[Record]:
        """Everything in a topic up to its current end."""
        ...

    def close(self) -> None: ...
