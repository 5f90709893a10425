"""The outcome topic on the real broker and the sandbox: under Meisa faults and a SIGKILL, every
call Meisa received has a record, keyed by its person; a broker that refuses the records makes
the bridge count and warn while every event is still delivered and committed."""

from __future__ import annotations

import random
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from bridge_harness import (
    ConfigFactory,
    bridge_process,
    event,
    produce,
    reached_end,
    read_all,
    wait_for,
)
from bridge_probes import metrics, sample

from bridge.sandbox.testing import SandboxHandle, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KINDS = {"user.updated": "upsert", "user.acted": "track", "auth.otp": "trigger"}


def _stream(users: int, n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = [event("user.updated", u, 0) for u in range(users)]
    for seq in range(1, n):
        kind = rng.choice(["user.acted", "user.acted", "user.updated", "auth.otp"])
        events.append(event(kind, rng.randrange(users), seq, code=f"{seq:06d}"))
    events += [event("auth.bad", 0, n), event("auth.bad", 1, n + 1)]  # poison: dead-lettered
    return events


def _records(bootstrap: str, topic: str, expect: int) -> list[tuple[bytes, int, dict[str, Any]]]:
    return [
        (m.key(), m.partition(), orjson.loads(m.value()))
        for m in read_all(bootstrap, topic, expect, timeout=60)
    ]


@pytest.mark.timeout(300)
def test_under_faults_and_a_sigkill_every_delivered_call_has_a_record(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    tmp_path: Path,
    bridge_config: ConfigFactory,
) -> None:
    topic, dlq, outcomes = make_topic(partitions=2), make_topic(), make_topic(partitions=3)
    group = "g-outcomes"
    events = _stream(users=40, n=600, seed=5)
    produce(kafka_bootstrap, topic, events)
    sandbox.set_fault("*", status=503, rate=0.1, latency_ms=10)
    sandbox.set_fault("*", latency_ms=10)  # slow enough to kill it mid-stream
    path = bridge_config(
        topic,
        group,
        dlq=dlq,
        pipeline={"max_in_flight": 8},
        extra={"outcomes": {"topic": outcomes}},
    )
    first = bridge_process(path, tmp_path / "bridge1.log")
    try:
        wait_for(lambda: len(sandbox.events()) >= 100, 60, "the bridge to be mid-stream")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    second = bridge_process(path, tmp_path / "bridge2.log")
    try:
        wait_for(reached_end(kafka_bootstrap, group, topic, 2), 180, "catch-up")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    records = _records(kafka_bootstrap, outcomes, len(events))
    by_event: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for _, _, doc in records:
        assert doc["topic"] == topic
        by_event[doc["partition"], doc["offset"]].append(doc)

    tracks = {
        (int(e["properties"]["partition"]), int(e["properties"]["offset"]))
        for e in sandbox.events()
    }
    assert tracks, "Meisa received tracks"
    for where in tracks:
        assert any(d["kind"] == "track" and d["outcome"] == "sent" for d in by_event[where]), where
    # A trigger whose record the SIGKILL cut off is delivered again and skipped by the
    # sent-email ledger: its record says so (already_sent) under the same idempotency key.
    triggers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, _, doc in records:
        if doc["kind"] == "trigger":
            triggers[doc["idempotency_key"]].append(doc)
    for send in sandbox.sends():
        found = triggers[send["idempotency_key"]]
        ids = {d["email_send_id"] for d in found if d["outcome"] in ("sent", "scheduled")}
        reasons = {d["reason"] for d in found if d["outcome"] == "skipped"}
        assert ids == {send["email_send_id"]} or (not ids and reasons == {"already_sent"}), found
    upserted = {d["external_id"] for _, _, d in records if d["kind"] == "upsert"}
    assert {c["external_id"] for c in sandbox.contacts()} <= upserted

    source = read_all(kafka_bootstrap, topic, len(events), timeout=60)
    assert len(source) == len(events)
    for m in source:
        kind = orjson.loads(m.value())["type"]
        found = by_event[m.partition(), m.offset()]
        if kind == "auth.bad":  # dead-lettered again when the kill came before the commit
            assert {d["outcome"] for d in found} == {"dead_lettered"}
            assert {d["error"]["class"] for d in found} == {"RejectedCall"}
        else:
            assert {d["kind"] for d in found} == {KINDS[kind]}, (m.partition(), m.offset())
            assert {d["outcome"] for d in found} <= {"sent", "scheduled", "skipped"}

    partitions_of: dict[bytes, set[int]] = defaultdict(set)
    for key, partition, doc in records:
        person = doc["external_id"] if doc["kind"] != "trigger" else doc["email"].lower()
        assert key == person.encode()  # keyed by the person
        partitions_of[key].add(partition)
    assert all(len(p) == 1 for p in partitions_of.values())  # so in one partition, in order


def test_a_broker_refusing_the_records_is_counted_while_delivery_goes_on(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    tmp_path: Path,
    bridge_config: ConfigFactory,
) -> None:
    topic, group = make_topic(), "g-outcomes-refused"
    outcomes = make_topic(config={"max.message.bytes": "64"})  # every record is too large
    events = [event("user.acted", u, u) for u in range(5)]
    port = free_port()
    path = bridge_config(
        topic,
        group,
        sections={"server": {"host": "127.0.0.1", "port": port}},
        extra={"outcomes": {"topic": outcomes}},
    )
    produce(kafka_bootstrap, topic, [event("user.updated", u, 0) for u in range(5)] + events)
    log = tmp_path / "bridge.log"
    bridge = bridge_process(path, log)
    try:
        wait_for(reached_end(kafka_bootstrap, group, topic, 1), 60, "every event committed")
        assert len(sandbox.events()) == 5
        assert sample(metrics(port), "meisa_bridge_outcome_records_total", result="failed") == 10
        assert sample(metrics(port), "meisa_bridge_halted") == 0
    finally:
        bridge.send_signal(signal.SIGTERM)
        assert bridge.wait(60) == 0
    text = log.read_text()
    assert f"outcome topic {outcomes}: " in text
    assert "record(s) not written" in text
