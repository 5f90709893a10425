"""The local broker end to end: keyed produce, manual commits, committed offsets at the end."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

MESSAGES = 1_000
PARTITIONS = 4
KEYS = 37


def produce_keyed(bootstrap: str, topic: str) -> dict[str, int]:
    """Produces MESSAGES values {"seq": n} under KEYS keys; returns key -> partition."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    placed: dict[str, set[int]] = defaultdict(set)
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
        else:
            placed[msg.key().decode()].add(msg.partition())

    for seq in range(MESSAGES):
        key = f"user-{seq % KEYS}"
        producer.produce(topic, key=key, value=json.dumps({"seq": seq}), on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still in flight after 30 s"
    assert errors == []
    assert all(len(parts) == 1 for parts in placed.values()), "a key landed on two partitions"
    return {key: parts.pop() for key, parts in placed.items()}


def consume_with_manual_commits(bootstrap: str, topic: str, group: str) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    received: list[Message] = []
    deadline = time.monotonic() + 60
    try:
        while len(received) < MESSAGES and time.monotonic() < deadline:
            batch = [
                m for m in consumer.consume(num_messages=200, timeout=1.0) if m.error() is None
            ]
            if not batch:
                continue
            received.extend(batch)
            next_offsets: dict[int, int] = {}
            for msg in batch:
                next_offsets[msg.partition()] = msg.offset() + 1
            commits = [TopicPartition(topic, p, off) for p, off in next_offsets.items()]
            consumer.commit(offsets=commits, asynchronous=False)
    finally:
        consumer.close()
    return received


@pytest.mark.integration
def test_committed_offsets_reach_end_offsets_after_manual_commits(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=PARTITIONS, name_prefix="roundtrip")
    key_partition = produce_keyed(kafka_bootstrap, topic)
    assert len(set(key_partition.values())) > 1, "all keys hashed to one partition"

    group = f"roundtrip-{uuid.uuid4().hex[:10]}"
    received = consume_with_manual_commits(kafka_bootstrap, topic, group)

    assert sorted(json.loads(m.value())["seq"] for m in received) == list(range(MESSAGES))
    seqs_by_key: dict[str, list[int]] = defaultdict(list)
    for msg in received:
        key = msg.key().decode()
        assert msg.partition() == key_partition[key]
        seqs_by_key[key].append(json.loads(msg.value())["seq"])
    assert all(seqs == sorted(seqs) for seqs in seqs_by_key.values()), "per-key order broken"

    fresh = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group})
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = {tp.partition: tp.offset for tp in fresh.committed(partitions, timeout=10)}
        ends = {
            p: fresh.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        }
    finally:
        fresh.close()
    assert committed == ends
    assert sum(ends.values()) == MESSAGES
