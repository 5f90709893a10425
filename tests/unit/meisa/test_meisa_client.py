"""Client behaviour that needs no server: spec-field refusal, secret masking, tag dispatch.

These use httpx.MockTransport to count requests; the real-HTTP tests are in
tests/integration/meisa.
"""

from __future__ import annotations

import traceback
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from bridge.errors import (
    HaltError,
    MappingError,
    SpecFieldError,
    TransportError,
    Unauthorized,
    WrongBaseUrl,
)
from bridge.meisa.calls import MeisaCall, contact_key
from bridge.meisa.client import MeisaClient
from bridge.settings import MeisaSettings, SecretStr

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


async def test_contact_id_is_one_escaped_path_segment() -> None:
    recorder = Recorder()
    async with make(recorder) as client:
        await client.add_tag("a/../b?c=1#d", tag_name="vip")
    [request] = recorder.requests
    assert request.url.raw_path == b"/api/v1/contacts/a%2F..%2Fb%3Fc%3D1%23d/add_tag/"
    assert orjson.loads(request.content) == {"tag_name": "vip"}


async def test_tag_name_and_tag_id_together_are_refused() -> None:
    recorder = Recorder()
    async with make(recorder) as client:
        with pytest.raises(MappingError, match="exactly one"):
            await client.add_tag("c1", tag_name="vip", tag_id="t1")
    assert recorder.requests == []


async def test_a_body_that_is_not_json_is_a_mapping_error_before_sending() -> None:
    recorder = Recorder()
    body = {"email": "a@example.com", "custom_fields": {"price": Decimal("9.99"), "b": b"\x00"}}
    async with make(recorder) as client:
        with pytest.raises(MappingError, match="JSON"):
            await client.upsert(body)
    assert recorder.requests == []


async def test_a_key_echoed_by_the_server_never_reaches_the_error() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": f"invalid API key {KEY}", "key": KEY})

    async with MeisaClient(SETTINGS, transport=httpx.MockTransport(echo)) as client:
        with pytest.raises(Unauthorized) as info:
            await client.upsert({"email": "a@example.com"})
    assert "invalid API key" in str(info.value)
    assert KEY not in "".join(traceback.format_exception(info.value))


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_halts_naming_the_base_url(status: int) -> None:
    def redirect(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"Location": "https://meisa.test/api/v1/ping/"})

    async with MeisaClient(SETTINGS, transport=httpx.MockTransport(redirect)) as client:
        for attempt in (client.ping(), client.upsert({"email": "a@example.com"})):
            with pytest.raises(WrongBaseUrl) as info:
                await attempt
            assert isinstance(info.value, HaltError)
            assert "https://meisa.test/api/v1/ping/" in str(info.value)
            assert "base_url" in str(info.value)


async def test_ping_404_means_the_base_url_is_wrong() -> None:
    def missing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "Not Found"})

    async with MeisaClient(SETTINGS, transport=httpx.MockTransport(missing)) as client:
        with pytest.raises(WrongBaseUrl, match="base_url"):
            await client.ping()


UPSERT = {"email": "a@example.com", "external_id": "u1", "custom_fields": {"plan": "pro"}}
TRACK = {"email": "a@example.com", "event_name": "feature_activated", "properties": {"f": 1}}
TRIGGER = {"trigger_key": "verification_code", "to_email": "a@example.com", "idempotency_key": "k"}
ENROLL = {"email": "a@example.com", "sequence_slug": "onboarding", "override_unsubscribe": True}


@pytest.mark.parametrize(
    ("invoke", "method", "path", "query", "body"),
    [
        (lambda c: c.ping(), "GET", "/api/v1/ping/", b"", None),
        (lambda c: c.upsert(UPSERT), "POST", "/api/v1/contacts/upsert/", b"", UPSERT),
        (lambda c: c.track(TRACK), "POST", "/api/v1/events/track/", b"", TRACK),
        (lambda c: c.trigger(TRIGGER), "POST", "/api/v1/emails/trigger/", b"", TRIGGER),
        (lambda c: c.enroll(ENROLL), "POST", "/api/v1/sequences/enroll/", b"", ENROLL),
        (
            lambda c: c.add_tag("c1", tag_id="t1"),
            "POST",
            "/api/v1/contacts/c1/add_tag/",
            b"",
            {"tag_id": "t1"},
        ),
        (
            lambda c: c.remove_tag("c1", tag_name="churned"),
            "POST",
            "/api/v1/contacts/c1/remove_tag/",
            b"",
            {"tag_name": "churned"},
        ),
        (
            lambda c: c.unsubscribed_emails(),
            "GET",
            "/api/v1/contacts/api/unsubscribed-emails/",
            b"",
            None,
        ),
        (
            lambda c: c.bulk_enroll("onboarding", ["a@example.com"]),
            "POST",
            "/api/v1/sequences/api/bulk-enroll/",
            b"",
            {"sequence_slug": "onboarding", "emails": ["a@example.com"]},
        ),
        (
            lambda c: c.list_sequences("all", "pro"),
            "GET",
            "/api/v1/sequences/api/list/",
            b"status=all&search=pro",
            None,
        ),
        (
            lambda c: c.contact_enrollments("a+b@example.com"),
            "GET",
            "/api/v1/sequences/api/contact-enrollments/",
            b"email=a%2Bb%40example.com",
            None,
        ),
    ],
)
async def test_each_method_sends_the_spec_path_headers_and_body(
    invoke: Any, method: str, path: str, query: bytes, body: Any
) -> None:
    recorder = Recorder()
    async with make(recorder) as client:
        await invoke(client)
    [request] = recorder.requests
    assert (request.method, request.url.raw_path.partition(b"?")[0].decode()) == (method, path)
    assert request.url.query == query
    assert request.headers["x-api-key"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert (orjson.loads(request.content) if request.content else None) == body


async def test_the_default_base_url_is_the_real_meisa() -> None:
    recorder = Recorder()
    async with MeisaClient(
        MeisaSettings(api_key=SecretStr(KEY)), transport=httpx.MockTransport(recorder)
    ) as client:
        await client.ping()
        await client.track({"event_name": "x", "email": "a@b.c"})
    ping, track = recorder.requests
    assert str(ping.url) == "https://api.meisa.io/api/v1/ping/"
    assert str(track.url) == "https://api.meisa.io/api/v1/events/track/"
    assert ping.extensions["timeout"]["read"] == 10.0
    assert track.headers["content-type"] == "application/json"
    assert track.headers["host"] == "api.meisa.io"
