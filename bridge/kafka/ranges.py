"""Reading fixed offset ranges (bridge.kafka.protocols.RangeReader) on confluent-kafka, for replay
and the DLQ tools.

Reads use `assign()` with explicit offsets, never `subscribe()`, and never commit: the consumer
group named after the run only identifies the client to the broker, and no group's committed
offsets (least of all the live bridge's) are touched. Progress lives with the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTopicPartition

from bridge.errors import ConfigError
from bridge.events import Record
from bridge.kafka.properties import reader_config
from bridge.kafka.protocols import Batch, Range, TopicPartition
from bridge.kafka.source import broker_error, record_of

TIMEOUT = 15.0  # metadata and offset lookups; a healthy cluster answers in milliseconds
POLL_TIMEOUT = 1.0


class KafkaRangeReader:
    def __init__(self, kafka: Mapping[str, Any], group: str) -> None:
        self._consumer = Consumer(reader_config(kafka, group))

    def close(self) -> None:
        self._consumer.close()

    def partitions_of(self, topic: str) -> list[int]:
        meta = self._consumer.list_topics(topic=topic, timeout=TIMEOUT).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise ConfigError(
                f"topic {topic!r} does not exist or has no partitions", field="topics"
            )
        return sorted(meta.partitions)

    def _offset_for_time(self, topic: str, partition: int, ms: int, high: int) -> int:
        """The first offset whose timestamp is >= ms; the high watermark when there is none."""
        (found,) = self._consumer.offsets_for_times(
            [KafkaTopicPartition(topic, partition, ms)], timeout=TIMEOUT
        )
        return high if found.offset < 0 else int(found.offset)

    def plan_ranges(
        self, topics: list[str], start_ms: int | None, end_ms: int | None
    ) -> list[Range]:
        ranges: list[Range] = []
        for topic in topics:
            for partition in self.partitions_of(topic):
                tp = KafkaTopicPartition(topic, partition)
                low, high = self._consumer.get_watermark_offsets(tp, timeout=TIMEOUT, cached=False)
                end = (
                    high
                    if end_ms is None
                    else self._offset_for_time(topic, partition, end_ms, high)
                )
                start = (
                    low
                    if start_ms is None
                    else self._offset_for_time(topic, partition, start_ms, high)
                )
                start = max(low, min(start, end))
                ranges.append(Range(topic, partition, start, end, start))
        return ranges

    def read_ranges(self, ranges: list[Range], *, batch_size: int = 500) -> Iterator[Batch]:
        """A partition is finished when a record at end-1 arrives or the end-of-partition event
        reports an offset >= end (with read_committed, transaction markers occupy offsets no
        record has)."""
        todo = {(r.topic, r.partition): r.end for r in ranges if r.position < r.end}
        if not todo:
            return
        consumer = self._consumer
        consumer.assign(
            [KafkaTopicPartition(r.topic, r.partition, r.position) for r in ranges if r.left]
        )
        while todo:
            records: list[Record] = []
            positions: dict[TopicPartition, int] = {}
            for msg in consumer.consume(batch_size, POLL_TIMEOUT):
                tp = (str(msg.topic()), int(msg.partition() or 0))
                end = todo.get(tp)
                if end is None:
                    continue
                next_offset = _next_offset(msg)
                if next_offset is None:
                    continue
                if next_offset <= end and msg.error() is None:
                    records.append(record_of(msg))
                positions[tp] = min(next_offset, end)
                if next_offset >= end:
                    del todo[tp]
                    consumer.pause([KafkaTopicPartition(*tp)])
            yield Batch(records, positions)
        consumer.unassign()

    def read_one(self, topic: str, partition: int, offset: int) -> Record | None:
        if partition not in self.partitions_of(topic):
            return None
        rng = Range(topic, partition, offset, offset + 1, offset)
        low, high = self._consumer.get_watermark_offsets(
            KafkaTopicPartition(topic, partition), timeout=TIMEOUT
        )
        if not low <= offset < high:
            return None
        for batch in self.read_ranges([rng], batch_size=1):
            for rec in batch.records:
                if rec.offset == offset:
                    return rec
        return None

    def scan_topic(self, topic: str) -> Iterator[Record]:
        for batch in self.read_ranges(self.plan_ranges([topic], None, None)):
            yield from batch.records


def _next_offset(msg: Message) -> int | None:
    err = msg.error()
    if err is None:
        return int(msg.offset() or 0) + 1
    if err.code() == KafkaError._PARTITION_EOF:
        return int(msg.offset() or 0)
    raise broker_error(KafkaException(err))
