"""Upsert matching and merge rules, tags, statuses and the unsubscribed list."""

from __future__ import annotations

import httpx
import pytest

from bridge.sandbox.testing import SandboxHandle

pytestmark = pytest.mark.integration


def test_upsert_matches_external_id_first_and_rekeys_email(
    api: httpx.Client, sandbox: SandboxHandle
) -> None:
    first = api.post("/contacts/upsert/", json={"email": "old@example.com", "external_id": "u1"})
    moved = api.post("/contacts/upsert/", json={"email": "new@example.com", "external_id": "u1"})
    assert moved.json()["id"] == first.json()["id"]
    assert moved.json()["email"] == "new@example.com"
    assert [c["email"] for c in sandbox.contacts()] == ["new@example.com"]


def test_upsert_falls_back_to_email_and_sets_external_id(
    api: httpx.Client, sandbox: SandboxHandle
) -> None:
    first = api.post("/contacts/upsert/", json={"email": "Sarah@Example.com"}).json()
    second = api.post("/contacts/upsert/", json={"email": "sarah@example.com", "external_id": "u9"})
    assert second.json()["id"] == first["id"]
    assert second.json()["external_id"] == "u9"
    assert first["email"] == "sarah@example.com"  # emails are stored lower-cased
    assert len(sandbox.contacts()) == 1


def test_rekey_onto_another_contacts_email_is_400(api: httpx.Client) -> None:
    api.post("/contacts/upsert/", json={"email": "a@example.com", "external_id": "ua"})
    api.post("/contacts/upsert/", json={"email": "b@example.com", "external_id": "ub"})
    resp = api.post("/contacts/upsert/", json={"email": "b@example.com", "external_id": "ua"})
    assert resp.status_code == 400
    assert resp.json()["field"] == "email"


def test_source_is_kept_from_creation(api: httpx.Client) -> None:
    api.post("/contacts/upsert/", json={"email": "a@example.com", "source": "signup"})
    again = api.post("/contacts/upsert/", json={"email": "a@example.com", "source": "import"})
    assert again.json()["source"] == "signup"
    fresh = api.post("/contacts/upsert/", json={"email": "b@example.com"})
    assert fresh.json()["source"] == "api"


def test_custom_fields_merge_shallowly(api: httpx.Client) -> None:
    api.post(
        "/contacts/upsert/",
        json={
            "email": "a@example.com",
            "custom_fields": {"plan": "free", "prefs": {"x": 1}, "n": 1},
        },
    )
    resp = api.post(
        "/contacts/upsert/",
        json={"email": "a@example.com", "custom_fields": {"plan": "pro", "prefs": {"y": 2}}},
    )
    assert resp.json()["custom_fields"] == {"plan": "pro", "prefs": {"y": 2}, "n": 1}


def test_tag_names_only_add_and_create_missing_tags(api: httpx.Client) -> None:
    api.post("/contacts/upsert/", json={"email": "a@example.com", "tag_names": ["vip", "beta"]})
    resp = api.post(
        "/contacts/upsert/", json={"email": "a@example.com", "tag_names": ["VIP", "new"]}
    )
    assert [t["name"] for t in resp.json()["tags"]] == ["vip", "beta", "new"]
    assert resp.json()["tags"][2]["slug"] == "new"


def test_update_without_names_keeps_them(api: httpx.Client) -> None:
    api.post(
        "/contacts/upsert/",
        json={"email": "a@example.com", "first_name": "Ann", "last_name": "Lee"},
    )
    resp = api.post("/contacts/upsert/", json={"email": "a@example.com", "display_name": "Annie"})
    body = resp.json()
    assert (body["first_name"], body["last_name"], body["full_name"]) == ("Ann", "Lee", "Ann Lee")
    assert body["display_name"] == "Annie"
    assert body["created_at"] <= body["updated_at"]


def test_status_changes_drive_the_unsubscribed_list(
    api: httpx.Client, sandbox: SandboxHandle
) -> None:
    api.post("/contacts/upsert/", json={"email": "a@example.com"})
    sandbox.set_status("a@example.com", "complained")
    assert api.get("/contacts/api/unsubscribed-emails/").json()["emails"] == ["a@example.com"]
    sandbox.set_status("a@example.com", "active")
    assert api.get("/contacts/api/unsubscribed-emails/").json() | {"as_of": ""} == {
        "as_of": "",
        "count": 0,
        "emails": [],
    }


def test_upsert_does_not_resubscribe(api: httpx.Client, sandbox: SandboxHandle) -> None:
    sandbox.set_status("a@example.com", "unsubscribed")
    resp = api.post("/contacts/upsert/", json={"email": "a@example.com", "first_name": "A"})
    assert resp.json()["status"] == "unsubscribed"


def test_track_by_external_id(api: httpx.Client, sandbox: SandboxHandle) -> None:
    api.post("/contacts/upsert/", json={"email": "a@example.com", "external_id": "u1"})
    resp = api.post("/events/track/", json={"external_id": "u1", "event_name": "login"})
    assert resp.status_code == 200
    assert [e["email"] for e in sandbox.events(event_name="login")] == ["a@example.com"]


def test_remove_tag_that_is_absent_is_unchanged(api: httpx.Client) -> None:
    contact = api.post("/contacts/upsert/", json={"email": "a@example.com", "tag_names": ["x"]})
    cid = contact.json()["id"]
    resp = api.post(f"/contacts/{cid}/remove_tag/", json={"tag_name": "never-seen"})
    assert resp.status_code == 200
    assert resp.json()["status"] == "unchanged"
    assert [t["name"] for t in resp.json()["tags"]] == ["x"]


def test_requests_log_keeps_key_name_not_key(api: httpx.Client, sandbox: SandboxHandle) -> None:
    api.post("/contacts/upsert/", json={"email": "a@example.com"})
    api.get("/ping/")
    [logged] = sandbox.requests(path="/api/v1/contacts/")
    assert logged["method"] == "POST"
    assert logged["status"] == 200
    assert logged["key_name"] == "sandbox-demo"
    assert logged["body"] == {"email": "a@example.com"}
    assert logged["time"].endswith("Z")
    raw = httpx.get(f"{sandbox.url}/_sandbox/requests").text
    assert sandbox.api_key not in raw
    assert len(sandbox.requests()) == 2


def test_requests_log_records_query_and_filters(api: httpx.Client, sandbox: SandboxHandle) -> None:
    api.get("/sequences/api/list/", params={"status": "all"})
    api.get("/ping/", headers={"X-API-Key": "meisa_test_wrong_0000000000000000000000000"})
    [logged] = sandbox.requests(path="/api/v1/sequences/")
    assert (logged["query"], logged["status"], logged["body"]) == ("status=all", 200, None)
    assert [r["path"] for r in sandbox.requests(status=401)] == ["/api/v1/ping/"]
