"""KafkaSource on the real broker: commit metadata the broker refuses as too large (its
offset.metadata.max.bytes, 4096 by default) still commits the offset, without the metadata."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from bridge.kafka.protocols import OffsetAndMetadata
from bridge.kafka.source import KafkaSource

pytestmark = pytest.mark.integration


def _committed(bootstrap: str, group: str, topic: str) -> tuple[int, str]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = c.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset, tp.metadata or ""
    finally:
        c.close()


class _Listener:
    assigned = False

    async def on_assign(self, tps: Any, committed: Any) -> None:
        self.assigned = True

    async def on_revoke(self, tps: Any) -> dict[Any, Any]:
        return {}

    async def on_lost(self, tps: Any) -> None: ...


async def test_metadata_over_the_brokers_limit_commits_the_offset_without_it(
    kafka_bootstrap: str, make_topic: Any
) -> None:
    topic, group = make_topic(partitions=1), f"g-{uuid.uuid4().hex[:8]}"
    source = KafkaSource({"bootstrap.servers": kafka_bootstrap, "group.id": group}, [topic])
    listener = _Listener()
    await source.start(listener, callback_timeout=30)
    try:
        for _ in range(300):  # a member commits only once the group assigned it the partition
            if listener.assigned:
                break
            await source.consume(10, 0.2)
        assert listener.assigned
        await source.commit({(topic, 0): OffsetAndMetadata(3, "mb1:3:1")})
        assert _committed(kafka_bootstrap, group, topic) == (3, "mb1:3:1")
        await source.commit({(topic, 0): OffsetAndMetadata(4, "mb1:4:" + "2," * 3000 + "2")})
        assert _committed(kafka_bootstrap, group, topic) == (4, "")
        await source.commit({(topic, 0): OffsetAndMetadata(5, "mb1:5:1")})
        assert _committed(kafka_bootstrap, group, topic) == (5, "")  # not offered again
    finally:
        await source.close()
