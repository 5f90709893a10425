"""HTTP-level behaviour a careful API vendor has: media type, body size, paths, methods."""

from __future__ import annotations

import httpx
import pytest

from bridge.sandbox.testing import SandboxHandle

pytestmark = pytest.mark.integration


def _error(resp: httpx.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert isinstance(body["error"], str)
    assert body["error"]
    return dict(body)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_declared_json_is_415(
    api: httpx.Client, sandbox: SandboxHandle, content_type: str
) -> None:
    resp = api.post(
        "/contacts/upsert/",
        content=b'{"email": "a@example.com"}',
        headers={"Content-Type": content_type},
    )
    body = _error(resp, 415)
    assert body["code"] == "unsupported_media_type"
    assert "application/json" in str(body["error"])
    assert sandbox.contacts() == []


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON"]
)
def test_json_media_types_are_accepted(api: httpx.Client, content_type: str) -> None:
    resp = api.post(
        "/contacts/upsert/",
        content=b'{"email": "a@example.com"}',
        headers={"Content-Type": content_type},
    )
    assert resp.status_code == 200, resp.text


def test_a_body_over_one_mib_is_413(api: httpx.Client, sandbox: SandboxHandle) -> None:
    blob = "x" * (1024 * 1024)
    resp = api.post(
        "/contacts/upsert/", json={"email": "a@example.com", "custom_fields": {"b": blob}}
    )
    assert _error(resp, 413)["code"] == "payload_too_large"
    assert sandbox.contacts() == []


def test_a_chunked_body_over_one_mib_is_413(api: httpx.Client, sandbox: SandboxHandle) -> None:
    def chunks() -> object:
        yield b'{"email": "a@example.com", "custom_fields": {"b": "'
        for _ in range(40):
            yield b"x" * 32768
        yield b'"}}'

    resp = api.post(
        "/contacts/upsert/", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert _error(resp, 413)["code"] == "payload_too_large"
    assert sandbox.contacts() == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/contacts/upsert", {"email": "a@example.com"}),
        ("GET", "/ping", None),
        ("GET", "/sequences/api/list", None),
    ],
)
def test_paths_without_the_trailing_slash_are_served_not_redirected(
    api: httpx.Client, method: str, path: str, body: object
) -> None:
    # httpx does not follow redirects by default and urllib refuses to re-send a POST on 307.
    resp = api.request(method, path, json=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"


def test_unknown_path_is_json_404_naming_it(api: httpx.Client) -> None:
    body = _error(api.get("/contacts/nope/"), 404)
    assert body["code"] == "not_found"
    assert "/api/v1/contacts/nope/" in str(body["error"])


def test_wrong_method_is_405_with_allow(api: httpx.Client) -> None:
    resp = api.get("/contacts/upsert/")
    body = _error(resp, 405)
    assert body["code"] == "method_not_allowed"
    assert resp.headers["allow"] == "POST"
    assert "POST" in str(body["error"])
