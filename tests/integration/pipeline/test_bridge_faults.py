"""Fault scenarios beyond the "Done when" list: signals during long pauses, DLQ edge cases,
403 mid-stream, odd messages, rebalances under load. Real broker, sandbox over real HTTP."""

from __future__ import annotations

import copy
import logging
import random
import time
from collections import Counter
from typing import Any

import orjson
import pytest
from bridge_harness import (
    RULES,
    ConfigFactory,
    InProcessBridge,
    committed,
    end_offsets,
    event,
    produce,
    read_all,
    running,
    wait_for,
)
from confluent_kafka import KafkaException, Producer

from bridge.exitcodes import ExitCode
from bridge.sandbox.testing import SandboxHandle, free_port

pytestmark = pytest.mark.integration

API = "/api/v1/"


def _statuses(sandbox: SandboxHandle) -> list[int]:
    return [r["status"] for r in sandbox.requests(path=API, limit=1_000_000)]


def _track_seqs(sandbox: SandboxHandle) -> list[tuple[str, int]]:
    return sorted((e["email"], e["properties"]["seq"]) for e in sandbox.events())


def test_sigterm_during_a_long_retry_after_stops_within_the_grace_and_restart_delivers(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic, group = make_topic(partitions=2), "g-term-retry-after"
    events = [event("user.updated", u, 0) for u in range(10)]
    events += [event("user.acted", u, 1) for u in range(10)]
    produce(kafka_bootstrap, topic, events)
    ends = end_offsets(kafka_bootstrap, topic, 2)
    grace = 2.0
    path = bridge_config(
        topic,
        group,
        extra={"pipeline": {"shutdown_grace_seconds": grace, "revoke_grace_seconds": 10}},
    )
    sandbox.set_fault("track", status=429, retry_after=60)
    bridge = InProcessBridge(path).start()
    try:
        wait_for(lambda: 429 in _statuses(sandbox), 30, "a 429 with Retry-After: 60")
        started = time.monotonic()
        exit_code = bridge.stop(timeout=60)
        took = time.monotonic() - started
    finally:
        bridge.stop()
    assert exit_code == 0
    # The shutdown grace bounds the stop; the revoke on leaving the group must not add its own.
    assert took < grace + 6, f"stop took {took:.1f}s"
    at_stop = committed(kafka_bootstrap, group, topic, 2)
    assert all(at_stop[p] < ends[p] for p in at_stop), "tracks waiting out the 429 stay unread"
    assert sandbox.events() == []

    sandbox.clear_faults()
    with running(path):
        wait_for(lambda: committed(kafka_bootstrap, group, topic, 2) == ends, 60, "the rest")
    assert _track_seqs(sandbox) == sorted((f"user{u}@example.com", 1) for u in range(10))


def test_errors_drops_resets_and_http_date_retry_after_lose_nothing_and_keep_order(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic, dlq, group = make_topic(partitions=4), make_topic(partitions=1), "g-chaos"
    rng = random.Random(3)
    events = [event("user.updated", u, 0) for u in range(100)]
    expected: dict[str, list[int]] = {}
    for seq in range(1, 1500):
        u = rng.randrange(100)
        events.append(event("user.acted", u, seq))
        expected.setdefault(f"user{u}@example.com", []).append(seq)
    produce(kafka_bootstrap, topic, events)
    ends = end_offsets(kafka_bootstrap, topic, 4)
    sandbox.set_fault("track", status=429, retry_after=1, retry_after_format="http-date", count=3)
    sandbox.set_fault("*", status=500, rate=0.3, seed=42)
    sandbox.set_fault("*", drop=True, rate=0.1, seed=1)
    sandbox.set_fault("*", drop="reset", rate=0.1, seed=2)
    path = bridge_config(
        topic,
        group,
        dlq=dlq,
        meisa={"retry_base_seconds": 0.05, "retry_cap_seconds": 0.5},
    )
    with running(path):
        wait_for(lambda: committed(kafka_bootstrap, group, topic, 4) == ends, 90, "all committed")
    got: dict[str, list[int]] = {}
    for e in sandbox.events():
        got.setdefault(e["email"], []).append(e["properties"]["seq"])
    assert got == expected  # faults fire before Meisa acts, so no call is applied twice
    statuses = Counter(_statuses(sandbox))
    assert statuses[429] == 3
    assert statuses[500] > 100  # the sandbox logs a dropped connection as 500
    assert read_all(kafka_bootstrap, dlq, expect=0, timeout=2) == []


def test_a_track_404_waits_for_the_upsert_on_another_partition_then_unknown_is_poison(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic, dlq, group = make_topic(partitions=2), make_topic(partitions=1), "g-404-later"
    # A 404 parks the track; the upsert that arrives on another partition wakes it at once. The
    # contact that never comes is waited for `contact_wait_seconds`, then dead-lettered.
    path = bridge_config(
        topic,
        group,
        dlq=dlq,
        meisa={"retry_base_seconds": 0.2, "retry_cap_seconds": 0.5},
        pipeline={"contact_wait_seconds": 4},
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap})

    def send(partition: int, body: dict[str, Any]) -> None:
        producer.produce(topic, partition=partition, key=b"k", value=orjson.dumps(body))
        assert producer.flush(10) == 0

    with running(path):
        send(0, event("user.acted", 7, 1))
        wait_for(lambda: 404 in _statuses(sandbox), 30, "the track's first 404")
        send(1, event("user.updated", 7, 0))  # the contact's upsert, on another partition
        send(0, event("user.acted", 8, 2))  # a contact that never comes
        ends = end_offsets(kafka_bootstrap, topic, 2)
        wait_for(lambda: committed(kafka_bootstrap, group, topic, 2) == ends, 60, "all committed")
    assert _track_seqs(sandbox) == [("user7@example.com", 1)]
    records = read_all(kafka_bootstrap, dlq, expect=1)
    assert len(records) == 1
    headers = dict(records[0].headers())
    assert headers["meisa-bridge.error.class"] == b"ContactWaitExpired"
    assert headers["meisa-bridge.offset"] == b"1"
    assert b"usr_8" in headers["meisa-bridge.error.message"]
    assert b"no contact after waiting" in headers["meisa-bridge.error.message"]
    assert int(headers["meisa-bridge.attempts"]) >= 2


def test_a_dead_letter_topic_that_does_not_exist_refuses_to_start(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    bridge_config: ConfigFactory,
    capsys: Any,
) -> None:
    # auto.create.topics.enable is off on the broker: the first poison message would wait ~30 s
    # for the topic and then halt; refuse at start-up instead, before anything is consumed.
    topic, group, dlq = make_topic(partitions=1), "g-no-dlq-topic", "no-such-dlq-topic"
    produce(kafka_bootstrap, topic, [event("user.updated", 1, 0)])
    path = bridge_config(topic, group, dlq=dlq)
    bridge = InProcessBridge(path).start()
    assert bridge.join(30) == 2
    assert "dead_letter_topic 'no-such-dlq-topic' does not exist" in capsys.readouterr().err
    assert committed(kafka_bootstrap, group, topic, 1) == {0: -1001}
    assert sandbox.contacts() == []


def _bad_deploy_rules() -> list[dict[str, Any]]:
    """The harness rules, but `user.updated` now maps to a trigger Meisa does not know (400)."""
    rules = copy.deepcopy(RULES)
    for rule in rules:
        if rule["name"] == "profile":
            rule["do"] = [{"trigger": {"trigger_key": "no_such", "to_email": "{{ data.email }}"}}]
    return rules


def _dlq_positions(records: list[Any]) -> set[tuple[int, int]]:
    out = set()
    for record in records:
        headers = dict(record.headers())
        out.add((int(headers["meisa-bridge.partition"]), int(headers["meisa-bridge.offset"])))
    return out


def test_a_bad_deploy_trips_the_breaker_and_commits_nothing_it_did_not_finish(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    bridge_config: ConfigFactory,
    capsys: Any,
) -> None:
    topic, dlq, group = make_topic(partitions=3), make_topic(partitions=1), "g-bad-deploy"
    limit = 10
    produce(kafka_bootstrap, topic, [event("user.updated", u, 0) for u in range(60)])
    before = end_offsets(kafka_bootstrap, topic, 3)
    with running(bridge_config(topic, group, dlq=dlq)):
        wait_for(lambda: committed(kafka_bootstrap, group, topic, 3) == before, 30, "good phase")

    produce(kafka_bootstrap, topic, [event("user.updated", u, 1) for u in range(300)])
    extra = {"dlq": {"max_consecutive": limit}, "rules": _bad_deploy_rules()}
    bridge = InProcessBridge(bridge_config(topic, group, dlq=dlq, extra=extra)).start()
    assert bridge.join(60) == ExitCode.HALTED, "the breaker halts the bridge"
    assert "DlqBreakerTripped" in capsys.readouterr().err
    records = read_all(kafka_bootstrap, dlq, expect=limit, timeout=5)
    assert 0 < len(records) < limit
    dead = _dlq_positions(records)
    after = committed(kafka_bootstrap, group, topic, 3)
    for p, end in before.items():
        # every committed offset past the good phase was dead-lettered, none was skipped over
        assert {(p, o) for o in range(end, after[p])} <= dead
    assert sandbox.sends() == []


def test_403_mid_stream_halts_without_dlq_and_keeps_the_unprocessed_uncommitted(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    bridge_config: ConfigFactory,
    capsys: Any,
) -> None:
    topic, dlq, group = make_topic(partitions=2), make_topic(partitions=1), "g-403"
    events = [event("user.updated", u, 0) for u in range(20)]
    events += [event("user.acted", u, 1) for u in range(20)]
    produce(kafka_bootstrap, topic, events)
    ends = end_offsets(kafka_bootstrap, topic, 2)
    body = {"error": "this key lacks the events:write scope", "code": "forbidden"}
    sandbox.set_fault("track", status=403, body=body)
    path = bridge_config(topic, group, dlq=dlq)
    bridge = InProcessBridge(path).start()
    assert bridge.join(60) == ExitCode.HALTED
    err = capsys.readouterr().err
    assert "Forbidden" in err
    assert "events:write" in err
    assert read_all(kafka_bootstrap, dlq, expect=0, timeout=2) == []
    after = committed(kafka_bootstrap, group, topic, 2)
    assert sum(after.values()) <= 20
    assert all(after[p] < ends[p] for p in ends)
    assert sandbox.events() == []


def test_poison_without_a_dead_letter_topic_halts_and_is_read_again(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    bridge_config: ConfigFactory,
    capsys: Any,
) -> None:
    topic, group = make_topic(partitions=1), "g-no-dlq"
    items: list[Any] = [
        (b"usr_1", orjson.dumps(event("user.updated", 1, 0)), None),
        (b"usr_1", b"{not json", None),
        (b"usr_1", orjson.dumps(event("user.acted", 1, 2)), None),
    ]
    produce(kafka_bootstrap, topic, items)
    path = bridge_config(topic, group)
    bridge = InProcessBridge(path).start()
    assert bridge.join(60) == ExitCode.HALTED
    assert "NoDeadLetterTopic" in capsys.readouterr().err
    assert committed(kafka_bootstrap, group, topic, 1) == {0: 1}, "never dropped silently"


def test_an_unreachable_schema_registry_halts_without_dead_lettering_the_message(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    bridge_config: ConfigFactory,
    capsys: Any,
) -> None:
    topic, dlq, group = make_topic(partitions=1), make_topic(partitions=1), "g-registry-down"
    confluent_wire = b"\x00\x00\x00\x00\x07" + b"\x02"  # magic 0, schema id 7, an Avro body
    items: list[Any] = [
        (b"usr_1", orjson.dumps(event("user.updated", 1, 0)), None),
        (b"usr_1", confluent_wire, None),
        (b"usr_1", orjson.dumps(event("user.acted", 1, 2)), None),
    ]
    produce(kafka_bootstrap, topic, items)
    path = bridge_config(
        topic,
        group,
        dlq=dlq,
        extra={"codec": {"schema_registry_url": f"http://127.0.0.1:{free_port()}"}},
    )
    bridge = InProcessBridge(path).start()
    assert bridge.join(60) == ExitCode.HALTED
    err = capsys.readouterr().err
    assert f"{topic}/0@1" in err, err[-2000:]
    assert "Kafka consumer failed" not in err
    assert committed(kafka_bootstrap, group, topic, 1) == {0: 1}, "nothing past the message"
    assert read_all(kafka_bootstrap, dlq, expect=0, timeout=2) == []


def test_cloudevents_binary_skipped_tombstone_odd_key_and_a_huge_message(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic, dlq, group = make_topic(partitions=1), make_topic(partitions=1), "g-odd"
    ce_headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"ce-1"),
        ("ce_type", b"user.acted"),
        ("ce_source", b"/svc"),
        ("ce_time", b"2026-01-01T00:00:00Z"),
        ("content-type", b"application/json"),
    ]
    ce_data = {"user_id": "usr_1", "email": "user1@example.com", "seq": 1}
    huge = event("user.acted", 1, 4, blob="x" * 900_000)
    items: list[Any] = [
        (b"usr_1", orjson.dumps(event("user.updated", 1, 0)), None),
        (b"usr_1", orjson.dumps(ce_data), ce_headers),
        (b"usr_1", None, [("why", b"deleted")]),  # a tombstone: no event, skipped
        (b"usr_1", b"{not json", [("why", b"broken")]),  # poison
        (b"\xff\xfe\x00", orjson.dumps(event("user.acted", 1, 3)), None),
        (b"usr_1", orjson.dumps(huge), None),
        (None, orjson.dumps(event("user.acted", 1, 5)), None),
    ]
    produce(kafka_bootstrap, topic, items)
    ends = end_offsets(kafka_bootstrap, topic, 1)
    path = bridge_config(topic, group, dlq=dlq)
    with running(path):
        wait_for(lambda: committed(kafka_bootstrap, group, topic, 1) == ends, 60, "all committed")
    assert [e["properties"]["seq"] for e in sandbox.events()] == [1, 3, 4, 5]
    (poison,) = read_all(kafka_bootstrap, dlq, expect=1)
    assert poison.value() == b"{not json", "the tombstone is skipped, not dead-lettered"
    assert poison.key() == b"usr_1"
    headers = poison.headers()
    assert headers[0] == ("why", b"broken")
    assert dict(headers)["meisa-bridge.error.class"] == b"DecodeError"


def test_poison_too_large_for_the_dlq_halts_instead_of_stalling_its_partition(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    bridge_config: ConfigFactory,
    capsys: Any,
) -> None:
    topic, dlq, group = make_topic(partitions=1), make_topic(partitions=1), "g-dlq-too-large"
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    size = 999_990  # the largest value the default message.max.bytes takes: no room for headers
    while True:
        try:
            producer.produce(topic, key=b"usr_1", value=b"{" + b"x" * size)
            break
        except KafkaException:
            size -= 10
    producer.produce(topic, key=b"usr_1", value=orjson.dumps(event("user.updated", 1, 0)))
    assert producer.flush(10) == 0
    path = bridge_config(topic, group, dlq=dlq)
    bridge = InProcessBridge(path).start()
    assert bridge.join(30) == ExitCode.HALTED
    assert "DeadLetterWriteFailed" in capsys.readouterr().err
    assert committed(kafka_bootstrap, group, topic, 1) in ({0: -1001}, {0: 0})
    assert read_all(kafka_bootstrap, dlq, expect=0, timeout=2) == []


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_retry_after_longer_than_max_poll_interval_keeps_the_group_and_loses_nothing(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    bridge_config: ConfigFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.pipeline")
    topic, group = make_topic(partitions=3), "g-poll-interval"
    events = [event("user.updated", u, 0) for u in range(30)]
    events += [event("user.acted", u, s) for s in range(1, 4) for u in range(30)]
    produce(kafka_bootstrap, topic, events)
    ends = end_offsets(kafka_bootstrap, topic, 3)
    path = bridge_config(
        topic,
        group,
        extra={
            "kafka": {"max.poll.interval.ms": 10_000},
            # tiny buffers: every partition is paused while the Retry-After runs
            "pipeline": {"max_buffered_per_partition": 4, "batch_size": 5},
        },
    )
    sandbox.set_fault("track", status=429, retry_after=15, count=1)
    with running(path):
        wait_for(lambda: committed(kafka_bootstrap, group, topic, 3) == ends, 120, "all")
    seen = Counter((e["email"], e["properties"]["seq"]) for e in sandbox.events())
    assert set(seen) == {(f"user{u}@example.com", s) for u in range(30) for s in range(1, 4)}
    assert set(seen.values()) == {1}
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("assigned:") for m in messages) == 1, "never left the group"
    assert not [m for m in messages if m.startswith("lost:")]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_three_bridges_joining_and_leaving_under_load_lose_nothing_and_rewind_nothing(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    parts, users = 6, 150
    topic, group = make_topic(partitions=parts), "g-three"
    rng = random.Random(9)
    events = [event("user.updated", u, 0) for u in range(users)]
    tracks: dict[str, list[int]] = {}
    for seq in range(1, 4000):
        u = rng.randrange(users)
        events.append(event("user.acted", u, seq))
        tracks.setdefault(f"user{u}@example.com", []).append(seq)
    produce(kafka_bootstrap, topic, events)
    ends = end_offsets(kafka_bootstrap, topic, parts)
    sandbox.set_fault("*", latency_ms=10)
    path = bridge_config(topic, group, pipeline={"max_in_flight": 8})

    def tracked() -> int:
        return len(sandbox.events())

    bridges = [InProcessBridge(path).start()]
    try:
        for at in (300, 900):
            wait_for(lambda at=at: tracked() >= at, 60, f"{at} tracks")
            bridges.append(InProcessBridge(path).start())
        wait_for(lambda: tracked() >= 1500, 60, "1500 tracks")
        assert bridges[0].stop() == 0
        wait_for(lambda: tracked() >= 2200, 60, "2200 tracks")
        assert bridges[1].stop() == 0
        bridges.append(InProcessBridge(path).start())
        wait_for(lambda: committed(kafka_bootstrap, group, topic, parts) == ends, 120, "the end")
    finally:
        codes = [b.stop() for b in bridges]
    assert codes == [0, 0, 0, 0]
    got: dict[str, list[int]] = {}
    for e in sandbox.events():
        got.setdefault(e["email"], []).append(e["properties"]["seq"])
    assert {k: sorted(set(v)) for k, v in got.items()} == tracks, "nothing lost"
    # Clean hand-overs commit what they finished: a new owner re-reads at most the calls that
    # were in flight, never a stretch the old owner had committed (commits never move back).
    duplicates = sum(len(v) - len(set(v)) for v in got.values())
    assert duplicates <= 8 * parts
    for seqs in got.values():
        firsts = list(dict.fromkeys(seqs))
        assert firsts == sorted(firsts), "per-contact order"


@pytest.mark.timeout(120)
def test_sigterm_with_a_backlog_finishes_started_calls_only_and_restart_repeats_none(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    # 400 buffered calls at 200 ms, 2 at a time, would take ~40 s: a stop must not try to send
    # them all within its grace (a rolling deploy would wait that long per replica).
    topic, group = make_topic(partitions=2), "g-term-backlog"
    produce(kafka_bootstrap, topic, [event("user.updated", u, 0) for u in range(100)])
    ends = end_offsets(kafka_bootstrap, topic, 2)
    path = bridge_config(topic, group, pipeline={"max_in_flight": 2, "shutdown_grace_seconds": 60})
    bridge = InProcessBridge(path).start()
    try:
        wait_for(lambda: committed(kafka_bootstrap, group, topic, 2) == ends, 60, "contacts")
        sandbox.set_fault("track", latency_ms=200)
        produce(
            kafka_bootstrap,
            topic,
            [event("user.acted", u, s) for s in (1, 2, 3, 4) for u in range(100)],
        )
        wait_for(lambda: len(sandbox.events()) >= 4, 30, "the backlog to start")
        started = time.monotonic()
        assert bridge.stop() == 0
        took = time.monotonic() - started
    finally:
        bridge.stop()
    assert took < 15, f"stop took {took:.1f}s"
    sent_before = len(sandbox.events())
    assert sent_before < 400
    sandbox.clear_faults()
    ends = end_offsets(kafka_bootstrap, topic, 2)
    with running(path):
        wait_for(lambda: committed(kafka_bootstrap, group, topic, 2) == ends, 60, "the rest")
    seen = Counter((e["email"], e["properties"]["seq"]) for e in sandbox.events())
    assert set(seen) == {(f"user{u}@example.com", s) for u in range(100) for s in (1, 2, 3, 4)}
    assert sum(seen.values()) - len(seen) <= 2, "only calls cut off by the stop repeat"


@pytest.mark.timeout(120)
def test_a_revoke_hands_over_a_backlog_at_once_instead_of_draining_it_first(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    bridge_config: ConfigFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every member waits while one runs its revoke callback: a backlog of 400 slow calls there
    # (~40 s at 200 ms, 2 at a time) would stall the whole group. Only started work finishes.
    caplog.set_level(logging.INFO, logger="bridge.pipeline")
    topic, group = make_topic(partitions=2), "g-revoke-backlog"
    events = [event("user.acted", u, s) for s in range(1, 5) for u in range(100)]
    produce(kafka_bootstrap, topic, [event("user.updated", u, 0) for u in range(100)])
    ends = end_offsets(kafka_bootstrap, topic, 2)
    path = bridge_config(topic, group, pipeline={"max_in_flight": 2, "revoke_grace_seconds": 60})
    with running(path):
        wait_for(lambda: committed(kafka_bootstrap, group, topic, 2) == ends, 60, "contacts")
        sandbox.set_fault("track", latency_ms=200)
        produce(kafka_bootstrap, topic, events)
        wait_for(lambda: len(sandbox.events()) >= 4, 30, "the backlog to start")
        with running(path) as second:
            assigned = f"{second._thread.name}: assigned: {topic}"

            def handed_over() -> bool:
                return any(
                    f"{r.threadName}: {r.getMessage()}".startswith(assigned) for r in caplog.records
                )

            wait_for(handed_over, 10, "the second bridge to get a partition")
            sandbox.clear_faults()
            ends = end_offsets(kafka_bootstrap, topic, 2)
            wait_for(lambda: committed(kafka_bootstrap, group, topic, 2) == ends, 60, "the end")
    seen = Counter((e["email"], e["properties"]["seq"]) for e in sandbox.events())
    assert set(seen) == {(f"user{u}@example.com", s) for u in range(100) for s in range(1, 5)}
    assert sum(seen.values()) - len(seen) <= 4, "only calls in flight at the hand-over repeat"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_hot_contact_on_12_partitions_keeps_its_order_and_blocks_no_other_partition(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    parts, cold = 12, range(1, 501)
    topic, group = make_topic(partitions=parts), "g-hot-key"
    kinds = [0] * 2000 + [u for u in cold for _ in range(4)]  # user 0 is hot
    random.Random(4).shuffle(kinds)
    events = [event("user.updated", u, 0) for u in [0, *cold]]
    expected: dict[str, list[int]] = {}
    for seq, u in enumerate(kinds, start=1):
        events.append(event("user.acted", u, seq))
        expected.setdefault(f"user{u}@example.com", []).append(seq)
    produce(kafka_bootstrap, topic, events)
    ends = end_offsets(kafka_bootstrap, topic, parts)
    sandbox.set_fault("*", latency_ms=5)
    path = bridge_config(topic, group)
    with running(path):
        wait_for(lambda: committed(kafka_bootstrap, group, topic, parts) == ends, 200, "the end")
    got: dict[str, list[dict[str, Any]]] = {}
    for e in sandbox.events():
        got.setdefault(e["email"], []).append(e)
    assert {k: [e["properties"]["seq"] for e in v] for k, v in got.items()} == expected
    hot = got.pop("user0@example.com")
    hot_partition, hot_done = hot[0]["properties"]["partition"], hot[-1]["timestamp"]
    elsewhere = [v for v in got.values() if v[0]["properties"]["partition"] != hot_partition]
    assert elsewhere
    # ISO timestamps of one clock compare as strings
    assert all(v[-1]["timestamp"] < hot_done for v in elsewhere), "cold partitions not blocked"
