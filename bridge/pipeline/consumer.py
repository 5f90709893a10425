"""A thin wrapper around confluent-kafka's Consumer, owned by one dedicated thread.

Every consumer call (consume, commit, pause, resume, close) runs on that thread, so the asyncio
loop never blocks on librdkafka and the consumer is never touched from two threads. Rebalance
callbacks run on it too, inside `consume()`; they hand over to the loop and wait for its answer.
Group protocol. By default the consumer uses Kafka 4's consumer group protocol
(`group.protocol=consumer`, KIP-848) with the broker's `range` assignor: it rebalances
incrementally (members that stay keep their partitions and keep committing) and co-partitions
(partition N of every subscribed topic goes to the same member, so one person's events on several
topics, keyed alike, meet on one instance). A config that sets a classic-protocol property
(`partition.assignment.strategy`, `session.timeout.ms`, `heartbeat.interval.ms`) or
`group.protocol: classic` gets the classic protocol with the cooperative-sticky assignor instead.
Either way confluent-kafka applies the incremental assign/unassign after each callback returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from bridge.observability import RepeatLimiter
from bridge.pipeline.message import TopicPartition as TP

log = logging.getLogger("bridge.pipeline.consumer")

# At-least-once delivery needs manual commits of explicit offsets and no automatic offset store.
# The end-of-partition events tell the event-time lockstep that a partition is caught up.
FORCED: Mapping[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "isolation.level": "read_committed",
    "enable.partition.eof": True,
}
DEFAULTS: Mapping[str, Any] = {
    "auto.offset.reset": "earliest",
    "group.id": "meisa-bridge",
}
CONSUMER_PROTOCOL: Mapping[str, Any] = {
    "group.protocol": "consumer",
    "group.remote.assignor": "range",
}
CLASSIC_PROTOCOL: Mapping[str, Any] = {
    "group.protocol": "classic",
    "partition.assignment.strategy": "cooperative-sticky",
}
CLASSIC_ONLY = ("partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms")

Rebalance = Callable[[list[TP]], None]

ERROR_REPORT_SECONDS = 30.0  # a broker outage repeats one error every poll: report it this often


def consumer_config(kafka: Mapping[str, Any]) -> dict[str, Any]:
    """User properties (SASL, SSL, ...) over our defaults, with the safety settings forced."""
    return {**DEFAULTS, **_protocol(kafka), **kafka, **FORCED}


def protocol_conflict(kafka: Mapping[str, Any]) -> str | None:
    """Why the kafka properties cannot work together, or None."""
    protocol = str(kafka.get("group.protocol", "")).lower()
    classic = [k for k in CLASSIC_ONLY if k in kafka]
    if protocol == "consumer" and classic:
        return (
            f"kafka: {', '.join(classic)} belong to the classic group protocol; with "
            "group.protocol: consumer the broker sets sessions and assignment "
            "(group.consumer.session.timeout.ms, group.remote.assignor): remove them or set "
            "group.protocol: classic"
        )
    return None


def _protocol(kafka: Mapping[str, Any]) -> Mapping[str, Any]:
    """The group protocol's defaults: consumer, unless the config asks for classic."""
    protocol = str(kafka.get("group.protocol", "")).lower()
    if protocol == "classic" or (not protocol and any(k in kafka for k in CLASSIC_ONLY)):
        return CLASSIC_PROTOCOL
    return CONSUMER_PROTOCOL


def missing_topics(kafka: Mapping[str, Any], topics: Iterable[str], *, timeout: float) -> list[str]:
    """Ask the cluster for its topics; returns those of `topics` it does not have.

    Raises KafkaException when no broker answers within `timeout` (wrong address, TLS, SASL).
    """
    # log_level 0: the caller reports the one error; librdkafka would log every reconnect.
    consumer = Consumer({**consumer_config(kafka), "log_level": 0})
    try:
        metadata = consumer.list_topics(timeout=timeout)
    finally:
        consumer.close()
    return [t for t in topics if t not in metadata.topics]


def _tps(partitions: Iterable[TopicPartition]) -> list[TP]:
    return [(p.topic, p.partition) for p in partitions]


class KafkaSource:
    """Subscribe, consume batches, pause/resume, commit explicit offsets, close."""

    def __init__(
        self,
        kafka: Mapping[str, Any],
        topics: Iterable[str],
        *,
        on_assign: Rebalance,
        on_revoke: Callable[[list[TP]], dict[TP, int]],
        on_lost: Rebalance,
    ) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")
        self._conf = consumer_config(kafka)
        self._topics = list(topics)
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._on_lost = on_lost
        self._consumer: Any = None
        # Bumped by every rebalance callback. A commit computed before a rebalance may hold stale
        # offsets (older than the revoke's own commit, or for partitions given away): dropped.
        self._epoch = 0
        self._errors = RepeatLimiter(ERROR_REPORT_SECONDS)
        self.group_id = str(self._conf["group.id"])

    def __repr__(self) -> str:
        return f"KafkaSource(topics={self._topics!r}, group_id={self.group_id!r})"

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def start(self) -> None:
        await self._run(self._start)

    def _start(self) -> None:
        self._consumer = Consumer(self._conf, logger=logging.getLogger("bridge.kafka"))
        self._consumer.subscribe(
            self._topics,
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._lost,
        )

    def _assigned(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._on_assign(_tps(partitions))
        self._epoch += 1

    def _lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._on_lost(_tps(partitions))
        self._epoch += 1

    def _revoked(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        # Commit what finished before giving the partitions away (this thread owns the consumer).
        offsets = self._on_revoke(_tps(partitions))
        if offsets:
            try:
                self._commit(offsets)
            except KafkaException as exc:
                log.warning("commit on revoke failed, the new owner re-reads from earlier: %s", exc)
        self._epoch += 1

    async def consume(self, max_messages: int, wait: float) -> tuple[list[Message], list[TP]]:
        """Messages, and the partitions whose end was reached after them."""
        result: tuple[list[Message], list[TP]] = await self._run(self._consume, max_messages, wait)
        return result

    def _consume(self, max_messages: int, timeout: float) -> tuple[list[Message], list[TP]]:
        messages = self._consumer.consume(num_messages=max_messages, timeout=timeout)
        out, ends = [], []
        for m in messages:
            err = m.error()
            if err is None:
                out.append(m)
            elif err.code() == KafkaError._PARTITION_EOF:
                ends.append((m.topic(), m.partition()))
            else:
                if err.fatal():
                    raise KafkaException(err)
                held = self._errors.allow(err.code())
                if held is not None:
                    log.warning("consumer error: %s (%d more like it before this one)", err, held)
        return out, ends

    async def commit(self, offsets: Mapping[TP, int]) -> dict[TP, int]:
        """Commit synchronously; returns what was committed: nothing when a rebalance ran between
        computing the offsets (now) and the commit's turn on the consumer thread. Raises
        KafkaException on failure (retried on the next tick)."""
        committed: dict[TP, int] = await self._run(self._commit, dict(offsets), self._epoch)
        return committed

    def _commit(self, offsets: Mapping[TP, int], epoch: int | None = None) -> dict[TP, int]:
        if epoch is not None and epoch != self._epoch:
            log.debug("dropping a commit computed before a rebalance: %s", dict(offsets))
            return {}
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        result = self._consumer.commit(offsets=tps, asynchronous=False)
        for tp in result or []:
            if tp.error is not None:  # a per-partition failure does not raise by itself
                raise KafkaException(tp.error)
        return dict(offsets)

    async def pause(self, tps: Iterable[TP]) -> None:
        await self._run(self._consumer.pause, [TopicPartition(t, p) for t, p in tps])

    async def resume(self, tps: Iterable[TP]) -> None:
        await self._run(self._consumer.resume, [TopicPartition(t, p) for t, p in tps])

    async def high_watermarks(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Cached high watermarks (no broker round trip) for the lag metric."""
        return dict(await self._run(self._watermarks, list(tps)))

    def _watermarks(self, tps: list[TP]) -> dict[TP, int]:
        out = {}
        for t, p in tps:
            try:
                _, high = self._consumer.get_watermark_offsets(TopicPartition(t, p), cached=True)
            except KafkaException:
                continue
            if high >= 0:
                out[(t, p)] = int(high)
        return out

    async def partition_counts(self) -> dict[str, int]:
        """Partitions of each subscribed topic that exists (a metadata request)."""
        return dict(await self._run(self._partition_counts))

    def _partition_counts(self) -> dict[str, int]:
        metadata = self._consumer.list_topics(timeout=10)
        return {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if name in self._topics and topic.error is None
        }

    async def fetch_lags(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Messages between this consumer's position and the cached high watermark, for the
        partitions where both are known (no broker round trip): 0 means caught up, more means
        data is on its way, absent means not known yet (no fetch answered)."""
        return dict(await self._run(self._fetch_lags, list(tps)))

    def _fetch_lags(self, tps: list[TP]) -> dict[TP, int]:
        highs = self._watermarks(tps)
        known = [TopicPartition(t, p) for t, p in tps if (t, p) in highs]
        if not known:
            return {}
        out = {}
        for tp in self._consumer.position(known):
            if tp.offset >= 0:
                out[(tp.topic, tp.partition)] = max(0, highs[(tp.topic, tp.partition)] - tp.offset)
        return out

    async def close(self) -> None:
        """Leave the group (the revoke callback commits what is done), then stop the thread."""
        if self._consumer is not None:
            await self._run(self._consumer.close)
            self._consumer = None
        self._thread.shutdown(wait=True)
