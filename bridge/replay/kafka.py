"""The confluent_kafka seam for replay and the DLQ tools: plan a bounded range, read it, write.

Reads use `assign()` with explicit offsets, never `subscribe()`, and never commit: the consumer
group named after the run only identifies the client to the broker, and no group's committed
offsets (least of all the live bridge's) are touched. Progress lives in the replay state file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from bridge.errors import ConfigError
from bridge.events import Record
from bridge.replay.raw import Batch
from bridge.replay.state import Range

TIMEOUT = 15.0  # metadata and offset lookups; a healthy cluster answers in milliseconds
POLL_TIMEOUT = 1.0


def consumer_config(kafka: Mapping[str, Any], group: str) -> dict[str, Any]:
    """The deployment's connection settings with the replay's own group and safe reading."""
    conf = {k: v for k, v in kafka.items() if not str(k).startswith("group.")}
    conf.update(
        {
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    return conf


def open_consumer(kafka: Mapping[str, Any], group: str) -> Any:
    return Consumer(consumer_config(kafka, group))


def open_producer(kafka: Mapping[str, Any]) -> Any:
    from bridge.dlq import producer_config

    return Producer(producer_config(kafka), logger=logging.getLogger("bridge.kafka"))


def partitions_of(consumer: Any, topic: str) -> list[int]:
    meta = consumer.list_topics(topic=topic, timeout=TIMEOUT).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        raise ConfigError(f"topic {topic!r} does not exist or has no partitions", field="topics")
    return sorted(meta.partitions)


def _offset_for_time(consumer: Any, topic: str, partition: int, ms: int, high: int) -> int:
    """The first offset whose timestamp is >= ms; the high watermark when there is none."""
    (found,) = consumer.offsets_for_times([TopicPartition(topic, partition, ms)], timeout=TIMEOUT)
    return high if found.offset < 0 else int(found.offset)


def plan_ranges(
    consumer: Any, topics: list[str], start_ms: int | None, end_ms: int | None
) -> list[Range]:
    """Fixed [start, end) per partition. None means earliest (start) or now (end)."""
    ranges: list[Range] = []
    for topic in topics:
        for partition in partitions_of(consumer, topic):
            tp = TopicPartition(topic, partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=TIMEOUT, cached=False)
            end = (
                high
                if end_ms is None
                else _offset_for_time(consumer, topic, partition, end_ms, high)
            )
            start = (
                low
                if start_ms is None
                else _offset_for_time(consumer, topic, partition, start_ms, high)
            )
            start = max(low, min(start, end))
            ranges.append(Range(topic, partition, start, end, start))
    return ranges


def read_ranges(consumer: Any, ranges: list[Range], *, batch_size: int = 500) -> Iterator[Batch]:
    """Every record in [position, end) of each range, in batches, then stop.

    A partition is finished when a record at end-1 arrives or the end-of-partition event reports
    an offset >= end (with read_committed, transaction markers occupy offsets no record has).
    """
    todo = {(r.topic, r.partition): r.end for r in ranges if r.position < r.end}
    if not todo:
        return
    consumer.assign([TopicPartition(r.topic, r.partition, r.position) for r in ranges if r.left])
    while todo:
        records: list[Record] = []
        positions: dict[tuple[str, int], int] = {}
        for msg in consumer.consume(batch_size, POLL_TIMEOUT):
            tp = (msg.topic(), msg.partition())
            end = todo.get(tp)
            if end is None:
                continue
            next_offset = _next_offset(msg)
            if next_offset is None:
                continue
            if next_offset <= end and msg.error() is None:
                records.append(Record.from_kafka(msg))
            positions[tp] = min(next_offset, end)
            if next_offset >= end:
                del todo[tp]
                consumer.pause([TopicPartition(*tp)])
        yield Batch(records, positions)
    consumer.unassign()


def _next_offset(msg: Any) -> int | None:
    err = msg.error()
    if err is None:
        return int(msg.offset()) + 1
    if err.code() == KafkaError._PARTITION_EOF:
        return int(msg.offset())
    raise KafkaException(err)


def read_one(consumer: Any, topic: str, partition: int, offset: int) -> Record | None:
    """The record at topic/partition/offset, or None if there is none."""
    if partition not in partitions_of(consumer, topic):
        return None
    rng = Range(topic, partition, offset, offset + 1, offset)
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT)
    if not low <= offset < high:
        return None
    for batch in read_ranges(consumer, [rng], batch_size=1):
        for rec in batch.records:
            if rec.offset == offset:
                return rec
    return None


def scan_topic(consumer: Any, topic: str) -> Iterator[Record]:
    """Everything in a topic up to its current end (the DLQ is bounded by when you look)."""
    for batch in read_ranges(consumer, plan_ranges(consumer, [topic], None, None)):
        yield from batch.records


def produce_sync(
    producer: Any,
    topic: str,
    *,
    partition: int,
    value: bytes | None,
    headers: list[tuple[str, bytes]],
) -> None:
    """Produce one record to a given partition and wait for the broker's acknowledgement."""
    failures: list[Any] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(err)

    producer.produce(
        topic, value=value, partition=partition, headers=headers, on_delivery=on_delivery
    )
    if producer.flush(TIMEOUT) != 0 or failures:
        raise KafkaException(failures[0] if failures else KafkaError(KafkaError._TIMED_OUT))
