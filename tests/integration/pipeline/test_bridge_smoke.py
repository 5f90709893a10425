"""The bridge end to end on the real broker and the sandbox over HTTP."""

from __future__ import annotations

import pytest
from bridge_harness import (
    ConfigFactory,
    bridge_in_process,
    committed,
    end_offsets,
    event,
    produce,
    wait_for,
)

from bridge.sandbox.testing import SandboxHandle

pytestmark = pytest.mark.integration


def test_events_become_calls_and_offsets_are_committed(
    kafka_bootstrap: str, make_topic, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic = make_topic(partitions=2)
    group = "g-smoke"
    path = bridge_config(topic, group + topic)
    events = []
    for u in range(5):
        events.append(event("user.updated", u, 0))
        events.append(event("user.acted", u, 1))
        events.append(event("auth.otp", u, 2, code="123456"))
    produce(kafka_bootstrap, topic, events)
    ends = end_offsets(kafka_bootstrap, topic, 2)
    with bridge_in_process(path) as bridge:
        wait_for(
            lambda: committed(kafka_bootstrap, group + topic, topic, 2) == ends,
            60,
            "committed offsets to reach the end",
        )
        assert bridge.running
    assert bridge.exit_code == 0
    assert len(sandbox.contacts()) == 5
    assert len(sandbox.events()) == 5
    assert len(sandbox.sends()) == 5
