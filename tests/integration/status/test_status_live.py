"""`meisa-bridge status` against the real broker: a running bridge's group (consumer protocol)
with committed offsets, a live member and /metrics, and a classic-protocol group.

The bridge runs as `meisa-bridge run` against the sandbox; once it has committed the first events,
the sandbox answers every upsert with 503, so the next events stay unfinished and the lag holds
still while `status` reads it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from bridge.sandbox.testing import SandboxHandle, free_port

pytestmark = pytest.mark.timeout(180)
EXE = Path(sys.executable).parent / "meisa-bridge"
RULES = [
    {
        "name": "profile",
        "on": "user.updated",
        "do": [{"upsert": {"email": "{{ data.email }}", "external_id": "{{ data.user_id }}"}}],
    }
]


def _config(tmp: Path, **doc: Any) -> Path:
    path = tmp / f"bridge-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _produce(bootstrap: str, topic: str, users: range, partitions: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for user in users:
        event = {
            "id": f"evt-{uuid.uuid4().hex}",
            "type": "user.updated",
            "data": {"user_id": f"usr_{user}", "email": f"user{user}@example.com"},
        }
        producer.produce(topic, value=orjson.dumps(event), partition=user % partitions)
    assert producer.flush(30) == 0


def _offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[str, dict[int, int]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
        done = {tp.partition: tp.offset for tp in c.committed(tps, timeout=10)}
        return {"end": ends, "committed": done}
    finally:
        c.close()


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _status(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), "status", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.fixture
def bridge(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """A running bridge on a 2-partition topic with a dead-letter topic holding 2 records."""
    topic, dlq = make_topic(partitions=2), make_topic(partitions=1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for _ in range(2):
        producer.produce(dlq, value=b"poison")
    assert producer.flush(30) == 0
    group, port = f"status-{uuid.uuid4().hex[:8]}", free_port()
    config = _config(
        tmp_path,
        kafka={"bootstrap.servers": kafka_bootstrap, "group.id": group},
        topics=[topic],
        dead_letter_topic=dlq,
        meisa={"base_url": sandbox.base_url, "api_key": sandbox.api_key},  # 60/min, 1000/h
        pipeline={"commit_interval_seconds": 0.5},
        server={"host": "127.0.0.1", "port": port},
        suppression={"enabled": False},
        ledger={"enabled": False},  # status reads the group, not the ledger
        logging={"format": "text"},
        rules=RULES,
    )
    with (tmp_path / "bridge.log").open("ab") as log:
        proc = subprocess.Popen([str(EXE), "run", "--config", str(config)], stdout=log, stderr=log)
    try:
        yield {"config": config, "topic": topic, "group": group, "port": port, "dlq": dlq}
    finally:
        sandbox.clear_faults()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_status_of_a_running_bridge_with_lag_members_dlq_and_budget(
    kafka_bootstrap: str, sandbox: SandboxHandle, bridge: dict[str, Any]
) -> None:
    topic, group = bridge["topic"], bridge["group"]
    _produce(kafka_bootstrap, topic, range(4), partitions=2)

    def all_committed() -> bool:
        found = _offsets(kafka_bootstrap, group, topic, 2)
        return found["committed"] == found["end"] == {0: 2, 1: 2}

    _wait(all_committed, 90, "the bridge to commit the first events")
    sandbox.set_fault("upsert", status=503)
    _produce(kafka_bootstrap, topic, range(4, 7), partitions=2)  # 2 on partition 0, 1 on 1

    proc = _status(bridge["config"], "--json", "--sample", "2")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["group"] == group
    assert doc["protocol"] == "consumer"
    assert doc["state"] == "stable"
    [member] = doc["members"]
    assert sorted(map(tuple, member["assignment"])) == [(topic, 0), (topic, 1)]
    rows = {p["partition"]: p for p in doc["partitions"]}
    assert {p: (r["committed"], r["end"], r["lag"]) for p, r in rows.items()} == {
        0: (2, 4, 2),
        1: (2, 3, 1),
    }
    assert all(r["owner"] == member["member_id"] for r in rows.values())
    assert doc["lag"] == 3
    assert doc["dead_letter"] == {"topic": bridge["dlq"], "records": 2, "partitions": 1}
    assert doc["pace"]["committed_per_second"] == 0.0
    assert doc["pace"]["eta_seconds"] is None  # nothing finishes while Meisa answers 503
    metrics = doc["bridge"]
    assert metrics["url"] == f"http://127.0.0.1:{bridge['port']}/metrics"
    assert metrics["reachable"] is True
    assert (metrics["key_per_minute"], metrics["key_per_hour"]) == (60, 1000)
    assert metrics["share"] == 1.0
    assert metrics["halted"] is False
    assert metrics["requests_per_event"] > 0
    assert metrics["eta_at_budget_seconds"] > 0

    text = _status(bridge["config"], "--sample", "0")
    assert text.returncode == 0, text.stderr
    assert f"group {group}: consumer protocol, stable, 1 member" in text.stdout
    assert "total lag 3" in text.stdout
    assert f"dead-letter topic {bridge['dlq']}: 2 records" in text.stdout
    assert "of the key's 60/min and 1000/h" in text.stdout


def test_status_of_a_classic_protocol_group_with_a_live_member(
    kafka_bootstrap: str, make_topic: Any, tmp_path: Path
) -> None:
    topic, group = make_topic(partitions=3), f"classic-{uuid.uuid4().hex[:8]}"
    _produce(kafka_bootstrap, topic, range(9), partitions=3)
    kafka = {"bootstrap.servers": kafka_bootstrap, "group.id": group, "group.protocol": "classic"}
    consumer = Consumer({**kafka, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        read = 0
        deadline = time.monotonic() + 60
        while read < 4 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                consumer.commit(msg, asynchronous=False)
                read += 1
        assert read == 4
        done = _offsets(kafka_bootstrap, group, topic, 3)["committed"]
        config = _config(tmp_path, kafka=kafka, topics=[topic], rules=RULES)
        proc = _status(config, "--json", "--sample", "0", "--no-metrics")
    finally:
        consumer.close()
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["protocol"], doc["state"]) == ("classic", "stable")
    [member] = doc["members"]
    assert sorted(map(tuple, member["assignment"])) == [(topic, p) for p in range(3)]
    lags = {p["partition"]: (p["committed"], p["lag"]) for p in doc["partitions"]}
    expected = {p: (None, 3) if done[p] < 0 else (done[p], 3 - done[p]) for p in range(3)}
    assert lags == expected
    assert doc["lag"] == 9 - 4
    assert doc["dead_letter"] is None
    assert doc["bridge"] is None
