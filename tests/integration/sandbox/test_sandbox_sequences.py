"""Sequences: enroll, refusal while active or paused, bulk skip rules, list and enrollments."""

from __future__ import annotations

import urllib.error

import httpx
import pytest

from bridge.sandbox.testing import SandboxHandle

pytestmark = pytest.mark.integration


def _enroll(
    api: httpx.Client, email: str, slug: str = "onboarding", **extra: object
) -> httpx.Response:
    return api.post("/sequences/enroll/", json={"email": email, "sequence_slug": slug, **extra})


def test_enroll_auto_creates_and_refuses_a_second_time(
    api: httpx.Client, sandbox: SandboxHandle
) -> None:
    assert _enroll(api, "a@example.com").status_code == 201
    assert sandbox.contact("a@example.com") is not None
    again = _enroll(api, "a@example.com")
    assert again.status_code == 400
    assert again.json()["code"] == "already_enrolled"
    assert _enroll(api, "a@example.com", "win-back").status_code == 201


def test_enroll_unsubscribed_needs_override(api: httpx.Client, sandbox: SandboxHandle) -> None:
    sandbox.set_status("a@example.com", "unsubscribed")
    refused = _enroll(api, "a@example.com")
    assert refused.status_code == 422
    assert refused.json()["reason"] == "unsubscribed"
    assert _enroll(api, "a@example.com", override_unsubscribe=True).status_code == 201


def test_bulk_enroll_skip_rules(api: httpx.Client, sandbox: SandboxHandle) -> None:
    _enroll(api, "old@example.com", "win-back")
    sandbox.set_status("gone@example.com", "bounced")
    emails = ["new@example.com", "old@example.com", "gone@example.com", "NEW@example.com", "bad"]
    body = api.post(
        "/sequences/api/bulk-enroll/", json={"sequence_slug": "win-back", "emails": emails}
    ).json()
    assert body["enrolled_emails"] == ["new@example.com"]
    assert {s["email"]: s["reason"] for s in body["skipped_emails"]} == {
        "old@example.com": "already_enrolled",
        "gone@example.com": "bounced",
        "new@example.com": "duplicate",
        "bad": "invalid_email",
    }
    assert (body["enrolled"], body["skipped"], body["requested"]) == (1, 4, 5)
    override = api.post(
        "/sequences/api/bulk-enroll/",
        json={
            "sequence_slug": "win-back",
            "emails": ["gone@example.com"],
            "override_unsubscribe": True,
        },
    ).json()
    assert override["enrolled"] == 1


def test_bulk_enroll_accepts_exactly_500(fast_api: httpx.Client) -> None:
    emails = [f"u{i}@example.com" for i in range(500)]
    resp = fast_api.post(
        "/sequences/api/bulk-enroll/", json={"sequence_slug": "win-back", "emails": emails}
    )
    assert resp.status_code == 200
    assert resp.json()["enrolled"] == 500


def test_list_filters_by_status_and_search(api: httpx.Client) -> None:
    _enroll(api, "a@example.com", "welcome-pro")
    everything = api.get("/sequences/api/list/", params={"status": "all"}).json()["results"]
    assert {r["slug"]: r["status"] for r in everything} == {
        "welcome-pro": "active",
        "win-back": "active",
        "onboarding": "active",
        "product-tips": "paused",
        "holiday-promo": "draft",
    }
    paused = api.get("/sequences/api/list/", params={"status": "paused"}).json()["results"]
    assert [r["slug"] for r in paused] == ["product-tips"]
    found = api.get("/sequences/api/list/", params={"search": "WELCOME"}).json()["results"]
    assert [(r["slug"], r["total_enrolled"]) for r in found] == [("welcome-pro", 1)]


def test_contact_enrollments_for_unknown_contact(api: httpx.Client) -> None:
    body = api.get("/sequences/api/contact-enrollments/", params={"email": "no@example.com"}).json()
    assert body == {"email": "no@example.com", "contact_exists": False, "enrollments": []}


def test_enrollments_are_inspectable(api: httpx.Client, sandbox: SandboxHandle) -> None:
    _enroll(api, "a@example.com", trigger_source="signup", metadata={"plan": "pro"})
    [row] = sandbox.enrollments(email="a@example.com")
    assert (row["sequence_slug"], row["trigger_source"], row["metadata"]) == (
        "onboarding",
        "signup",
        {"plan": "pro"},
    )


def test_paused_enrollment_refuses_and_a_finished_one_allows_enrolling_again(
    api: httpx.Client, sandbox: SandboxHandle
) -> None:
    assert _enroll(api, "a@example.com").status_code == 201
    paused = sandbox.set_enrollment_status("a@example.com", "onboarding", "paused")
    assert paused["status"] == "paused"
    refused = _enroll(api, "a@example.com")
    assert refused.status_code == 400
    assert refused.json()["code"] == "already_enrolled"
    assert "paused" in refused.json()["error"]
    bulk = api.post(
        "/sequences/api/bulk-enroll/",
        json={"sequence_slug": "onboarding", "emails": ["a@example.com"]},
    )
    assert bulk.json()["skipped_emails"] == [
        {"email": "a@example.com", "reason": "already_enrolled"}
    ]
    sandbox.set_enrollment_status("a@example.com", "onboarding", "completed")
    assert _enroll(api, "a@example.com").status_code == 201
    statuses = [e["status"] for e in sandbox.enrollments(email="a@example.com")]
    assert statuses == ["completed", "active"]


@pytest.mark.parametrize(
    ("email", "status", "code"),
    [("nobody@example.com", "paused", 404), ("a@example.com", "sleeping", 400)],
)
def test_enrollment_status_control_validates(
    sandbox: SandboxHandle, email: str, status: str, code: int
) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        sandbox.set_enrollment_status(email, "onboarding", status)
    with info.value:  # closes the response it holds
        assert info.value.code == code


def test_contact_enrollments_takes_a_plus_address_written_unencoded(api: httpx.Client) -> None:
    assert _enroll(api, "user+tag@example.com").status_code == 201
    for query in ("email=user+tag@example.com", "email=user%2Btag%40example.com"):
        resp = api.get(f"/sequences/api/contact-enrollments/?{query}")
        assert resp.status_code == 200, resp.text
        assert resp.json()["email"] == "user+tag@example.com"
        assert resp.json()["contact_exists"] is True
