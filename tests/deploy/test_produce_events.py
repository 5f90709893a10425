"""scripts/produce_events.py, the compose stack's one-shot producer, run as compose runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Consumer, TopicPartition

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "produce_events.py"
EVENTS = ROOT / "examples" / "events.jsonl"


def _compose_args() -> list[str]:
    """The producer service's command from docker-compose.yml, with host paths for /app paths."""
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["producer"]
    return [str(a).replace("/app/", f"{ROOT}/") for a in service["command"]]


def _produce(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
    )


def _consume_all(bootstrap: str, topic: str, count: int) -> list[tuple[bytes | None, bytes]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"{topic}-check", "enable.auto.commit": False}
    )
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        got: list[tuple[bytes | None, bytes]] = []
        for _ in range(200):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append((msg.key(), msg.value() or b""))
            if len(got) >= count:
                break
        return got
    finally:
        consumer.close()


def test_every_example_line_is_published_including_the_broken_one(
    kafka_bootstrap: str, make_topic: Any, tmp_path: Path
) -> None:
    topic = make_topic(partitions=3)
    args = _compose_args()
    args[args.index("--bootstrap") + 1] = kafka_bootstrap
    args[args.index("--topic") + 1] = topic
    proc = _produce(*args)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in EVENTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    got = _consume_all(kafka_bootstrap, topic, len(lines))
    assert len(got) == len(lines)
    broken = [value for _, value in got if not value.startswith(b"{") or b"evt_bad" in value]
    # The line that is not JSON goes out byte for byte (the bridge sends it to the DLQ) ...
    assert broken == [next(line for line in lines if "evt_bad" in line).encode()]
    # ... keyed by its user id like the others, so per-contact order holds.
    keys = {json.loads(v)["data"]["user_id"]: k for k, v in got if b"evt_bad" not in v}
    assert next(k for k, v in got if b"evt_bad" in v) == b"usr_1002" == keys["usr_1002"]


def test_retime_moves_the_newest_event_to_now_and_shrinks_the_gaps(
    kafka_bootstrap: str, make_topic: Any
) -> None:
    topic = make_topic(partitions=1)
    count = sum(1 for line in EVENTS.read_text(encoding="utf-8").splitlines() if line.strip())
    proc = _produce("--bootstrap", kafka_bootstrap, "--topic", topic, "--file", str(EVENTS))
    assert proc.returncode == 0, proc.stderr
    plain = _consume_all(kafka_bootstrap, topic, count)
    topic2 = make_topic(partitions=1)
    before = datetime.now(UTC)
    args = ["--bootstrap", kafka_bootstrap, "--topic", topic2, "--file", str(EVENTS), "--retime"]
    proc = _produce(*args)
    assert proc.returncode == 0, proc.stderr
    moved = _consume_all(kafka_bootstrap, topic2, len(plain))

    def times(msgs: list[tuple[bytes | None, bytes]]) -> list[datetime]:
        out = []
        for _, value in msgs:
            if b"evt_bad" not in value:
                out.append(datetime.fromisoformat(json.loads(value)["time"].replace("Z", "+00:00")))
        return out

    old, new = times(plain), times(moved)
    assert max(new) >= before - timedelta(seconds=1)
    assert max(new) <= datetime.now(UTC) + timedelta(seconds=1)
    # Gaps shrink 60x, as in `make demo`: a day-old OTP stays stale, minutes become seconds.
    for (a, b), (c, d) in zip(pairwise(old), pairwise(new), strict=True):
        assert abs((d - c).total_seconds() - (b - a).total_seconds() / 60) <= 1
