"""Kafka for the chaos run: fresh topics, producing the history, offsets, and the DLQ's records."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # stubs

from chaos.history import Message

TIMEOUT = 30.0
PROBE_TIMEOUT = 5.0  # progress samples while the broker may be down must not stall the schedule
QUIET = {"log_level": 0}  # the runner reports outcomes; librdkafka's reconnect chatter is noise


def fresh_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Delete the topics if they exist, then create them with these partition counts.

    A deleted topic stays in the metadata for a moment, and creating it again meanwhile fails:
    so wait until it is gone, then create, then wait until every partition has a leader."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    existing = [t for t in topics if t in admin.list_topics(timeout=TIMEOUT).topics]
    for future in (
        admin.delete_topics(existing, operation_timeout=TIMEOUT).values() if existing else []
    ):
        future.result(TIMEOUT)
    deadline = time.monotonic() + 180
    while any(t in admin.list_topics(timeout=TIMEOUT).topics for t in existing):
        _before(deadline, "the old topics to be deleted")
        time.sleep(0.5)
    while not _ready(admin, topics):
        present = admin.list_topics(timeout=TIMEOUT).topics
        todo = [NewTopic(t, n, 1) for t, n in topics.items() if t not in present]
        try:
            for future in admin.create_topics(todo, operation_timeout=TIMEOUT).values():
                future.result(TIMEOUT)
        except KafkaException:
            pass  # a deletion still in progress, or the topic exists after all: look again
        _before(deadline, f"topics {sorted(topics)} with leaders")
        time.sleep(0.5)


def _before(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise TimeoutError(f"timed out waiting for {what}")


def _ready(admin: AdminClient, topics: dict[str, int]) -> bool:
    meta = admin.list_topics(timeout=TIMEOUT).topics
    return all(
        t in meta
        and len(meta[t].partitions) == n
        and all(p.leader >= 0 for p in meta[t].partitions.values())
        for t, n in topics.items()
    )


class HistoryProducer:
    """Produces the history: a first part at once, the rest spread over a number of seconds."""

    def __init__(self, bootstrap: str, messages: list[Message]) -> None:
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "linger.ms": 20,
                "message.timeout.ms": 600_000,  # survive the broker restarts of the schedule
                **QUIET,
            }
        )
        self.messages = sorted(messages, key=lambda m: m.time)
        self.poison: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.delivered = 0
        self.done = threading.Event()

    def _report(self, kind: str) -> Callable[[Any, Any], None]:
        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                self.errors.append(str(err))
                return
            self.delivered += 1
            if kind in ("poison", "rejected"):
                where = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
                self.poison.append({**where, "call": kind == "rejected"})

        return on_delivery

    def _produce(self, batch: Iterable[Message]) -> None:
        for m in batch:
            while True:
                try:
                    self.producer.produce(
                        m.topic,
                        m.value,
                        m.key,
                        headers=list(m.headers),
                        on_delivery=self._report(m.kind),
                    )
                    break
                except BufferError:
                    self.producer.poll(0.1)
            self.producer.poll(0)

    def first(self, share: float) -> int:
        count = int(len(self.messages) * share)
        self._produce(self.messages[:count])
        self.producer.flush(TIMEOUT)
        return count

    def trickle(self, start: int, seconds: float) -> threading.Thread:
        rest = self.messages[start:]

        def run() -> None:
            began, step = time.monotonic(), max(1, len(rest) // max(1, int(seconds * 10)))
            for i in range(0, len(rest), step):
                self._produce(rest[i : i + step])
                pause = began + seconds * (i + step) / len(rest) - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            while self.producer.flush(5.0):
                pass
            self.done.set()

        thread = threading.Thread(target=run, name="history", daemon=True)
        thread.start()
        return thread


def _probe(bootstrap: str, group: str | None = None) -> Any:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group or f"chaos-probe-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            **QUIET,
        }
    )


def end_offsets(bootstrap: str, topics: dict[str, int]) -> dict[str, int]:
    c = _probe(bootstrap)
    try:
        return {
            f"{t}/{p}": c.get_watermark_offsets(TopicPartition(t, p), timeout=TIMEOUT)[1]
            for t, n in topics.items()
            for p in range(n)
        }
    finally:
        c.close()


def committed(
    bootstrap: str, group: str, topics: dict[str, int], timeout: float = TIMEOUT
) -> dict[str, int]:
    c = _probe(bootstrap, group)
    try:
        tps = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
        return {
            f"{tp.topic}/{tp.partition}": max(tp.offset, 0)
            for tp in c.committed(tps, timeout=timeout)
        }
    finally:
        c.close()


def read_topic(bootstrap: str, topic: str, *, values: bool = False) -> list[dict[str, Any]]:
    """Every record of a (small) topic: partition, offset and headers as text; with `values`, its
    key as text and its value parsed as JSON too. A partition not read to its end within a minute
    raises TimeoutError: a partial read would look like missing records."""
    c = _probe(bootstrap)
    try:
        meta = c.list_topics(topic=topic, timeout=TIMEOUT).topics[topic]
        ends = {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)
            for p in meta.partitions
        }
        c.assign([TopicPartition(topic, p, lo) for p, (lo, _hi) in ends.items()])
        pending = {p for p, (lo, hi) in ends.items() if hi > lo}
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for msg in c.consume(500, 1.0):
                if msg.error() is not None:
                    continue
                headers = {k: (v or b"").decode("utf-8", "replace") for k, v in msg.headers() or []}
                row = {"partition": msg.partition(), "offset": msg.offset(), "headers": headers}
                if values:
                    key = msg.key()
                    row["key"] = None if key is None else key.decode("utf-8", "replace")
                    row["value"] = orjson.loads(msg.value() or b"null")
                out.append(row)
                if msg.offset() + 1 >= ends[msg.partition()][1]:
                    pending.discard(msg.partition())
        if pending:
            raise TimeoutError(f"{topic}: partitions {sorted(pending)} not read to their end")
        return out
    finally:
        c.close()
