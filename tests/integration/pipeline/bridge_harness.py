"""Helpers for bridge scenarios: configs, producing events, offsets, the DLQ, running the bridge."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import yaml
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

if TYPE_CHECKING:
    from bridge.observability.tracing import Tracing

RULES: list[dict[str, Any]] = [
    {
        "name": "profile",
        "on": "user.updated",
        "do": [
            {
                "upsert": {
                    "email": "{{ data.email }}",
                    "external_id": "{{ data.user_id }}",
                    "custom_fields": {"seq": "{{ data.seq }}"},
                }
            }
        ],
    },
    {
        "name": "act",
        "on": "user.acted",
        "do": [
            {
                "track": {
                    "external_id": "{{ data.user_id }}",
                    "event_name": "acted",
                    "properties": {
                        "seq": "{{ data.seq }}",
                        "partition": "{{ partition }}",
                        "offset": "{{ offset }}",
                    },
                }
            }
        ],
    },
    {
        "name": "bad-trigger",
        "on": "auth.bad",
        "do": [{"trigger": {"trigger_key": "no_such_trigger", "to_email": "{{ data.email }}"}}],
    },
    {
        "name": "otp",
        "on": "auth.otp",
        "do": [
            {
                "trigger": {
                    "trigger_key": "verification_code",
                    "to_email": "{{ data.email }}",
                    "variables": {"code": "{{ data.code }}"},
                    "idempotency_key": "otp-{{ id }}",
                },
                "max_age": "10m",
            }
        ],
    },
]


def write_config(
    tmp: Path,
    *,
    bootstrap: str,
    topics: list[str],
    base_url: str,
    api_key: str,
    group: str | None = None,
    dlq: str | None = None,
    pipeline: dict[str, Any] | None = None,
    meisa: dict[str, Any] | None = None,
    sections: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A bridge config file; `sections` replaces whole top-level sections (server, suppression);
    `extra` is then merged in (dicts into their section, anything else replaces it)."""
    doc: dict[str, Any] = {
        "kafka": {
            "bootstrap.servers": bootstrap,
            "group.id": group or f"bridge-{uuid.uuid4().hex[:8]}",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "topic.metadata.refresh.interval.ms": 2000,
        },
        "topics": topics,
        "meisa": {"base_url": base_url, "api_key": api_key, **(meisa or {})},
        "pipeline": {"commit_interval_seconds": 0.5, **(pipeline or {})},
        "server": {"host": "127.0.0.1", "port": 0},
        "suppression": {"enabled": False},
        "logging": {"level": "INFO", "format": "text"},
        "rules": RULES,
    }
    if dlq:
        doc["dead_letter_topic"] = dlq
    doc.update(sections or {})
    for name, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(doc.get(name), dict):
            doc[name].update(value)
        else:
            doc[name] = value
    path = tmp / f"bridge-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class ConfigFactory(Protocol):
    """The `bridge_config` fixture: `write_config` bound to the broker, the sandbox and tmp_path.

    Any `write_config` keyword (dlq, pipeline, meisa, sections, extra, base_url, api_key) overrides.
    """

    def __call__(self, topic: str, group: str, **overrides: Any) -> Path: ...


def event(kind: str, user: int, seq: int, **data: Any) -> dict[str, Any]:
    return {
        "id": f"evt-{kind}-{user}-{seq}-{uuid.uuid4().hex[:6]}",
        "type": kind,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {"user_id": f"usr_{user}", "email": f"user{user}@example.com", "seq": seq, **data},
    }


def produce(
    bootstrap: str,
    topic: str,
    events: list[dict[str, Any]] | list[tuple[bytes | None, bytes, list[Any] | None]],
) -> None:
    """Keyed by user id (dict events) or (key, value, headers) tuples, in order."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for item in events:
        if isinstance(item, dict):
            key = item["data"]["user_id"].encode()
            producer.produce(topic, key=key, value=orjson.dumps(item))
        else:
            key, value, headers = item
            producer.produce(topic, key=key, value=value, headers=headers)
        producer.poll(0)
    assert producer.flush(30) == 0


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe-" + uuid.uuid4().hex})
    try:
        return {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        c.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def rewind(bootstrap: str, group: str, topic: str, partitions: int, timeout: float = 30) -> None:
    """Move a stopped group's committed offsets back to the start of `topic`, as an operator's
    `kafka-consumer-groups.sh --reset-offsets --to-earliest` does (retried while the group's
    last member is still leaving)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p, 0) for p in range(partitions)]
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.alter_consumer_group_offsets([request])[group].result(10)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_all(bootstrap: str, topic: str, expect: int, timeout: float = 20) -> list[Any]:
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "reader-" + uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                out.append(m)
        # a little longer, to see records that should not be there
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                out.append(m)
    finally:
        c.close()
    return out


class InProcessBridge:
    """`meisa-bridge run` on a thread of this process, stopped through its stop event;
    `tracing` (bridge.observability.start_tracing) replaces what the config says."""

    def __init__(self, config_path: Path, tracing: Tracing | None = None) -> None:
        from bridge.config import load_config

        self.config = load_config(config_path)
        self._tracing = tracing
        self.exit_code: int | None = None
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        from bridge.pipeline.runner import run_bridge

        async def go() -> int:
            return await run_bridge(self.config, stop=self._stop, tracing=self._tracing)

        self.exit_code = self._loop.run_until_complete(go())
        self._loop.close()

    def start(self) -> InProcessBridge:
        self._thread.start()
        return self

    def stop(self, timeout: float = 60) -> int | None:
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the bridge did not stop"
        return self.exit_code

    def join(self, timeout: float) -> int | None:
        self._thread.join(timeout)
        return self.exit_code

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


@contextlib.contextmanager
def bridge_in_process(
    config_path: Path, tracing: Tracing | None = None
) -> Iterator[InProcessBridge]:
    bridge = InProcessBridge(config_path, tracing).start()
    try:
        yield bridge
    finally:
        bridge.stop()


class running:
    """A bridge in this process for the length of a `with` block; it must stop cleanly."""

    def __init__(self, path: Path) -> None:
        self.bridge = InProcessBridge(path)

    def __enter__(self) -> InProcessBridge:
        return self.bridge.start()

    def __exit__(self, *exc: object) -> None:
        code = self.bridge.stop()
        if exc[0] is None:
            assert code == 0


def reached_end(bootstrap: str, group: str, topic: str, partitions: int) -> Callable[[], bool]:
    """A check for `wait_for`: the group has committed up to the topic's current end offsets."""
    ends = end_offsets(bootstrap, topic, partitions)
    return lambda: committed(bootstrap, group, topic, partitions) == ends


def bridge_process(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "meisa-bridge"
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [str(exe), "run", "--config", str(config_path)], stdout=log, stderr=log
        )
