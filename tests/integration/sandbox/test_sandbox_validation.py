"""Validation the spec implies beyond field presence: blank strings, nested contact fields."""

from __future__ import annotations

import httpx
import pytest

from bridge.sandbox.testing import SandboxHandle

pytestmark = pytest.mark.integration


def _field_error(resp: httpx.Response) -> str:
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["code"] == "invalid"
    return str(body["field"])


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/events/track/", {"email": "a@example.com", "event_name": "  "}, "event_name"),
        ("/emails/trigger/", {"trigger_key": " ", "to_email": "a@example.com"}, "trigger_key"),
        ("/sequences/enroll/", {"email": "a@example.com", "sequence_slug": "\t"}, "sequence_slug"),
        (
            "/sequences/api/bulk-enroll/",
            {"sequence_slug": " ", "emails": ["a@x.com"]},
            "sequence_slug",
        ),
    ],
)
def test_blank_required_strings_are_400(
    api: httpx.Client, sandbox: SandboxHandle, path: str, body: dict[str, object], field: str
) -> None:
    api.post("/contacts/upsert/", json={"email": "a@example.com"})
    assert _field_error(api.post(path, json=body)) == field
    assert sandbox.events() == []
    assert sandbox.sends() == []


@pytest.mark.parametrize(
    ("recipient", "field"),
    [
        ({"first_name": 5}, "recipient.first_name"),
        ({"last_name": ["x"]}, "recipient.last_name"),
        ({"external_id": 12}, "recipient.external_id"),
        ({"custom_fields": [1, 2]}, "recipient.custom_fields"),
    ],
)
def test_recipient_fields_have_the_upsert_types(
    api: httpx.Client, sandbox: SandboxHandle, recipient: dict[str, object], field: str
) -> None:
    body = {"trigger_key": "receipt", "to_email": "new@example.com", "recipient": recipient}
    assert _field_error(api.post("/emails/trigger/", json=body)) == field
    assert sandbox.contacts() == []
    assert sandbox.sends() == []


@pytest.mark.parametrize("action", ["add_tag", "remove_tag"])
def test_tag_name_and_tag_id_together_are_400(
    api: httpx.Client, sandbox: SandboxHandle, action: str
) -> None:
    contact = api.post("/contacts/upsert/", json={"email": "a@example.com", "tag_names": ["vip"]})
    contact_id, tag_id = contact.json()["id"], contact.json()["tags"][0]["id"]
    body = {"tag_name": "other", "tag_id": tag_id}
    assert _field_error(api.post(f"/contacts/{contact_id}/{action}/", json=body)) == "tag_id"
    [stored] = sandbox.contacts()
    assert [t["name"] for t in stored["tags"]] == ["vip"]
    # The spec writes the alternative as {"tag_id": ""}: an empty one counts as absent.
    body = {"tag_name": "vip", "tag_id": ""}
    assert api.post(f"/contacts/{contact_id}/{action}/", json=body).status_code == 200


@pytest.mark.parametrize(
    "email",
    [
        "x" * 65 + "@example.com",  # local part over 64 octets (RFC 5321)
        "a@" + "d" * 250 + ".com",  # address over 254 octets
        "a@@example.com",
        "a b@example.com",
        "a@example",
    ],
)
def test_invalid_emails_are_400(api: httpx.Client, sandbox: SandboxHandle, email: str) -> None:
    assert _field_error(api.post("/contacts/upsert/", json={"email": email})) == "email"
    assert sandbox.contacts() == []
