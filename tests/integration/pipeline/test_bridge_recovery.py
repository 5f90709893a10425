"""Crash and rebalance scenarios: SIGKILL and restart, two bridges sharing a group."""

from __future__ import annotations

import random
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from bridge_harness import (
    ConfigFactory,
    InProcessBridge,
    bridge_process,
    committed,
    end_offsets,
    event,
    produce,
    wait_for,
)

from bridge.sandbox.testing import SandboxHandle

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _stream(
    users: int, n: int, seed: int
) -> tuple[list[dict[str, Any]], set[tuple[str, int]], int]:
    rng = random.Random(seed)
    events = [event("user.updated", u, 0) for u in range(users)]
    tracks: set[tuple[str, int]] = set()
    otps = 0
    for seq in range(1, n):
        u = rng.randrange(users)
        kind = rng.choice(["user.acted", "user.acted", "auth.otp"])
        events.append(event(kind, u, seq, code=f"{seq:06d}"))
        if kind == "user.acted":
            tracks.add((f"user{u}@example.com", seq))
        else:
            otps += 1
    return events, tracks, otps


@pytest.mark.timeout(300)
def test_sigkill_and_restart_loses_nothing_and_sends_no_email_twice(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    tmp_path: Path,
    bridge_config: ConfigFactory,
) -> None:
    topic, group = make_topic(partitions=2), "g-kill"
    events, tracks, otps = _stream(users=100, n=2500, seed=11)
    produce(kafka_bootstrap, topic, events)
    ends = end_offsets(kafka_bootstrap, topic, 2)
    sandbox.set_fault("*", latency_ms=15)  # slow enough to kill it mid-stream
    path = bridge_config(topic, group, pipeline={"max_in_flight": 8})
    first = bridge_process(path, tmp_path / "bridge1.log")
    try:
        wait_for(lambda: len(sandbox.events()) >= 400, 60, "the bridge to be mid-stream")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    at_kill = committed(kafka_bootstrap, group, topic, 2)
    assert at_kill != ends, "killed mid-stream"
    second = bridge_process(path, tmp_path / "bridge2.log")
    try:
        wait_for(lambda: committed(kafka_bootstrap, group, topic, 2) == ends, 180, "catch-up")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    seen = Counter(
        (
            e["email"],
            e["properties"]["seq"],
            e["properties"]["partition"],
            e["properties"]["offset"],
        )
        for e in sandbox.events()
    )
    assert {(email, seq) for email, seq, _, _ in seen} == tracks, "no event lost"
    for (_, _, partition, offset), n in seen.items():
        if n > 1:  # duplicates only among events not committed when the process died
            assert offset >= at_kill[partition]
    keys = Counter(s["idempotency_key"] for s in sandbox.sends())
    assert len(keys) == otps
    assert set(keys.values()) == {1}, "no email sent twice"


@pytest.mark.timeout(300)
def test_two_bridges_in_one_group_one_stopped_mid_stream_loses_nothing(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    tmp_path: Path,
    bridge_config: ConfigFactory,
) -> None:
    topic, group = make_topic(partitions=4), "g-two"
    events, tracks, _ = _stream(users=100, n=2000, seed=12)
    produce(kafka_bootstrap, topic, events)
    ends = end_offsets(kafka_bootstrap, topic, 4)
    sandbox.set_fault("*", latency_ms=10)
    path = bridge_config(topic, group, pipeline={"max_in_flight": 8})
    a, b = InProcessBridge(path).start(), InProcessBridge(path).start()
    try:
        wait_for(lambda: len(sandbox.events()) >= 300, 60, "both bridges mid-stream")
        assert a.stop() == 0
        wait_for(lambda: committed(kafka_bootstrap, group, topic, 4) == ends, 180, "b finishes")
    finally:
        a.stop()
        assert b.stop() == 0
    assert {(e["email"], e["properties"]["seq"]) for e in sandbox.events()} == tracks
