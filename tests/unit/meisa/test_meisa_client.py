"""Client behaviour that needs no server: spec-field refusal, secret masking, tag dispatch.

These use httpx.MockTransport to count requests; the real-HTTP tests are in
tests/integration/meisa.
"""

from __future__ import annotations

import traceback
from typing import Any

import httpx
import orjson
import pytest

from bridge.config import MeisaSettings, SecretStr
from bridge.errors import MappingError, SpecFieldError, TransportError
from bridge.meisa.calls import MeisaCall, contact_key
from bridge.meisa.client import MeisaClient

KEY = "meisa_test_SUPERSECRET_0000000000000000"
SETTINGS = MeisaSettings(base_url="http://meisa.test/api/v1", api_key=SecretStr(KEY))


class Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/contacts/upsert/"):
            body = orjson.loads(request.content)
            return httpx.Response(200, json={"id": f"c-{body['email']}", **body})
        return httpx.Response(200, json={"status": "ok", "path": path})


def make(recorder: Recorder) -> MeisaClient:
    return MeisaClient(SETTINGS, transport=httpx.MockTransport(recorder))


def call(kind: Any, **body: Any) -> MeisaCall:
    return MeisaCall(kind=kind, body=body, contact_key=contact_key(body))


@pytest.mark.parametrize("field", ["name", "status", "tags", "tag_ids"])
async def test_upsert_refuses_fields_the_spec_says_do_not_exist(field: str) -> None:
    recorder = Recorder()
    async with make(recorder) as client:
        with pytest.raises(SpecFieldError, match=field):
            await client.send(call("upsert", email="a@example.com", **{field: "x"}))
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("track", {"email": "a@example.com", "event_name": "x", "event": "typo"}),
        ("trigger", {"trigger_key": "k", "to_email": "a@example.com", "template": "t"}),
        ("enroll", {"email": "a@example.com", "sequence_slug": "s", "sequence": "s"}),
        ("add_tag", {"email": "a@example.com", "tag_name": "t", "color": "red"}),
    ],
)
async def test_unknown_field_is_refused_before_sending(kind: str, body: dict[str, Any]) -> None:
    recorder = Recorder()
    async with make(recorder) as client:
        with pytest.raises(SpecFieldError):
            await client.send(call(kind, **body))
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("upsert", {"first_name": "no email"}),
        ("upsert", {"email": "a@example.com", "source": "webhook"}),
        ("upsert", {"email": "a@example.com", "tag_names": "not-a-list"}),
        ("track", {"event_name": "x"}),
        ("trigger", {"to_email": "a@example.com"}),
        ("enroll", {"email": "a@example.com"}),
        ("add_tag", {"email": "a@example.com"}),
        ("add_tag", {"email": "a@example.com", "tag_name": "a", "tag_id": "b"}),
    ],
)
async def test_bodies_the_spec_would_reject_are_refused(kind: str, body: dict[str, Any]) -> None:
    recorder = Recorder()
    async with make(recorder) as client:
        with pytest.raises(MappingError):
            await client.send(call(kind, **body))
    assert recorder.requests == []


async def test_add_tag_resolves_contact_once_and_sends_only_the_tag() -> None:
    recorder = Recorder()
    async with make(recorder) as client:
        first = call("add_tag", email="a@example.com", external_id="u1", tag_name="vip")
        assert client.requests_for(first) == 2
        await client.send(first)
        assert client.requests_for(first) == 1
        await client.send(call("remove_tag", email="a@example.com", external_id="u1", tag_id="t9"))
    paths = [r.url.path for r in recorder.requests]
    assert paths == [
        "/api/v1/contacts/upsert/",
        "/api/v1/contacts/c-a@example.com/add_tag/",
        "/api/v1/contacts/c-a@example.com/remove_tag/",
    ]
    assert orjson.loads(recorder.requests[0].content) == {
        "email": "a@example.com",
        "external_id": "u1",
    }
    assert orjson.loads(recorder.requests[1].content) == {"tag_name": "vip"}
    assert orjson.loads(recorder.requests[2].content) == {"tag_id": "t9"}


async def test_bulk_enroll_is_chunked_at_500() -> None:
    recorder = Recorder()
    emails = [f"u{i}@example.com" for i in range(1201)]
    async with make(recorder) as client:
        results = await client.bulk_enroll("welcome", emails)
    sizes = [len(orjson.loads(r.content)["emails"]) for r in recorder.requests]
    assert sizes == [500, 500, 201]
    assert len(results) == 3


async def test_every_request_carries_the_key_header() -> None:
    recorder = Recorder()
    async with make(recorder) as client:
        await client.ping()
    assert recorder.requests[0].headers["x-api-key"] == KEY
    assert recorder.requests[0].url.path == "/api/v1/ping/"


def test_key_is_masked_in_reprs() -> None:
    client = MeisaClient(SETTINGS, transport=httpx.MockTransport(Recorder()))
    for text in (repr(client), str(client), repr(SETTINGS), str(SETTINGS.api_key)):
        assert KEY not in text


async def test_transport_error_carries_no_request_or_key() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused, headers were {request.headers!r}", request=request)

    async with MeisaClient(SETTINGS, transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(TransportError) as info:
            await client.ping()
    error = info.value
    assert error.__cause__ is None
    assert error.__context__ is None
    rendered = "".join(traceback.format_exception(error))
    assert "ConnectError" in rendered
    assert KEY not in rendered
