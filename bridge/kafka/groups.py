"""A consumer group's committed offsets, members and assignment, and partitions' offset ranges,
read with confluent-kafka's AdminClient (the read side of bridge.kafka.protocols.Admin).

Describing a group works for both group protocols: librdkafka asks with ConsumerGroupDescribe
(KIP-848) and falls back to the classic DescribeGroups, and says which type the group is.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaException,
)
from confluent_kafka import (
    TopicPartition as KafkaTopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # stubs do not re-export them
    AdminClient,
    OffsetSpec,
)

from bridge.errors import BrokerError
from bridge.kafka.protocols import GroupMember, GroupState, TopicPartition
from bridge.kafka.source import broker_error


def _result(future: Future[Any], timeout: float, what: str) -> Any:
    try:
        return future.result(timeout)
    except KafkaException as exc:
        raise BrokerError(f"{what}: {broker_error(exc)}") from None
    except TimeoutError:
        raise BrokerError(f"{what}: no answer within {timeout:g} s") from None


def partitions_of(
    admin: AdminClient, topics: Iterable[str], timeout: float
) -> list[TopicPartition]:
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerError(f"Kafka unreachable: {broker_error(exc)}") from None
    found: list[TopicPartition] = []
    for topic in topics:
        meta = metadata.topics.get(topic)
        if meta is not None and meta.error is None:
            found.extend((topic, p) for p in sorted(meta.partitions))
    return found


def offset_bounds(
    admin: AdminClient, topics: Iterable[str], timeout: float
) -> dict[TopicPartition, tuple[int, int]]:
    tps = partitions_of(admin, topics, timeout)
    if not tps:
        return {}
    start = _list_offsets(admin, tps, OffsetSpec.earliest(), timeout)  # type: ignore[no-untyped-call]
    end = _list_offsets(admin, tps, OffsetSpec.latest(), timeout)  # type: ignore[no-untyped-call]
    return {tp: (start[tp], end[tp]) for tp in tps}


def _list_offsets(
    admin: AdminClient, tps: list[TopicPartition], spec: OffsetSpec, timeout: float
) -> dict[TopicPartition, int]:
    futures = admin.list_offsets(
        {KafkaTopicPartition(t, p): spec for t, p in tps},
        isolation_level=IsolationLevel.READ_COMMITTED,  # as the bridge reads: up to the LSO
        request_timeout=timeout,
    )
    return {
        (str(tp.topic), int(tp.partition)): int(_result(f, timeout, "list offsets").offset)
        for tp, f in futures.items()
    }


def committed_offsets(
    admin: AdminClient, group: str, tps: Iterable[TopicPartition], timeout: float
) -> dict[TopicPartition, int]:
    wanted = [KafkaTopicPartition(t, p) for t, p in tps]
    if not wanted:
        return {}
    request = [ConsumerGroupTopicPartitions(group, wanted)]
    futures = admin.list_consumer_group_offsets(request, request_timeout=timeout)
    answer = _result(futures[group], timeout, f"committed offsets of group {group!r}")
    return {
        (str(tp.topic), int(tp.partition)): int(tp.offset)
        for tp in answer.topic_partitions
        if tp.error is None and tp.offset >= 0  # OFFSET_INVALID: nothing committed
    }


def describe_group(admin: AdminClient, group: str, timeout: float) -> GroupState:
    futures = admin.describe_consumer_groups([group], request_timeout=timeout)
    found = _result(futures[group], timeout, f"describe group {group!r}")
    return GroupState(
        group=group,
        protocol=_name(getattr(found, "type", None)),
        state=_name(found.state),
        assignor=str(found.partition_assignor or ""),
        members=tuple(_member(m) for m in found.members),
    )


def _member(found: Any) -> GroupMember:
    target = getattr(found, "target_assignment", None)
    return GroupMember(
        member_id=str(found.member_id),
        client_id=str(found.client_id),
        host=str(found.host).lstrip("/"),
        assignment=_tps(found.assignment),
        target=None if target is None else _tps(target),
    )


def _tps(assignment: Any) -> tuple[TopicPartition, ...]:
    parts = assignment.topic_partitions if assignment is not None else []
    return tuple(sorted((str(tp.topic), int(tp.partition)) for tp in parts))


def _name(value: Any) -> str:
    """An enum member (ConsumerGroupState.STABLE) as a lowercase word; unknown when absent."""
    if value is None:
        return "unknown"
    return str(getattr(value, "name", value)).lower()
