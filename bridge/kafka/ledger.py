"""The sent-email ledger (bridge.ledger) on Kafka: a compacted topic keyed by idempotency key.

It is on unless `ledger.enabled: false`. The topic is `ledger.topic`, else named from the live
consumer group (`<group.id>.sent-emails`, LedgerSettings.topic_for), so `run`, `replay`,
`dlq redrive` and a shadow run of one deployment share it whatever group they read under.

Layout: key = the idempotency key (UTF-8), value = `{"trigger_key": ..., "sent_at": epoch}`,
record timestamp = when Meisa accepted the trigger. The topic is created if missing with
`cleanup.policy=compact,delete` and `retention.ms` = the configured retention: compaction keeps
one record per key, deletion drops keys older than the retention.

Start-up creates the topic if needed and reads every partition from the first record younger
than the retention up to the end offsets seen at start, all within `load_timeout_seconds` (else
the bridge refuses to start rather than send blind). Afterwards a thread keeps reading the
topic, so what other instances, replays and redrives record is seen here within a poll (about
100 ms). A record is written after Meisa accepted the trigger; `record` waits up to WRITE_WAIT
seconds for the broker's acknowledgement, then lets the producer keep retrying in the background.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from bridge.errors import BrokerError, StartupRefused
from bridge.kafka.admin import KafkaAdmin
from bridge.kafka.properties import connection_config
from bridge.ledger import NO_LEDGER, LedgerIndex, MemoryLedger, SentLedger, ledger_key
from bridge.meisa.calls import MeisaCall
from bridge.settings import BridgeSettings, LedgerSettings

log = logging.getLogger("bridge.ledger")

TIMEOUT = 15.0  # metadata and offset lookups; a healthy cluster answers in milliseconds
WRITE_WAIT = 5.0  # a broker restart must not hold a delivery slot for librdkafka's 5 minutes
POLL = 0.1
DAY = 86_400.0
OPTED_OUT = (
    "sent-email ledger off (ledger.enabled: false): a trigger delivered again more than "
    "Meisa's one-hour idempotency window later (after an outage, a stuck partition, a rewind "
    "of offsets, a replay or a redrive) can email a person twice"
)


class KafkaLedger(MemoryLedger):
    """A MemoryLedger loaded from, written to and kept current with the ledger topic."""

    def __init__(self, kafka: Mapping[str, Any], settings: LedgerSettings) -> None:
        """`kafka`: the live deployment's properties (the topic may be named from its group)."""
        super().__init__(
            LedgerIndex(retention_seconds=settings.retention_days * DAY, max_keys=settings.max_keys)
        )
        topic = settings.topic_for(kafka)
        assert topic, "KafkaLedger needs the ledger enabled"
        self.topic = topic
        self._settings = settings
        self._kafka = dict(kafka)
        self._producer: Any = None
        self._consumer: Any = None
        self._stop = threading.Event()
        self._tail: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"KafkaLedger(topic={self.topic!r}, keys={len(self.index)})"

    def open(self) -> None:
        """Create the topic if needed, load it, start tailing it; blocking, and refused past
        `load_timeout_seconds` altogether."""
        deadline = time.monotonic() + self._settings.load_timeout_seconds
        self._ensure_topic(deadline)
        conf = connection_config(self._kafka) | {
            "group.id": f"meisa-bridge-ledger-{self.topic}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
        self._consumer = Consumer(conf, logger=logging.getLogger("bridge.kafka"))
        started = time.monotonic()
        try:
            loaded = self._load(deadline)
        except KafkaException as exc:
            raise StartupRefused(f"sent-email ledger: {exc.args[0].str()}") from None
        log.info(
            "sent-email ledger %s: %d keys loaded from %d records in %.1f s",
            self.topic,
            len(self.index),
            loaded,
            time.monotonic() - started,
        )
        producer_conf = connection_config(self._kafka) | {"enable.idempotence": True, "acks": "all"}
        self._producer = Producer(producer_conf, logger=logging.getLogger("bridge.kafka"))
        self._tail = threading.Thread(target=self._follow, name="ledger-tail", daemon=True)
        self._tail.start()

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._tail is not None:
            self._tail.join(timeout)
        if self._producer is not None:
            left = self._producer.flush(timeout)
            if left:
                log.warning("sent-email ledger: %d records not acknowledged at close", left)
        if self._consumer is not None:
            self._consumer.close()

    async def record(self, call: MeisaCall) -> None:
        key = ledger_key(call)
        if key is None:
            return
        sent_at = self.index.now()
        self.index.add(key, sent_at)
        done = asyncio.get_running_loop().create_future()

        def acked(err: Any, _msg: Any) -> None:
            done.get_loop().call_soon_threadsafe(_settle, done, err)

        value = orjson.dumps({"trigger_key": call.body.get("trigger_key"), "sent_at": sent_at})
        self._producer.produce(
            self.topic,
            key=key.encode(),
            value=value,
            timestamp=int(sent_at * 1000),
            on_delivery=acked,
        )
        try:
            err = await asyncio.wait_for(_pump(self._producer, done), WRITE_WAIT)
        except TimeoutError:
            log.warning("sent-email ledger: write not acknowledged within %g s", WRITE_WAIT)
            return
        if err is not None:
            log.warning("sent-email ledger: write failed: %s", err)

    # --- start-up load and tail ----------------------------------------------------------------

    def _ensure_topic(self, deadline: float) -> None:
        retention_ms = str(int(self._settings.retention_days * DAY * 1000))
        try:
            created = KafkaAdmin(self._kafka).ensure_topic(
                self.topic,
                partitions=self._settings.partitions,
                config={"cleanup.policy": "compact,delete", "retention.ms": retention_ms},
                timeout=_within(deadline),
            )
        except BrokerError as exc:
            raise StartupRefused(
                f"sent-email ledger: {exc} (create the topic compacted, or allow the principal "
                "to create it; ledger.enabled: false turns the ledger off)"
            ) from None
        if created:
            log.info("sent-email ledger: created topic %s", self.topic)

    def _late(self, why: str) -> StartupRefused:
        return StartupRefused(
            f"sent-email ledger: {self.topic!r} not loaded within "
            f"{self._settings.load_timeout_seconds:g} s (ledger.load_timeout_seconds): {why}"
        )

    def _partitions(self, deadline: float) -> list[int]:
        """The topic's partitions once each has a leader (another instance may just have
        created the topic)."""
        while True:
            topics = self._consumer.list_topics(topic=self.topic, timeout=_within(deadline)).topics
            meta = topics.get(self.topic)
            parts = meta.partitions if meta is not None and meta.error is None else {}
            if parts and all(p.leader >= 0 for p in parts.values()):
                return sorted(parts)
            if time.monotonic() > deadline:
                raise self._late("its partitions have no leader")
            time.sleep(0.2)

    def _start_positions(self, deadline: float) -> tuple[list[TopicPartition], dict[int, int]]:
        """Where each partition's load starts (the retention's horizon) and ends (its end now).

        Errors are retried until `deadline`: a topic another instance has just created, a leader
        moving or a broker restarting all answer with errors librdkafka does not flag retriable
        (NOT_LEADER_FOR_PARTITION from the watermark query, for one)."""
        since_ms = int((self.index.now() - self.index.retention) * 1000)
        while True:
            try:
                return self._positions(self._partitions(deadline), since_ms, deadline)
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise self._late(exc.args[0].str()) from None
                log.info("sent-email ledger: %s; retrying", exc.args[0].str())
                time.sleep(0.2)

    def _positions(
        self, partitions: list[int], since_ms: int, deadline: float
    ) -> tuple[list[TopicPartition], dict[int, int]]:
        found = self._consumer.offsets_for_times(
            [TopicPartition(self.topic, p, since_ms) for p in partitions],
            timeout=_within(deadline),
        )
        starts, ends = [], {}
        for tp in found:
            if tp.error is not None:
                # A partition whose leader is still loading after a broker restart answers with
                # an error, not a position: read as "no record in the retention", it skipped the
                # whole partition (a chaos run emailed 8 people twice from keys it never loaded).
                raise KafkaException(tp.error)
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, tp.partition), timeout=_within(deadline)
            )
            start = tp.offset if tp.offset >= 0 else high
            starts.append(TopicPartition(self.topic, tp.partition, max(start, low)))
            ends[tp.partition] = high
        return starts, ends

    def _load(self, deadline: float) -> int:
        starts, ends = self._start_positions(deadline)
        self._consumer.assign(starts)
        pending = [tp for tp in starts if tp.offset < ends[tp.partition]]
        count = 0
        while pending:
            if time.monotonic() > deadline:
                raise self._late(f"{len(pending)} of {len(starts)} partitions not read to the end")
            for msg in self._consumer.consume(1000, POLL):
                if msg.error() is None:
                    self._apply(msg)
                    count += 1
            # Positions, not the last record seen: compaction may have removed records.
            positions = self._consumer.position(pending)
            pending = [tp for tp in positions if tp.offset < ends[tp.partition]]
        return count

    def _apply(self, msg: Any) -> None:
        key = msg.key()
        if not key:
            return
        _kind, ms = msg.timestamp()
        self.index.add(key.decode("utf-8", "replace"), ms / 1000 if ms > 0 else self.index.now())

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                for msg in self._consumer.consume(500, POLL):
                    if msg.error() is None:
                        self._apply(msg)
            except KafkaException as exc:  # pragma: no cover - librdkafka retries by itself
                log.warning("sent-email ledger: read failed: %s", exc)
                time.sleep(1.0)


def _within(deadline: float) -> float:
    """A lookup's timeout: TIMEOUT, or what is left of the start-up's `deadline` if less."""
    return max(0.1, min(TIMEOUT, deadline - time.monotonic()))


def _settle(future: asyncio.Future[Any], err: Any) -> None:
    if not future.done():
        future.set_result(err)


async def _pump(producer: Any, done: asyncio.Future[Any]) -> Any:
    """Serve the producer's delivery callbacks until this record's report arrived."""
    while not done.done():
        await asyncio.to_thread(producer.poll, POLL)
    return done.result()


@asynccontextmanager
async def open_ledger(config: BridgeSettings) -> AsyncIterator[SentLedger]:
    """The deployment's ledger, loaded and followed: what `run`, `replay`, `dlq redrive` and the
    shadow run all open. `config.kafka` is the live deployment's (a shadow config carries the
    topic fixed already). Turned off: the no-op ledger and one WARNING saying what that costs."""
    if not config.ledger.enabled:
        log.warning(OPTED_OUT)
        yield NO_LEDGER
        return
    ledger = KafkaLedger(config.kafka, config.ledger)
    try:
        await asyncio.to_thread(ledger.open)
        yield ledger
    finally:
        await asyncio.to_thread(ledger.close)
