"""Cluster metadata, topic creation and group inspection (bridge.kafka.protocols.Admin) on
confluent-kafka; the group and offset reads live in bridge.kafka.groups."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # stubs do not re-export them
    AdminClient,
    NewTopic,
)

from bridge.errors import BrokerError
from bridge.kafka import groups
from bridge.kafka.properties import connection_config, consumer_config
from bridge.kafka.protocols import GroupState, TopicPartition
from bridge.kafka.source import broker_error


class KafkaAdmin:
    def __init__(self, kafka: Mapping[str, Any]) -> None:
        self._kafka = dict(kafka)
        self._admin: AdminClient | None = None

    def _client(self) -> AdminClient:
        # One client for the reads of a command; log_level 0: the caller reports the one error.
        if self._admin is None:
            self._admin = AdminClient({**connection_config(self._kafka), "log_level": 0})
        return self._admin

    def offset_bounds(
        self, topics: Iterable[str], timeout: float
    ) -> dict[TopicPartition, tuple[int, int]]:
        return groups.offset_bounds(self._client(), topics, timeout)

    def committed_offsets(
        self, group: str, tps: Iterable[TopicPartition], timeout: float
    ) -> dict[TopicPartition, int]:
        return groups.committed_offsets(self._client(), group, tps, timeout)

    def describe_group(self, group: str, timeout: float) -> GroupState:
        return groups.describe_group(self._client(), group, timeout)

    def missing_topics(self, topics: Iterable[str], timeout: float) -> list[str]:
        # As the live consumer sees the cluster (its security settings); log_level 0: the
        # caller reports the one error, librdkafka would log every reconnect.
        consumer = Consumer({**consumer_config(self._kafka), "log_level": 0})
        try:
            metadata = consumer.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise broker_error(exc) from None
        finally:
            consumer.close()
        return [t for t in topics if t not in metadata.topics]

    def ensure_topic(
        self, topic: str, *, partitions: int, config: Mapping[str, str], timeout: float
    ) -> bool:
        admin = AdminClient(connection_config(self._kafka))
        try:
            if topic in admin.list_topics(timeout=timeout).topics:
                return False
        except KafkaException as exc:
            raise BrokerError(f"Kafka unreachable: {broker_error(exc)}") from None
        new = NewTopic(
            topic,
            num_partitions=partitions,
            replication_factor=-1,  # the broker's default
            config=dict(config),
        )
        try:
            admin.create_topics([new], operation_timeout=timeout)[topic].result(timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" in str(exc):  # another instance was first
                return False
            raise BrokerError(f"cannot create topic {topic!r}: {broker_error(exc)}") from None
        return True
