"""Every curl example of the spec, sent to the sandbox with a valid key, gets the spec's answer."""

from __future__ import annotations

import httpx
import pytest

from bridge.sandbox.testing import SandboxHandle

pytestmark = pytest.mark.integration

CONTACT_FIELDS = {
    "id",
    "email",
    "first_name",
    "last_name",
    "full_name",
    "display_name",
    "external_id",
    "source",
    "status",
    "custom_fields",
    "tags",
    "preferences",
    "total_emails_sent",
    "total_emails_opened",
    "open_rate",
    "last_email_sent_at",
    "last_activity_at",
    "created_at",
    "updated_at",
}
UPSERT_EXAMPLE = {
    "email": "user@example.com",
    "external_id": "usr_12345",
    "first_name": "Sarah",
    "custom_fields": {
        "plan": "pro",
        "billing_cycle": "annual",
        "signin_count": 27,
        "signup_date": "2026-01-12T08:30:00Z",
    },
    "tag_names": ["paying-customer"],
}
TRIGGER_EXAMPLE = {
    "trigger_key": "verification_code",
    "to_email": "user@example.com",
    "variables": {"name": "Sarah", "code": "294817"},
    "recipient": {"first_name": "Sarah"},
    "idempotency_key": "verify_usr_12345_294817",
}


def test_ping_describes_the_key_and_product(api: httpx.Client, sandbox: SandboxHandle) -> None:
    resp = api.get("/ping/")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    key = body["api_key"]
    assert key["name"] == "sandbox-demo"
    assert key["environment"] == "test"
    assert key["rate_limit_per_minute"] == 60
    assert key["rate_limit_per_hour"] == 1000
    assert set(key["scopes"]) >= {"contacts:write", "emails:trigger", "sequences:enroll"}
    assert set(body["product"]) >= {"id", "name"}
    assert sandbox.api_key not in resp.text


def test_upsert_example_returns_the_full_contact(api: httpx.Client) -> None:
    resp = api.post("/contacts/upsert/", json=UPSERT_EXAMPLE)
    assert resp.status_code == 200
    contact = resp.json()
    assert set(contact) >= CONTACT_FIELDS
    assert contact["email"] == "user@example.com"
    assert contact["external_id"] == "usr_12345"
    assert contact["first_name"] == "Sarah"
    assert contact["full_name"] == "Sarah"
    assert contact["source"] == "api"
    assert contact["status"] == "active"
    assert contact["custom_fields"] == UPSERT_EXAMPLE["custom_fields"]
    assert [t["name"] for t in contact["tags"]] == ["paying-customer"]
    assert set(contact["tags"][0]) == {"id", "name", "slug", "color"}


def test_track_example(api: httpx.Client, sandbox: SandboxHandle) -> None:
    contact = api.post("/contacts/upsert/", json=UPSERT_EXAMPLE).json()
    resp = api.post(
        "/events/track/",
        json={
            "email": "user@example.com",
            "event_name": "feature_activated",
            "properties": {"feature": "export"},
        },
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "tracked"
    assert body["contact_id"] == contact["id"]
    assert body["event_name"] == "feature_activated"
    assert body["timestamp"].endswith("Z")
    [event] = sandbox.events(email="user@example.com")
    assert event["properties"] == {"feature": "export"}


def test_add_and_remove_tag_examples(api: httpx.Client) -> None:
    contact = api.post("/contacts/upsert/", json={"email": "user@example.com"}).json()
    added = api.post(f"/contacts/{contact['id']}/add_tag/", json={"tag_name": "churned"})
    assert added.status_code == 200
    assert [t["name"] for t in added.json()["tags"]] == ["churned"]
    tag_id = added.json()["tag"]["id"]
    removed = api.post(f"/contacts/{contact['id']}/remove_tag/", json={"tag_id": tag_id})
    assert removed.status_code == 200
    assert removed.json()["tags"] == []
    again = api.post(f"/contacts/{contact['id']}/add_tag/", json={"tag_id": tag_id})
    assert [t["id"] for t in again.json()["tags"]] == [tag_id]


def test_unsubscribed_emails_example(api: httpx.Client, sandbox: SandboxHandle) -> None:
    for email in ("a@example.com", "b@example.com", "c@example.com", "ok@example.com"):
        api.post("/contacts/upsert/", json={"email": email})
    sandbox.set_status("a@example.com", "unsubscribed")
    sandbox.set_status("b@example.com", "bounced")
    sandbox.set_status("c@example.com", "complained")
    resp = api.get("/contacts/api/unsubscribed-emails/")
    assert resp.status_code == 200
    body = resp.json()
    assert body["count"] == 3
    assert sorted(body["emails"]) == ["a@example.com", "b@example.com", "c@example.com"]
    assert body["as_of"].endswith("Z")


def test_trigger_example_sends(api: httpx.Client, sandbox: SandboxHandle) -> None:
    resp = api.post("/emails/trigger/", json=TRIGGER_EXAMPLE)
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "sent"
    assert set(body) >= {
        "email_send_id",
        "contact_id",
        "contact_created",
        "trigger_key",
        "timestamp",
    }
    assert body["contact_created"] is True
    assert body["trigger_key"] == "verification_code"
    [send] = sandbox.sends()
    assert send["email_send_id"] == body["email_send_id"]
    assert send["variables"] == {"name": "Sarah", "code": "294817"}
    assert send["idempotency_key"] == "verify_usr_12345_294817"
    contact = sandbox.contact("user@example.com")
    assert contact is not None
    assert contact["first_name"] == "Sarah"
    assert contact["total_emails_sent"] == 1


def test_enroll_example(api: httpx.Client) -> None:
    resp = api.post(
        "/sequences/enroll/",
        json={"email": "new@example.com", "sequence_slug": "welcome-pro", "metadata": {"a": 1}},
    )
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) >= {
        "id",
        "contact_email",
        "sequence_slug",
        "status",
        "enrolled_at",
        "next_step_at",
    }
    assert body["contact_email"] == "new@example.com"
    assert body["sequence_slug"] == "welcome-pro"
    assert body["status"] == "active"


def test_bulk_enroll_example(api: httpx.Client) -> None:
    resp = api.post(
        "/sequences/api/bulk-enroll/",
        json={"sequence_slug": "win-back", "emails": ["a@example.com", "b@example.com"]},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["enrolled"] == 2
    assert body["skipped"] == 0


def test_sequence_list_example(api: httpx.Client) -> None:
    resp = api.get("/sequences/api/list/")
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert {r["slug"] for r in results} == {"welcome-pro", "win-back", "onboarding"}
    assert all(set(r) == {"id", "slug", "name", "status", "total_enrolled"} for r in results)
    assert all(r["status"] == "active" for r in results)


def test_contact_enrollments_example(api: httpx.Client) -> None:
    api.post(
        "/sequences/enroll/", json={"email": "user@example.com", "sequence_slug": "onboarding"}
    )
    resp = api.get("/sequences/api/contact-enrollments/", params={"email": "user@example.com"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["email"] == "user@example.com"
    assert body["contact_exists"] is True
    [enrollment] = body["enrollments"]
    assert enrollment["sequence_slug"] == "onboarding"
    assert enrollment["status"] == "active"
    assert enrollment["emails_sent"] == 0
    assert enrollment["enrolled_at"].endswith("Z")
