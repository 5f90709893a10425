"""Each error status of the spec (400, 401, 403, 404, 422, 429) is produced, in one JSON shape."""

from __future__ import annotations

import httpx
import pytest

from bridge.sandbox.testing import SandboxHandle, SandboxPool

pytestmark = pytest.mark.integration

READ_ONLY = "meisa_live_readonly_000000000000000000000"
SLOW = "meisa_test_slow_0000000000000000000000000"
LIMITED = {
    "keys": [
        {
            "key": READ_ONLY,
            "name": "read-only",
            "environment": "live",
            "scopes": ["contacts:read", "sequences:read"],
        },
        {
            "key": SLOW,
            "name": "slow",
            "environment": "test",
            "scopes": ["*"],
            "rate_limit_per_minute": 3,
            "rate_limit_per_hour": 5,
        },
    ]
}


@pytest.fixture
def limited(sandboxes: SandboxPool) -> SandboxHandle:
    """A sandbox with a read-only live key and a test key of 3/min, 5/h."""
    return sandboxes.get(LIMITED)


def _client(handle: SandboxHandle, key: str) -> httpx.Client:
    return httpx.Client(base_url=handle.base_url, headers={"X-API-Key": key})


def _assert_error(resp: httpx.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert isinstance(body["error"], str)
    assert body["error"]
    assert isinstance(body["code"], str)
    return dict(body)


def test_missing_key_is_401(sandbox: SandboxHandle) -> None:
    resp = httpx.post(f"{sandbox.base_url}/contacts/upsert/", json={"email": "a@example.com"})
    assert _assert_error(resp, 401)["code"] == "missing_key"
    assert sandbox.contacts() == []


def test_unknown_key_is_401_and_never_logged(sandbox: SandboxHandle) -> None:
    bogus = "meisa_live_not_a_real_key_000000000000000"
    resp = httpx.get(f"{sandbox.base_url}/ping/", headers={"X-API-Key": bogus})
    assert _assert_error(resp, 401)["code"] == "invalid_key"
    assert bogus not in resp.text
    [logged] = sandbox.requests(path="/api/v1/ping/")
    assert logged["status"] == 401
    assert logged["key_name"] is None


def test_missing_scope_is_403_naming_the_scope(limited: SandboxHandle) -> None:
    with _client(limited, READ_ONLY) as client:
        assert client.get("/ping/").status_code == 200  # ping needs no scope
        body = _assert_error(client.post("/contacts/upsert/", json={"email": "a@x.com"}), 403)
        assert body["scope"] == "contacts:write"
        assert "contacts:write" in str(body["error"])
        body = _assert_error(
            client.post("/emails/trigger/", json={"trigger_key": "receipt", "to_email": "a@x.com"}),
            403,
        )
        assert body["scope"] == "emails:trigger"
        assert client.get("/contacts/api/unsubscribed-emails/").status_code == 200


def test_tags_are_authorised_by_contacts_write_not_tags_write(sandboxes: SandboxPool) -> None:
    key = "meisa_test_tagsonly_0000000000000000000000"
    config = {"keys": [{"key": key, "name": "tags-only", "scopes": ["tags:write"]}]}
    with _client(sandboxes.get(config), key) as client:
        body = _assert_error(client.post("/contacts/x/add_tag/", json={"tag_name": "a"}), 403)
        assert body["scope"] == "contacts:write"


def test_rate_limit_is_429_with_retry_after(limited: SandboxHandle) -> None:
    with _client(limited, SLOW) as client:
        assert [client.get("/ping/").status_code for _ in range(3)] == [200, 200, 200]
        resp = client.get("/ping/")
        body = _assert_error(resp, 429)
        retry_after = int(resp.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        assert body["retry_after"] == retry_after
        limited.advance_clock(61)
        assert client.get("/ping/").status_code == 200
        assert client.get("/ping/").status_code == 200  # 5 accepted in the hour now
        resp = client.get("/ping/")
        assert resp.status_code == 429
        assert 3000 < int(resp.headers["Retry-After"]) <= 3600


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "email"),
        ({"email": 42}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@example.com", "source": "website"}, "source"),
        ({"email": "a@example.com", "custom_fields": ["plan"]}, "custom_fields"),
        ({"email": "a@example.com", "tag_names": "vip"}, "tag_names"),
        ({"email": "a@example.com", "first_name": 7}, "first_name"),
        ({"email": "a@example.com", "external_id": 123}, "external_id"),
        ({"email": "a@example.com", "name": "Sarah"}, "name"),
        ({"email": "a@example.com", "status": "unsubscribed"}, "status"),
        ({"email": "a@example.com", "tags": ["vip"]}, "tags"),
        ({"email": "a@example.com", "tag_ids": ["1"]}, "tag_ids"),
    ],
)
def test_upsert_validation_is_400_naming_the_field(
    api: httpx.Client, sandbox: SandboxHandle, body: dict[str, object], field: str
) -> None:
    err = _assert_error(api.post("/contacts/upsert/", json=body), 400)
    assert err["field"] == field
    assert field in str(err["error"])
    assert sandbox.contacts() == []


def test_malformed_json_is_400(api: httpx.Client) -> None:
    resp = api.post(
        "/contacts/upsert/", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert _assert_error(resp, 400)["code"] == "malformed_json"
    assert _assert_error(api.post("/contacts/upsert/", json=[1]), 400)["code"] == "malformed_json"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/events/track/", {"email": "a@example.com"}, "event_name"),
        ("/events/track/", {"event_name": "x"}, "email"),
        (
            "/events/track/",
            {"event_name": "x", "email": "a@example.com", "properties": 1},
            "properties",
        ),
        ("/emails/trigger/", {"to_email": "a@example.com"}, "trigger_key"),
        ("/emails/trigger/", {"trigger_key": "receipt"}, "to_email"),
        ("/emails/trigger/", {"trigger_key": "receipt", "to_email": "nope"}, "to_email"),
        ("/emails/trigger/", {"trigger_key": "nope", "to_email": "a@example.com"}, "trigger_key"),
        (
            "/emails/trigger/",
            {"trigger_key": "legacy_welcome", "to_email": "a@example.com"},
            "trigger_key",
        ),
        (
            "/emails/trigger/",
            {"trigger_key": "receipt", "to_email": "a@example.com", "variables": []},
            "variables",
        ),
        ("/sequences/enroll/", {"sequence_slug": "onboarding"}, "email"),
        ("/sequences/enroll/", {"email": "a@example.com"}, "sequence_slug"),
        (
            "/sequences/enroll/",
            {"email": "a@example.com", "sequence_slug": "nope"},
            "sequence_slug",
        ),
        (
            "/sequences/enroll/",
            {"email": "a@example.com", "sequence_slug": "product-tips"},
            "sequence_slug",
        ),
        (
            "/sequences/enroll/",
            {
                "email": "a@example.com",
                "sequence_slug": "onboarding",
                "override_unsubscribe": "yes",
            },
            "override_unsubscribe",
        ),
        ("/sequences/api/bulk-enroll/", {"sequence_slug": "win-back"}, "emails"),
        (
            "/sequences/api/bulk-enroll/",
            {"sequence_slug": "win-back", "emails": ["a@x.com"] * 501},
            "emails",
        ),
    ],
)
def test_endpoint_validation_is_400(
    api: httpx.Client, path: str, body: dict[str, object], field: str
) -> None:
    assert _assert_error(api.post(path, json=body), 400)["field"] == field


def test_query_validation_is_400(api: httpx.Client) -> None:
    assert _assert_error(api.get("/sequences/api/contact-enrollments/"), 400)["field"] == "email"
    resp = api.get("/sequences/api/list/", params={"status": "bogus"})
    assert _assert_error(resp, 400)["field"] == "status"


def test_track_unknown_contact_is_404(api: httpx.Client, sandbox: SandboxHandle) -> None:
    resp = api.post("/events/track/", json={"email": "ghost@example.com", "event_name": "x"})
    assert _assert_error(resp, 404)["code"] == "contact_not_found"
    resp = api.post("/events/track/", json={"external_id": "usr_ghost", "event_name": "x"})
    assert resp.status_code == 404
    assert sandbox.events() == []


def test_tag_on_unknown_contact_or_tag_id_is_404(api: httpx.Client) -> None:
    # The code says which one is missing: a client retries the contact, never the tag.
    resp = api.post("/contacts/nope/add_tag/", json={"tag_name": "a"})
    assert _assert_error(resp, 404)["code"] == "contact_not_found"
    contact = api.post("/contacts/upsert/", json={"email": "a@example.com"}).json()
    for action in ("add_tag", "remove_tag"):
        resp = api.post(f"/contacts/{contact['id']}/{action}/", json={"tag_id": "missing"})
        body = _assert_error(resp, 404)
        assert (body["code"], body["field"]) == ("tag_not_found", "tag_id")
    resp = api.post(f"/contacts/{contact['id']}/add_tag/", json={})
    assert _assert_error(resp, 400)["field"] == "tag_name"


def test_unsubscribed_recipient_is_422(api: httpx.Client, sandbox: SandboxHandle) -> None:
    sandbox.set_status("gone@example.com", "bounced")
    resp = api.post(
        "/emails/trigger/", json={"trigger_key": "receipt", "to_email": "gone@example.com"}
    )
    body = _assert_error(resp, 422)
    assert body["reason"] == "unsubscribed"
    assert "unsubscribed" in str(body["error"])
    assert body["contact_status"] == "bounced"
    [send] = sandbox.sends()
    assert send["status"] == "unsubscribed"


def test_trigger_without_sender_is_422_no_sender(api: httpx.Client, sandbox: SandboxHandle) -> None:
    resp = api.post(
        "/emails/trigger/", json={"trigger_key": "team_invite", "to_email": "a@example.com"}
    )
    assert _assert_error(resp, 422)["reason"] == "no_sender"
    assert sandbox.sends() == []


def test_unknown_route_is_json_404(api: httpx.Client) -> None:
    assert _assert_error(api.get("/broadcasts/"), 404)
