"""Automations from the sandbox config: Meisa reacts to upserts, tags and events."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bridge.sandbox.testing import SandboxHandle, run_sandbox

pytestmark = pytest.mark.integration

CONFIG = {
    "automations": [
        {
            "name": "welcome",
            "when": {"type": "contact_created"},
            "actions": [{"add_tag": "new"}, {"enroll": "onboarding"}],
        },
        {
            "name": "vip-tag",
            "when": {"type": "tag_added", "tag": "vip"},
            "actions": [{"set_field": {"field": "custom_fields.tier", "value": "gold"}}],
        },
        {
            "name": "upgrade",
            "when": {"type": "contact_updated", "field": "custom_fields.plan", "to": "pro"},
            "actions": [{"remove_tag": "new"}, {"enroll": "welcome-pro"}],
        },
        {
            "name": "feature",
            "when": {"type": "custom_event", "event": "feature_activated"},
            "actions": [{"add_tag": "activated"}],
        },
    ]
}


@pytest.fixture(scope="module")
def reacting() -> Iterator[SandboxHandle]:
    with run_sandbox(CONFIG) as handle:
        yield handle


@pytest.fixture
def client(reacting: SandboxHandle) -> Iterator[httpx.Client]:
    reacting.reset()
    headers = {"X-API-Key": reacting.unlimited_key}
    with httpx.Client(base_url=reacting.base_url, headers=headers) as c:
        yield c


def _tags(contact: dict[str, object]) -> list[str]:
    return [t["name"] for t in contact["tags"]]  # type: ignore[attr-defined]


def test_contact_created_tags_and_enrolls(client: httpx.Client, reacting: SandboxHandle) -> None:
    contact = client.post("/contacts/upsert/", json={"email": "a@example.com"}).json()
    assert _tags(contact) == ["new"]
    [enrollment] = reacting.enrollments(email="a@example.com")
    assert (enrollment["sequence_slug"], enrollment["trigger_source"]) == (
        "onboarding",
        "automation",
    )


def test_field_change_condition(client: httpx.Client, reacting: SandboxHandle) -> None:
    client.post(
        "/contacts/upsert/", json={"email": "a@example.com", "custom_fields": {"plan": "free"}}
    )
    same = client.post(
        "/contacts/upsert/", json={"email": "a@example.com", "custom_fields": {"plan": "free"}}
    )
    assert _tags(same.json()) == ["new"]
    up = client.post(
        "/contacts/upsert/", json={"email": "a@example.com", "custom_fields": {"plan": "pro"}}
    )
    assert _tags(up.json()) == []
    slugs = {e["sequence_slug"] for e in reacting.enrollments(email="a@example.com")}
    assert slugs == {"onboarding", "welcome-pro"}
    assert [r["automation"] for r in reacting.automation_runs()] == ["welcome", "upgrade"]


def test_tag_added_sets_a_custom_field(client: httpx.Client) -> None:
    contact = client.post(
        "/contacts/upsert/", json={"email": "a@example.com", "tag_names": ["vip"]}
    )
    assert contact.json()["custom_fields"] == {"tier": "gold"}


def test_custom_event_adds_a_tag(client: httpx.Client, reacting: SandboxHandle) -> None:
    client.post("/contacts/upsert/", json={"email": "a@example.com"})
    client.post("/events/track/", json={"email": "a@example.com", "event_name": "other"})
    contact = reacting.contact("a@example.com")
    assert contact is not None
    assert _tags(contact) == ["new"]
    client.post(
        "/events/track/", json={"email": "a@example.com", "event_name": "feature_activated"}
    )
    contact = reacting.contact("a@example.com")
    assert contact is not None
    assert _tags(contact) == ["new", "activated"]


def test_default_config_reacts_to_free_to_paid(api: httpx.Client, sandbox: SandboxHandle) -> None:
    api.post(
        "/contacts/upsert/",
        json={
            "email": "a@example.com",
            "custom_fields": {"plan": "free"},
            "tag_names": ["free-plan"],
        },
    )
    paid = api.post(
        "/contacts/upsert/", json={"email": "a@example.com", "custom_fields": {"plan": "pro"}}
    )
    assert _tags(paid.json()) == ["paying-customer"]
    assert [e["sequence_slug"] for e in sandbox.enrollments(email="a@example.com")] == [
        "welcome-pro"
    ]
