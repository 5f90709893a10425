"""Triggered email: idempotency, scheduling, conditions and recipient handling."""

from __future__ import annotations

import httpx
import pytest

from bridge.sandbox.testing import SandboxHandle

pytestmark = pytest.mark.integration


def _trigger(api: httpx.Client, **body: object) -> httpx.Response:
    return api.post("/emails/trigger/", json={"to_email": "user@example.com", **body})


def test_idempotency_key_returns_the_original_send(
    api: httpx.Client, sandbox: SandboxHandle
) -> None:
    first = _trigger(api, trigger_key="verification_code", idempotency_key="k1")
    second = _trigger(api, trigger_key="verification_code", idempotency_key="k1")
    assert second.status_code == first.status_code == 200
    assert second.json() == first.json()
    [send] = sandbox.sends()
    assert send["duplicates"] == 1
    assert send["idempotency_key"] == "k1"
    contact = sandbox.contact("user@example.com")
    assert contact is not None
    assert contact["total_emails_sent"] == 1


def test_idempotency_expires_after_an_hour(api: httpx.Client, sandbox: SandboxHandle) -> None:
    first = _trigger(api, trigger_key="receipt", idempotency_key="k2").json()
    sandbox.advance_clock(3601)
    again = _trigger(api, trigger_key="receipt", idempotency_key="k2").json()
    assert again["email_send_id"] != first["email_send_id"]
    assert len(sandbox.sends()) == 2


def test_without_idempotency_key_each_call_sends(api: httpx.Client, sandbox: SandboxHandle) -> None:
    _trigger(api, trigger_key="receipt")
    _trigger(api, trigger_key="receipt")
    assert [s["status"] for s in sandbox.sends()] == ["sent", "sent"]


def test_delayed_trigger_is_202_scheduled(api: httpx.Client, sandbox: SandboxHandle) -> None:
    resp = _trigger(api, trigger_key="payment_failure", idempotency_key="pf1")
    assert resp.status_code == 202
    body = resp.json()
    assert body["status"] == "scheduled"
    assert body["scheduled_for"] > body["timestamp"]
    [send] = sandbox.sends(status="scheduled")
    assert send["email_send_id"] == body["email_send_id"]
    replay = _trigger(api, trigger_key="payment_failure", idempotency_key="pf1")
    assert (replay.status_code, replay.json()) == (202, body)


def test_unmet_conditions_are_200_skipped(api: httpx.Client, sandbox: SandboxHandle) -> None:
    api.post(
        "/contacts/upsert/", json={"email": "user@example.com", "custom_fields": {"plan": "free"}}
    )
    resp = _trigger(api, trigger_key="pro_tips")
    assert resp.status_code == 200
    assert resp.json()["status"] == "skipped"
    assert resp.json()["reason"] == "conditions_not_met"
    api.post(
        "/contacts/upsert/", json={"email": "user@example.com", "custom_fields": {"plan": "pro"}}
    )
    assert _trigger(api, trigger_key="pro_tips").json()["status"] == "sent"
    assert [s["status"] for s in sandbox.sends()] == ["skipped", "sent"]


def test_recipient_creates_then_only_enriches(api: httpx.Client, sandbox: SandboxHandle) -> None:
    created = _trigger(
        api,
        trigger_key="receipt",
        recipient={"first_name": "Sarah", "custom_fields": {"plan": "pro"}},
    ).json()
    assert created["contact_created"] is True
    again = _trigger(
        api, trigger_key="receipt", recipient={"first_name": "Sally", "last_name": "Lee"}
    )
    assert again.json()["contact_created"] is False
    assert again.json()["contact_id"] == created["contact_id"]
    contact = sandbox.contact("user@example.com")
    assert contact is not None
    assert (contact["first_name"], contact["last_name"]) == ("Sarah", "Lee")
    assert contact["custom_fields"] == {"plan": "pro"}


def test_unsubscribed_check_follows_status(api: httpx.Client, sandbox: SandboxHandle) -> None:
    sandbox.set_status("user@example.com", "unsubscribed")
    assert _trigger(api, trigger_key="receipt").status_code == 422
    sandbox.set_status("user@example.com", "active")
    assert _trigger(api, trigger_key="receipt").status_code == 200
