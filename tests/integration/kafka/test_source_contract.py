"""One contract for both Sources: the in-memory broker the pipeline's unit tests run on must behave
like the confluent-kafka consumer on the real broker, in everything the pipeline relies on.

Each test runs against `memory` (bridge.kafka.memory) and `kafka` (bridge.kafka.source on the
local broker); a difference between them is a bug in the double."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from bridge.events import Record
from bridge.kafka.memory import MemoryBroker, MemoryProducer, MemorySource
from bridge.kafka.protocols import OffsetAndMetadata, Producer, Source, TopicPartition

POLLS = 300  # consume() calls a condition may take: generous for a group join on a busy machine


@dataclass
class Backend:
    make_topic: Callable[[int], str]
    make_source: Callable[[list[str], str], Source]
    producer: Producer

    def produce(self, topic: str, partition: int, value: bytes) -> None:
        self.producer.send_sync(topic, partition=partition, value=value, headers=[])


@dataclass
class Listener:
    assigned: set[TopicPartition] = field(default_factory=set)
    revoked: list[TopicPartition] = field(default_factory=list)
    committed: dict[TopicPartition, OffsetAndMetadata] = field(default_factory=dict)

    async def on_assign(
        self, tps: list[TopicPartition], committed: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> None:
        self.assigned.update(tps)
        self.committed.update(committed)

    async def on_revoke(self, tps: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        self.assigned.difference_update(tps)
        self.revoked.extend(tps)
        return {}

    async def on_lost(self, tps: list[TopicPartition]) -> None:
        self.assigned.difference_update(tps)


@dataclass
class Reading:
    source: Source
    listener: Listener = field(default_factory=Listener)
    records: list[Record] = field(default_factory=list)
    ends: list[TopicPartition] = field(default_factory=list)

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        for _ in range(POLLS):
            if condition():
                return
            records, ends = await self.source.consume(100, 0.2)
            self.records += records
            self.ends += ends
        assert condition(), what

    def offsets(self, tp: TopicPartition) -> list[int]:
        return [r.offset for r in self.records if r.tp == tp]


def _memory() -> Backend:
    broker = MemoryBroker()

    def make_topic(partitions: int) -> str:
        name = f"contract-{uuid.uuid4().hex[:8]}"
        broker.create_topic(name, partitions)
        return name

    return Backend(make_topic, lambda t, g: MemorySource(broker, t, g), MemoryProducer(broker))


def _kafka(request: pytest.FixtureRequest) -> Backend:
    from bridge.kafka.producer import KafkaProducer
    from bridge.kafka.source import KafkaSource

    bootstrap = request.getfixturevalue("kafka_bootstrap")
    make_topic = request.getfixturevalue("make_topic")
    kafka: dict[str, Any] = {"bootstrap.servers": bootstrap}
    return Backend(
        lambda partitions: make_topic(partitions=partitions),
        lambda topics, group: KafkaSource({**kafka, "group.id": group}, topics),
        KafkaProducer(kafka),
    )


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> Backend:
    return _memory() if request.param == "memory" else _kafka(request)


async def _started(backend: Backend, topics: list[str], group: str) -> Reading:
    reading = Reading(backend.make_source(topics, group))
    await reading.source.start(reading.listener, callback_timeout=30)
    return reading


async def test_every_partition_is_assigned_and_read_in_order_then_its_end_reported(
    backend: Backend,
) -> None:
    topic = backend.make_topic(2)
    p0, p1 = (topic, 0), (topic, 1)
    for n in range(3):
        backend.produce(topic, 0, b"a%d" % n)
    for n in range(2):
        backend.produce(topic, 1, b"b%d" % n)
    reading = await _started(backend, [topic], f"g-{uuid.uuid4().hex[:8]}")
    try:
        await reading.until(lambda: {p0, p1} <= set(reading.ends), "both ends reported")
        assert reading.listener.assigned == {p0, p1}
        assert (reading.offsets(p0), reading.offsets(p1)) == ([0, 1, 2], [0, 1])
        assert [r.value for r in reading.records if r.tp == p1] == [b"b0", b"b1"]
        assert await reading.source.fetch_lags([p0, p1]) == {p0: 0, p1: 0}
        assert await reading.source.partition_counts() == {topic: 2}

        ends = len(reading.ends)
        backend.produce(topic, 0, b"a3")
        await reading.until(lambda: reading.offsets(p0) == [0, 1, 2, 3], "the new record")
        await reading.until(lambda: reading.ends[ends:] == [p0], "the end once more")
        assert reading.ends[ends:] == [p0]  # only the partition that moved
    finally:
        await reading.source.close()


async def test_a_paused_partition_is_not_fetched_until_it_is_resumed(backend: Backend) -> None:
    topic = backend.make_topic(2)
    p0, p1 = (topic, 0), (topic, 1)
    reading = await _started(backend, [topic], f"g-{uuid.uuid4().hex[:8]}")
    try:
        await reading.until(lambda: {p0, p1} <= set(reading.ends), "assigned and at the end")
        await reading.source.pause([p0])
        backend.produce(topic, 0, b"held")
        backend.produce(topic, 1, b"free")
        await reading.until(lambda: reading.offsets(p1) == [0], "the unpaused partition's record")
        assert reading.offsets(p0) == []
        await reading.source.resume([p0])
        await reading.until(lambda: reading.offsets(p0) == [0], "the record after resume")
    finally:
        await reading.source.close()


async def test_a_partition_resumed_while_the_others_are_caught_up_is_read_within_a_fetch_wait(
    backend: Backend,
) -> None:
    """The end of a drain: the other partitions are at their end, so the consumer's fetch in
    flight waits for data; the resumed partition is fetched once that wait ends (100 ms,
    fetch.wait.max.ms; librdkafka's own 500 ms default made this 0.3-0.5 s)."""
    topic = backend.make_topic(2)
    p0, p1 = (topic, 0), (topic, 1)
    reading = await _started(backend, [topic], f"g-{uuid.uuid4().hex[:8]}")
    try:
        await reading.until(lambda: {p0, p1} <= set(reading.ends), "assigned and at the end")
        waits = []
        for n in range(4):
            await reading.source.pause([p0])
            backend.produce(topic, 0, b"held")
            for _ in range(6):  # idle meanwhile: the fetch in flight waits its longest
                reading.records += (await reading.source.consume(100, 0.1))[0]
            await reading.source.resume([p0])
            started = time.monotonic()
            while len(reading.offsets(p0)) <= n and time.monotonic() - started < 5:
                reading.records += (await reading.source.consume(100, 0.01))[0]
            waits.append(time.monotonic() - started)
        assert reading.offsets(p0) == [0, 1, 2, 3]
        assert max(waits) < 0.25, waits
    finally:
        await reading.source.close()


async def test_a_new_member_starts_at_the_committed_offset_and_is_told_its_metadata(
    backend: Backend,
) -> None:
    topic = backend.make_topic(1)
    tp = (topic, 0)
    group = f"g-{uuid.uuid4().hex[:8]}"
    for n in range(4):
        backend.produce(topic, 0, b"%d" % n)
    first = await _started(backend, [topic], group)
    try:
        await first.until(lambda: len(first.offsets(tp)) == 4, "all four")
        assert first.listener.committed == {}
        mark = OffsetAndMetadata(2, "mb1:2:1")
        assert await first.source.commit({tp: mark}) == {tp: mark}
    finally:
        await first.source.close()
    second = await _started(backend, [topic], group)
    try:
        await second.until(lambda: tp in second.ends, "read to the end")
        assert second.offsets(tp) == [2, 3]
        assert second.listener.committed == {tp: OffsetAndMetadata(2, "mb1:2:1")}
    finally:
        await second.source.close()


@dataclass
class CommittingListener(Listener):
    """While a revoke is handled, commits a partition this member keeps, as the commit timer
    does while started calls of the revoked partitions finish."""

    source: Source | None = None
    during_revoke: dict[TopicPartition, OffsetAndMetadata] = field(default_factory=dict)

    async def on_revoke(self, tps: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        kept = sorted(self.assigned - set(tps))
        if kept and self.source is not None:
            self.during_revoke = await self.source.commit({kept[0]: OffsetAndMetadata(1, "")})
        return await super().on_revoke(tps)


@pytest.mark.integration
async def test_a_commit_is_served_while_a_revoke_handler_waits(
    request: pytest.FixtureRequest,
) -> None:
    """The revoke handler runs inside consume() on the consumer's thread: a commit the loop asks
    for meanwhile is served there, instead of waiting for the handler (which waits for it).
    Only the real consumer: the in-memory one has no second member to hand partitions to."""
    backend = _kafka(request)
    topic = backend.make_topic(2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    listener = CommittingListener()
    first = Reading(backend.make_source([topic], group), listener)
    listener.source = first.source
    await first.source.start(listener, callback_timeout=30)
    second: Reading | None = None
    try:
        await first.until(lambda: len(listener.assigned) == 2, "both partitions")
        second = await _started(backend, [topic], group)
        for _ in range(POLLS):
            if listener.revoked and second.listener.assigned:
                break
            await first.source.consume(100, 0.1)
            await second.source.consume(100, 0.1)
        assert listener.revoked, "the second member took a partition"
        kept = next(iter(listener.assigned))
        assert listener.during_revoke == {kept: OffsetAndMetadata(1, "")}
    finally:
        if second is not None:
            await second.source.close()
        await first.source.close()
