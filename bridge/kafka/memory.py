"""An in-memory Kafka for tests: topics of partitioned logs, committed offsets per group, and a
Source, Producer, Admin and RangeReader on them (bridge.kafka.protocols), as arroyo ships a
LocalBroker. Everything runs on the event loop; nothing touches the network.

The source behaves as one member of its group, the way the pipeline sees librdkafka:

- `start()` subscribes; the first `consume()` assigns every partition of the topics, from the
  group's committed offset (else the beginning: `auto.offset.reset=earliest`), and tells the
  listener the committed offsets with their metadata;
- rebalances a test asks for (`revoke`, `lose`, `assign`) run at the start of the next
  `consume()`, as librdkafka runs its callbacks inside poll; a revoke commits what the listener
  returns, a loss commits nothing;
- paused partitions are not fetched; a partition whose position reaches its end reports the end
  once (again after new records arrived and were read);
- `fetch_lags` and `high_watermarks` are exact; `fail_commits` makes commits raise BrokerError.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from bridge.errors import BrokerError, ConfigError
from bridge.events import Record
from bridge.kafka.protocols import (
    Batch,
    GroupMember,
    GroupState,
    Headers,
    OffsetAndMetadata,
    Range,
    RebalanceListener,
    TopicPartition,
    TopicState,
)


class MemoryBroker:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._logs: dict[str, list[list[Record]]] = {}
        self._committed: dict[tuple[str, TopicPartition], OffsetAndMetadata] = {}
        self._clock = clock
        self._listeners: list[asyncio.Event] = []
        self.sources: list[MemorySource] = []  # the group members, for MemoryAdmin

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        self._logs.setdefault(topic, [[] for _ in range(partitions)])

    def topics(self) -> list[str]:
        return list(self._logs)

    def partitions(self, topic: str) -> int:
        return len(self._logs.get(topic, ()))

    def produce(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int = 0,
        headers: Headers = (),
        timestamp_ms: int | None = None,
    ) -> int:
        """Append a record; returns its offset. The topic must exist."""
        log = self._logs[topic][partition]
        record = Record(
            topic=topic,
            partition=partition,
            offset=len(log),
            key=key,
            value=value,
            headers=tuple(headers),
            timestamp=int(self._clock() * 1000) if timestamp_ms is None else timestamp_ms,
        )
        log.append(record)
        for wake in self._listeners:
            wake.set()
        return record.offset

    def log(self, topic: str, partition: int) -> list[Record]:
        return list(self._logs[topic][partition])

    def high(self, tp: TopicPartition) -> int:
        return len(self._logs[tp[0]][tp[1]])

    def committed(self, group: str, tp: TopicPartition) -> int | None:
        found = self._committed.get((group, tp))
        return None if found is None else found.offset

    def committed_metadata(self, group: str, tp: TopicPartition) -> OffsetAndMetadata | None:
        return self._committed.get((group, tp))

    def commit(self, group: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        for tp, committed in offsets.items():
            self._committed[(group, tp)] = committed

    def _subscribe(self, wake: asyncio.Event) -> None:
        self._listeners.append(wake)


@dataclass(slots=True)
class _Rebalance:
    kind: str  # assign | revoke | lose
    tps: list[TopicPartition] = field(default_factory=list)


class MemorySource:
    """One group member on a MemoryBroker (see the module docstring)."""

    def __init__(self, broker: MemoryBroker, topics: Iterable[str], group: str = "test") -> None:
        self.broker = broker
        self.topics = list(topics)
        self.group_id = group
        self.assigned: dict[TopicPartition, int] = {}  # partition -> position
        self.paused: set[TopicPartition] = set()
        self.fail_commits = False
        self.closed = False
        self.on_unreachable: Callable[[], None] | None = None
        self._ended: dict[TopicPartition, int] = {}  # position where the end was last reported
        self._pending: list[_Rebalance] = []
        self._listener: RebalanceListener | None = None
        self._wake = asyncio.Event()
        broker._subscribe(self._wake)
        broker.sources.append(self)

    # -- what a test drives ----------------------------------------------------------------------

    def assign(self, tps: Iterable[TopicPartition]) -> None:
        self._queue(_Rebalance("assign", list(tps)))

    def revoke(self, tps: Iterable[TopicPartition]) -> None:
        self._queue(_Rebalance("revoke", list(tps)))

    def lose(self, tps: Iterable[TopicPartition]) -> None:
        self._queue(_Rebalance("lose", list(tps)))

    def unreachable(self) -> None:
        """As if the client had lost its broker connection (KafkaSource's error callback)."""
        if self.on_unreachable is not None:
            self.on_unreachable()

    def _queue(self, event: _Rebalance) -> None:
        self._pending.append(event)
        self._wake.set()

    # -- Source ----------------------------------------------------------------------------------

    async def start(self, listener: RebalanceListener, *, callback_timeout: float) -> None:
        self._listener = listener
        tps = [(t, p) for t in self.topics for p in range(self.broker.partitions(t))]
        self.assign(tps)

    async def consume(
        self, max_messages: int, wait: float
    ) -> tuple[list[Record], list[TopicPartition]]:
        await self._rebalance()
        records, ends = self._fetch(max_messages)
        if not records and not ends:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                return [], []
            await self._rebalance()
            records, ends = self._fetch(max_messages)
        return records, ends

    async def _rebalance(self) -> None:
        while self._pending:
            event = self._pending.pop(0)
            assert self._listener is not None, "start() first"
            if event.kind == "assign":
                committed = {}
                for tp in event.tps:
                    found = self.broker.committed_metadata(self.group_id, tp)
                    self.assigned[tp] = 0 if found is None else found.offset
                    if found is not None:
                        committed[tp] = found
                await self._listener.on_assign(event.tps, committed)
                continue
            tps = [tp for tp in event.tps if tp in self.assigned]
            if event.kind == "revoke":
                offsets = await self._listener.on_revoke(tps)
                self.broker.commit(self.group_id, offsets)
            else:
                await self._listener.on_lost(tps)
            for tp in tps:
                self.assigned.pop(tp, None)
                self.paused.discard(tp)
                self._ended.pop(tp, None)

    def _fetch(self, max_messages: int) -> tuple[list[Record], list[TopicPartition]]:
        records: list[Record] = []
        ends: list[TopicPartition] = []
        for tp, position in self.assigned.items():
            if tp in self.paused:
                continue
            room = max_messages - len(records)
            taken = self.broker.log(*tp)[position : position + room] if room > 0 else []
            records.extend(taken)
            reached = self.assigned[tp] = position + len(taken)
            if reached == self.broker.high(tp) and self._ended.get(tp) != reached:
                self._ended[tp] = reached
                ends.append(tp)
        return records, ends

    async def commit(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        if self.fail_commits:
            raise BrokerError("commit refused (MemorySource.fail_commits)")
        self.broker.commit(self.group_id, offsets)
        return dict(offsets)

    async def pause(self, tps: Iterable[TopicPartition]) -> None:
        self.paused.update(tps)

    async def resume(self, tps: Iterable[TopicPartition]) -> None:
        self.paused.difference_update(tps)
        self._wake.set()

    async def high_watermarks(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.broker.high(tp) for tp in tps}

    async def partition_counts(self) -> dict[str, int]:
        return {t: self.broker.partitions(t) for t in self.topics if self.broker.partitions(t)}

    async def fetch_lags(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.broker.high(tp) - self.assigned[tp] for tp in tps if tp in self.assigned}

    async def close(self) -> None:
        """Leave the group: the listener's revoke commits what is done."""
        if self.assigned and self._listener is not None:
            self.revoke(list(self.assigned))
            await self._rebalance()
        self.closed = True


class MemoryProducer:
    """Writes to a MemoryBroker; `refuse` makes every send fail as a broker would."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.refuse: str | None = None

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
        self.send_sync(topic, partition=partition or 0, value=value, headers=headers, key=key)

    def send_sync(
        self,
        topic: str,
        *,
        partition: int,
        value: bytes | None,
        headers: Headers,
        key: bytes | None = None,
    ) -> None:
        if self.refuse is not None:
            raise BrokerError(self.refuse)
        if topic not in self.broker.topics():
            raise BrokerError(f"unknown topic {topic!r}")
        self.broker.produce(topic, value, key=key, partition=partition, headers=headers)

    def topic_state(self, topic: str, timeout: float) -> TopicState:
        return TopicState("ok" if topic in self.broker.topics() else "missing")

    def flush(self, timeout: float) -> int:
        return 0


class MemoryAdmin:
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    def missing_topics(self, topics: Iterable[str], timeout: float) -> list[str]:
        return [t for t in topics if t not in self.broker.topics()]

    def ensure_topic(
        self, topic: str, *, partitions: int, config: Mapping[str, str], timeout: float
    ) -> bool:
        if topic in self.broker.topics():
            return False
        self.broker.create_topic(topic, partitions)
        return True

    def offset_bounds(
        self, topics: Iterable[str], timeout: float
    ) -> dict[TopicPartition, tuple[int, int]]:
        b = self.broker
        return {(t, p): (0, b.high((t, p))) for t in topics for p in range(b.partitions(t))}

    def committed_offsets(
        self, group: str, tps: Iterable[TopicPartition], timeout: float
    ) -> dict[TopicPartition, int]:
        found = {tp: self.broker.committed(group, tp) for tp in tps}
        return {tp: offset for tp, offset in found.items() if offset is not None}

    def describe_group(self, group: str, timeout: float) -> GroupState:
        """Every source of the group that is not closed is a member (consumer protocol)."""
        live = [s for s in self.broker.sources if s.group_id == group and not s.closed]
        members = tuple(
            GroupMember(f"member-{i}", "memory", "127.0.0.1", tuple(sorted(s.assigned)))
            for i, s in enumerate(live)
        )
        committed = any(g == group for g, _ in self.broker._committed)
        state = "stable" if members else "empty" if committed else "dead"
        return GroupState(group, "consumer", state, "range", members)


class MemoryRangeReader:
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    def plan_ranges(
        self, topics: list[str], start_ms: int | None, end_ms: int | None
    ) -> list[Range]:
        ranges = []
        for topic in topics:
            if not self.broker.partitions(topic):
                raise ConfigError(f"topic {topic!r} does not exist or has no partitions")
            for partition in range(self.broker.partitions(topic)):
                log = self.broker.log(topic, partition)
                end = len(log) if end_ms is None else _first_at(log, end_ms)
                start = 0 if start_ms is None else min(_first_at(log, start_ms), end)
                ranges.append(Range(topic, partition, start, end, start))
        return ranges

    def read_ranges(self, ranges: list[Range], *, batch_size: int = 500) -> Iterator[Batch]:
        for r in ranges:
            log = self.broker.log(r.topic, r.partition)
            for first in range(r.position, r.end, batch_size):
                last = min(first + batch_size, r.end)
                yield Batch(log[first:last], {(r.topic, r.partition): last})

    def read_one(self, topic: str, partition: int, offset: int) -> Record | None:
        if partition >= self.broker.partitions(topic):
            return None
        log = self.broker.log(topic, partition)
        return log[offset] if 0 <= offset < len(log) else None

    def scan_topic(self, topic: str) -> Iterator[Record]:
        for batch in self.read_ranges(self.plan_ranges([topic], None, None)):
            yield from batch.records

    def close(self) -> None:
        return None


def _first_at(log: list[Record], ms: int) -> int:
    """The first offset whose timestamp is >= ms; the end when there is none."""
    return next((r.offset for r in log if (r.timestamp or 0) >= ms), len(log))
