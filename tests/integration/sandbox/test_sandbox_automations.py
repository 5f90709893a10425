"""Automations from the sandbox config: Meisa reacts to upserts, tags and events."""

from __future__ import annotations

import httpx
import pytest

from bridge.sandbox.testing import SandboxHandle

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
pytestmark = [pytest.mark.integration, pytest.mark.sandbox_config(CONFIG)]


@pytest.fixture
def client(fast_api: httpx.Client) -> httpx.Client:
    return fast_api


def _tags(contact: dict[str, object]) -> list[str]:
    return [t["name"] for t in contact["tags"]]  # type: ignore[attr-defined]


def test_contact_created_tags_and_enrolls(client: httpx.Client, sandbox: SandboxHandle) -> None:
    contact = client.post("/contacts/upsert/", json={"email": "a@example.com"}).json()
    assert _tags(contact) == ["new"]
    [enrollment] = sandbox.enrollments(email="a@example.com")
    assert (enrollment["sequence_slug"], enrollment["trigger_source"]) == (
        "onboarding",
        "automation",
    )


def test_field_change_condition(client: httpx.Client, sandbox: SandboxHandle) -> None:
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
    slugs = {e["sequence_slug"] for e in sandbox.enrollments(email="a@example.com")}
    assert slugs == {"onboarding", "welcome-pro"}
    assert [r["automation"] for r in sandbox.automation_runs()] == ["welcome", "upgrade"]


def test_tag_added_sets_a_custom_field(client: httpx.Client) -> None:
    contact = client.post(
        "/contacts/upsert/", json={"email": "a@example.com", "tag_names": ["vip"]}
    )
    assert contact.json()["custom_fields"] == {"tier": "gold"}


def test_custom_event_adds_a_tag(client: httpx.Client, sandbox: SandboxHandle) -> None:
    client.post("/contacts/upsert/", json={"email": "a@example.com"})
    client.post("/events/track/", json={"email": "a@example.com", "event_name": "other"})
    contact = sandbox.contact("a@example.com")
    assert contact is not None
    assert _tags(contact) == ["new"]
    client.post(
        "/events/track/", json={"email": "a@example.com", "event_name": "feature_activated"}
    )
    contact = sandbox.contact("a@example.com")
    assert contact is not None
    assert _tags(contact) == ["new", "activated"]


@pytest.mark.sandbox_config(None)  # the built-in config, not this module's
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
