"""Finished offsets past a held message travel with the commit (its metadata): a bridge that takes
a partition over after its owner died or stopped does not send those messages again.

The partition's head is a track for a contact nobody has created: Meisa answers 404 and the call
waits for the contact (pipeline.contact_wait_seconds), holding the committed offset back while
200 later tracks of other people finish. The owner is then killed or stopped; the contact is
created only once the next bridge runs."""

from __future__ import annotations

import random
import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from bridge_harness import (
    ConfigFactory,
    bridge_process,
    end_offsets,
    event,
    produce,
    wait_for,
)
from confluent_kafka import Consumer, TopicPartition

from bridge.pipeline.finished import decode
from bridge.sandbox.testing import SandboxHandle

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PEOPLE = 40
LATER = 200  # tracks after the held one
HELD = 999  # the person whose contact does not exist yet


def committed_with_metadata(bootstrap: str, group: str, topic: str) -> tuple[int, str]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = c.committed([TopicPartition(topic, 0)], timeout=10)
        return tp.offset, tp.metadata or ""
    finally:
        c.close()


def history() -> list[dict[str, Any]]:
    rng = random.Random(5)
    events = [event("user.updated", u, 0) for u in range(PEOPLE)]
    events.append(event("user.acted", HELD, 0))
    events += [event("user.acted", rng.randrange(PEOPLE), seq) for seq in range(1, LATER + 1)]
    return events


@pytest.mark.timeout(300)
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_the_next_owner_skips_what_finished_behind_a_held_message(  # noqa: PLR0917 (fixtures)
    stop: signal.Signals,
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    tmp_path: Path,
    bridge_config: ConfigFactory,
) -> None:
    """The owner holds the head, finishes the rest and is stopped by `stop`; the next owner
    finishes the head and sends nothing else."""
    topic = make_topic(partitions=1)
    group = f"g-finished-{uuid.uuid4().hex[:6]}"
    produce(kafka_bootstrap, topic, history())
    held = PEOPLE  # its offset
    path = bridge_config(topic, group, pipeline={"shutdown_grace_seconds": 2})

    def finished_recorded() -> bool:
        offset, metadata = committed_with_metadata(kafka_bootstrap, group, topic)
        return offset == held and decode(held, metadata) == [(held + 1, held + LATER)]

    first = bridge_process(path, tmp_path / "first.log")
    try:
        wait_for(lambda: len(sandbox.events()) == LATER, 120, "the later tracks sent")
        wait_for(finished_recorded, 60, "the later offsets committed as finished")
    finally:
        first.send_signal(stop)
        code = first.wait(60)
    assert stop == signal.SIGKILL or code == 0
    assert finished_recorded(), "the held message was not finished: nothing past it committed"

    produce(kafka_bootstrap, topic, [event("user.updated", HELD, 1)])  # the contact, at last
    ends = end_offsets(kafka_bootstrap, topic, 1)
    second = bridge_process(path, tmp_path / "second.log")
    try:
        wait_for(
            lambda: committed_with_metadata(kafka_bootstrap, group, topic) == (ends[0], ""),
            180,
            "the next owner to finish the partition",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    sent = Counter((e["email"], e["properties"]["seq"]) for e in sandbox.events())
    assert len(sent) == LATER + 1, "every track sent, the held one too"
    assert set(sent.values()) == {1}, "no finished track sent again"
