"""Fault injection: statuses at a seeded rate, Retry-After in both forms, latency, drops, limits."""

from __future__ import annotations

import http.client
import time
from email.utils import parsedate_to_datetime

import httpx
import pytest

from bridge.sandbox.testing import SandboxHandle

pytestmark = pytest.mark.integration


def _statuses(api: httpx.Client, n: int) -> list[int]:
    return [api.get("/ping/").status_code for _ in range(n)]


def test_status_at_rate_repeats_with_the_same_seed(
    fast_api: httpx.Client, sandbox: SandboxHandle
) -> None:
    sandbox.set_fault("ping", status=503, rate=0.5, seed=42)
    first = _statuses(fast_api, 40)
    sandbox.reset()
    sandbox.set_fault("ping", status=503, rate=0.5, seed=42)
    second = _statuses(fast_api, 40)
    assert first == second
    assert 5 < first.count(503) < 35
    assert set(first) == {200, 503}
    sandbox.reset()
    sandbox.set_fault("ping", status=503, rate=0.5, seed=7)
    assert _statuses(fast_api, 40) != first


def test_fault_only_hits_its_endpoint(api: httpx.Client, sandbox: SandboxHandle) -> None:
    sandbox.set_fault("track", status=500)
    assert api.post("/contacts/upsert/", json={"email": "a@example.com"}).status_code == 200
    resp = api.post("/events/track/", json={"email": "a@example.com", "event_name": "x"})
    assert resp.status_code == 500
    assert resp.json()["code"] == "injected_fault"
    assert sandbox.events() == []


def test_fault_by_path_pattern(api: httpx.Client, sandbox: SandboxHandle) -> None:
    sandbox.set_fault("/contacts/*/add_tag/", status=502)
    contact = api.post("/contacts/upsert/", json={"email": "a@example.com"}).json()
    assert (
        api.post(f"/contacts/{contact['id']}/add_tag/", json={"tag_name": "x"}).status_code == 502
    )
    assert (
        api.post(f"/contacts/{contact['id']}/remove_tag/", json={"tag_name": "x"}).status_code
        == 200
    )


def test_retry_after_delta_seconds(api: httpx.Client, sandbox: SandboxHandle) -> None:
    sandbox.set_fault("upsert", status=429, retry_after=7, count=1)
    resp = api.post("/contacts/upsert/", json={"email": "a@example.com"})
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "7"
    assert api.post("/contacts/upsert/", json={"email": "a@example.com"}).status_code == 200


def test_retry_after_http_date(api: httpx.Client, sandbox: SandboxHandle) -> None:
    sandbox.set_fault("trigger", status=503, retry_after=30, retry_after_format="http-date")
    before = time.time()
    resp = api.post(
        "/emails/trigger/", json={"trigger_key": "receipt", "to_email": "a@example.com"}
    )
    assert resp.status_code == 503
    when = parsedate_to_datetime(resp.headers["Retry-After"]).timestamp()
    assert before + 25 <= when <= before + 35
    assert sandbox.sends() == []


def test_retry_after_http_date_ignores_the_advanced_clock(
    api: httpx.Client, sandbox: SandboxHandle
) -> None:
    sandbox.advance_clock(7200)
    sandbox.set_fault("trigger", status=429, retry_after=30, retry_after_format="http-date")
    before = time.time()
    resp = api.post(
        "/emails/trigger/", json={"trigger_key": "receipt", "to_email": "a@example.com"}
    )
    when = parsedate_to_datetime(resp.headers["Retry-After"]).timestamp()
    assert before + 25 <= when <= before + 35


def test_count_limits_the_fault_to_the_next_n(api: httpx.Client, sandbox: SandboxHandle) -> None:
    fault = sandbox.set_fault("ping", status=500, count=2)
    assert _statuses(api, 4) == [500, 500, 200, 200]
    assert sandbox.faults() == []
    assert fault["remaining"] == 2


def test_duration_expires_the_fault(api: httpx.Client, sandbox: SandboxHandle) -> None:
    sandbox.set_fault("ping", status=500, duration=30)
    assert _statuses(api, 1) == [500]
    sandbox.advance_clock(31)
    assert _statuses(api, 1) == [200]


def test_added_latency(api: httpx.Client, sandbox: SandboxHandle) -> None:
    sandbox.set_fault("ping", latency_ms=300)
    started = time.perf_counter()
    resp = api.get("/ping/")
    assert resp.status_code == 200
    assert time.perf_counter() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        api.get("/ping/", timeout=0.1)


def test_dropped_connection_gets_no_response(api: httpx.Client, sandbox: SandboxHandle) -> None:
    sandbox.set_fault("upsert", drop=True, count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        api.post("/contacts/upsert/", json={"email": "a@example.com"})
    assert api.post("/contacts/upsert/", json={"email": "a@example.com"}).status_code == 200
    assert [r["fault_id"] is not None for r in sandbox.requests()] == [True, False]


def test_reset_drop_is_seen_by_a_plain_socket_client(sandbox: SandboxHandle) -> None:
    sandbox.set_fault("ping", drop="reset")
    conn = http.client.HTTPConnection(sandbox.url.removeprefix("http://"), timeout=5)
    conn.request("GET", "/api/v1/ping/", headers={"X-API-Key": sandbox.api_key})
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        conn.getresponse()
    conn.close()


def test_custom_body_and_clearing(api: httpx.Client, sandbox: SandboxHandle) -> None:
    fault = sandbox.set_fault("ping", status=400, body={"error": "bad", "code": "x"})
    assert api.get("/ping/").json() == {"error": "bad", "code": "x"}
    assert [f["id"] for f in sandbox.faults()] == [fault["id"]]
    sandbox.clear_faults()
    assert api.get("/ping/").status_code == 200


def test_invalid_fault_is_400(sandbox: SandboxHandle) -> None:
    url = f"{sandbox.url}/_sandbox/faults"
    resp = httpx.post(url, json={"endpoint": "ping", "status": 503, "rate": 2})
    assert resp.status_code == 400
    assert "rate" in resp.json()["error"]
    resp = httpx.post(url, json={"endpoint": "upsret", "status": 503})
    assert resp.status_code == 400
    assert "upsert" in resp.json()["error"]
    assert httpx.post(url, json={"endpoint": "ping"}).status_code == 400
    assert sandbox.faults() == []
