"""Fewer calls on the real broker and the sandbox: enrolments in bulk, add_tags folded into upserts.

Each person signs up (an upsert, then an add_tag) and is enrolled in a sequence; the bridge should
make one upsert per person (carrying the tag) and one bulk-enroll for the lot, and every message
should end as its own call would have: enrolled, or done for an address already enrolled or
unsubscribed.
"""

from __future__ import annotations

from typing import Any

import pytest
from bridge_harness import (
    ConfigFactory,
    bridge_in_process,
    event,
    produce,
    reached_end,
    read_all,
    wait_for,
)

from bridge.sandbox.testing import SandboxHandle

pytestmark = pytest.mark.integration

API = "/api/v1"
RULES: list[dict[str, Any]] = [
    {
        "name": "signup",
        "on": "user.signed_up",
        "do": [
            {"upsert": {"email": "{{ data.email }}", "external_id": "{{ data.user_id }}"}},
            {"add_tag": {"external_id": "{{ data.user_id }}", "tag_name": "new-user"}},
        ],
    },
    {
        "name": "onboard",
        "on": "user.onboard",
        "do": [{"enroll": {"email": "{{ data.email }}", "sequence_slug": "onboarding"}}],
    },
    {
        "name": "act",
        "on": "user.acted",
        "do": [{"track": {"email": "{{ data.email }}", "event_name": "acted"}}],
    },
]


def _paths(sandbox: SandboxHandle) -> list[str]:
    return [r["path"].removeprefix(API) for r in sandbox.requests(path=API, limit=100_000)]


@pytest.mark.timeout(120)
def test_enrolments_go_in_bulk_and_add_tags_ride_on_the_upsert(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    people = 40
    topic, dlq, group = make_topic(partitions=2), make_topic(partitions=1), "g-bulk"
    events = [event("user.signed_up", u, 0) for u in range(people)]
    events += [event("user.onboard", u, 1) for u in range(people)]
    produce(kafka_bootstrap, topic, events)
    path = bridge_config(topic, group, dlq=dlq, extra={"rules": RULES})
    with bridge_in_process(path) as bridge:
        wait_for(reached_end(kafka_bootstrap, group, topic, 2), 90, "all offsets committed")
    assert bridge.exit_code == 0
    paths = _paths(sandbox)
    assert paths.count("/contacts/upsert/") == people  # the tag rode on each upsert
    assert not [p for p in paths if p.endswith("/add_tag/")]
    assert "/sequences/enroll/" not in paths
    assert 1 <= paths.count("/sequences/api/bulk-enroll/") <= 4  # one per partition's window
    for u in range(people):
        contact = sandbox.contact(f"user{u}@example.com")
        assert contact is not None
        assert [t["name"] for t in contact["tags"]] == ["new-user"]
    enrolled = {e["contact_email"] for e in sandbox.enrollments(sequence_slug="onboarding")}
    assert enrolled == {f"user{u}@example.com" for u in range(people)}
    assert read_all(kafka_bootstrap, dlq, expect=0, timeout=2) == []


@pytest.mark.timeout(120)
def test_already_enrolled_and_unsubscribed_addresses_are_done_not_poison(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic, dlq, group = make_topic(partitions=1), make_topic(partitions=1), "g-bulk-skip"
    produce(kafka_bootstrap, topic, [event("user.onboard", 0, 0)])  # alone: a plain enrol
    path = bridge_config(topic, group, dlq=dlq, extra={"rules": RULES})
    with bridge_in_process(path):
        wait_for(reached_end(kafka_bootstrap, group, topic, 1), 60, "the first enrolment")
    assert [r["status"] for r in sandbox.requests(path=f"{API}/sequences/enroll/")] == [201]
    sandbox.set_status("user1@example.com", "unsubscribed")
    produce(kafka_bootstrap, topic, [event("user.onboard", u, 1) for u in range(4)])
    with bridge_in_process(path) as bridge:
        wait_for(reached_end(kafka_bootstrap, group, topic, 1), 60, "all offsets committed")
    assert bridge.exit_code == 0
    bulks = sandbox.requests(path=f"{API}/sequences/api/bulk-enroll/")
    assert len(bulks) == 1
    assert sorted(bulks[0]["body"]["emails"]) == [f"user{u}@example.com" for u in range(4)]
    enrolled = {e["contact_email"] for e in sandbox.enrollments(sequence_slug="onboarding")}
    assert enrolled == {"user0@example.com", "user2@example.com", "user3@example.com"}
    assert read_all(kafka_bootstrap, dlq, expect=0, timeout=2) == []


@pytest.mark.timeout(120)
def test_a_person_s_later_call_does_not_wait_out_the_window_and_follows_the_enrolment(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic, group = make_topic(partitions=1), "g-bulk-order"
    events = [event("user.onboard", u, 0) for u in range(3)] + [event("user.acted", 1, 1)]
    produce(kafka_bootstrap, topic, events)
    path = bridge_config(
        topic, group, pipeline={"enroll_batch_seconds": 60.0}, extra={"rules": RULES}
    )
    with bridge_in_process(path) as bridge:
        wait_for(reached_end(kafka_bootstrap, group, topic, 1), 30, "committed within 30 s")
    assert bridge.exit_code == 0
    paths = [p for p in _paths(sandbox) if p != "/ping/"]
    assert paths == ["/sequences/api/bulk-enroll/", "/events/track/"]
