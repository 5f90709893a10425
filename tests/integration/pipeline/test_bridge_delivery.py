"""Delivery scenarios from the bridge's "Done when" list, on the real broker and the sandbox."""

from __future__ import annotations

import logging
import random
from datetime import datetime
from typing import Any

import orjson
import pytest
from bridge_harness import (
    ConfigFactory,
    bridge_in_process,
    committed,
    event,
    produce,
    reached_end,
    read_all,
    wait_for,
)

from bridge.exitcodes import ExitCode
from bridge.sandbox.testing import SandboxHandle

pytestmark = pytest.mark.integration


def _seqs_by_user(sandbox: SandboxHandle) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for e in sandbox.events():
        out.setdefault(e["email"], []).append(e["properties"]["seq"])
    return out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_10k_events_on_4_partitions_arrive_in_per_contact_order(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic, group = make_topic(partitions=4), "g-10k"
    rng = random.Random(5)
    users = 500
    events, tracks, last_upsert = [], {}, {}
    for u in range(users):
        events.append(event("user.updated", u, 0))
        last_upsert[u] = 0
    for seq in range(1, 10_000 - users + 1):
        u = rng.randrange(users)
        kind = rng.choice(["user.updated", "user.acted"])
        events.append(event(kind, u, seq))
        if kind == "user.acted":
            tracks.setdefault(f"user{u}@example.com", []).append(seq)
        else:
            last_upsert[u] = seq
    produce(kafka_bootstrap, topic, events)
    path = bridge_config(topic, group)
    with bridge_in_process(path) as bridge:
        wait_for(reached_end(kafka_bootstrap, group, topic, 4), 240, "all offsets committed")
    assert bridge.exit_code == 0
    # every track arrived exactly once, per contact in offset (= production) order
    assert _seqs_by_user(sandbox) == tracks
    contacts = {c["email"]: c for c in sandbox.contacts()}
    assert len(contacts) == users
    for u, seq in last_upsert.items():
        assert contacts[f"user{u}@example.com"]["custom_fields"]["seq"] == seq


def test_poison_goes_to_the_dlq_byte_for_byte_and_later_messages_flow(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    bridge_config: ConfigFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge")
    topic, dlq, group = make_topic(partitions=1), make_topic(partitions=1), "g-poison"
    bad_headers = [("trace-id", b"\x00\xffabc"), ("empty", b"")]
    good_before = [event("user.updated", 1, 0), event("user.acted", 1, 1)]
    good_after = [event("user.acted", 1, 3), event("user.acted", 1, 4)]
    items: list[Any] = [(b"usr_1", orjson.dumps(e), None) for e in good_before]
    items.append((b"\x01raw-key", b'{"type": "user.acted", "data": {oops', bad_headers))
    items.append((b"usr_2", orjson.dumps(event("auth.bad", 2, 2)), [("h", b"v")]))
    items += [(b"usr_1", orjson.dumps(e), None) for e in good_after]
    produce(kafka_bootstrap, topic, items)
    path = bridge_config(topic, group, dlq=dlq)
    with bridge_in_process(path):
        wait_for(reached_end(kafka_bootstrap, group, topic, 1), 60, "offsets past the poison")
    assert _seqs_by_user(sandbox) == {"user1@example.com": [1, 3, 4]}
    records = read_all(kafka_bootstrap, dlq, expect=2)
    assert len(records) == 2
    decode, deliver = records
    assert decode.key() == b"\x01raw-key"
    assert decode.value() == b'{"type": "user.acted", "data": {oops'
    headers = decode.headers()
    assert headers[:2] == bad_headers
    extra = dict(headers[2:])
    assert extra["meisa-bridge.stage"] == b"decode"
    assert extra["meisa-bridge.error.class"] == b"DecodeError"
    assert extra["meisa-bridge.topic"] == topic.encode()
    assert extra["meisa-bridge.partition"] == b"0"
    assert extra["meisa-bridge.offset"] == b"2"
    assert int(extra["meisa-bridge.timestamp"]) > 0
    assert deliver.headers()[0] == ("h", b"v")
    extra = dict(deliver.headers()[1:])
    assert extra["meisa-bridge.stage"] == b"deliver"
    assert extra["meisa-bridge.rule"] == b"bad-trigger"
    assert extra["meisa-bridge.error.class"] == b"RejectedCall"
    assert b"user2@example.com" not in extra["meisa-bridge.error.message"]
    logged = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert [m.split(": ")[0] for m in logged] == [
        f"dead-lettered {topic} partition 0 offset 2 (decode, rule -)",  # no rule read it
        f"dead-lettered {topic} partition 0 offset 3 (deliver, rule 'bad-trigger')",
    ]


def test_503_and_429_with_retry_after_lose_nothing_and_honour_the_pause(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic, dlq, group = make_topic(partitions=2), make_topic(partitions=1), "g-faults"
    people = 20  # more than the 429s: some people's calls are refused by none of them
    events = [event("user.updated", u, 0) for u in range(people)]
    events += [event("user.acted", u, s) for s in range(1, 6) for u in range(people)]
    sandbox.set_fault("track", status=503, count=15)
    # Twelve 429s in a run: from the tenth on they are half of the last 20 answers, so the key
    # (not one request) is refused and every call waits.
    sandbox.set_fault("track", status=429, retry_after=2, count=12)
    produce(kafka_bootstrap, topic, events)
    path = bridge_config(
        topic,
        group,
        dlq=dlq,
        meisa={"retry_base_seconds": 0.05, "retry_cap_seconds": 0.5},
    )
    with bridge_in_process(path):
        wait_for(reached_end(kafka_bootstrap, group, topic, 2), 90, "every offset committed")
    expected = {f"user{u}@example.com": [1, 2, 3, 4, 5] for u in range(people)}
    assert {k: sorted(set(v)) for k, v in _seqs_by_user(sandbox).items()} == expected
    assert read_all(kafka_bootstrap, dlq, expect=0, timeout=2) == []
    log = sandbox.requests(path="/api/v1/")
    times = [(datetime.fromisoformat(r["time"].replace("Z", "+00:00")), r["status"]) for r in log]
    first_429 = next(t for t, status in times if status == 429)
    last_429 = max(t for t, status in times if status == 429)
    after = [t for t, _ in times if t > last_429]
    assert after, "delivery resumed after the 429s"
    # Retry-After: 2 paused every call: past the 429s, what reached Meisa within 2 s of the first
    # one can only be calls that held their token before the pause (one per person at most, and
    # a loaded machine may get them onto the wire late). Without the pause the whole backlog
    # (over a hundred calls, about a second's work) would land in that window.
    early = [t for t in after if (t - first_429).total_seconds() < 1.9]
    assert len(early) <= people, f"{len(early)} calls went out during the 2 s pause"
    assert len(after) - len(early) >= len(after) // 2, "most calls waited out the pause"


def test_401_mid_stream_halts_without_dlq_or_passing_unprocessed_events(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic, dlq, group = make_topic(partitions=1), make_topic(partitions=1), "g-401"
    events = [event("user.updated", u, 0) for u in range(20)]
    first_track = len(events)
    events += [event("user.acted", u, 1) for u in range(20)]
    events += [event("user.updated", u, 2) for u in range(20)]
    sandbox.set_fault("track", status=401)
    produce(kafka_bootstrap, topic, events)
    path = bridge_config(topic, group, dlq=dlq)
    with bridge_in_process(path) as bridge:
        assert bridge.join(60) == ExitCode.HALTED, "the bridge halts (exit code HALTED)"
    assert read_all(kafka_bootstrap, dlq, expect=0, timeout=2) == []
    offset = committed(kafka_bootstrap, group, topic, 1)[0]
    assert 0 <= offset <= first_track  # the finished upserts before it were committed
    assert sandbox.events() == []
