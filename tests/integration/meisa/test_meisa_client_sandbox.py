"""MeisaClient against the sandbox over real HTTP: every endpoint, every outcome class."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.errors import (
    AlreadyEnrolled,
    ContactNotFound,
    Forbidden,
    MissingScopes,
    RateLimited,
    RejectedCall,
    ServerError,
    SpecFieldError,
    TransportError,
    Unauthorized,
    Unsubscribed,
    WrongBaseUrl,
)
from bridge.meisa.calls import CallKind, MeisaCall, contact_key
from bridge.meisa.client import MeisaClient
from bridge.meisa.delivery import Deliverer
from bridge.meisa.governor import RateGovernor
from bridge.meisa.retry import RetryPolicy
from bridge.meisa.scopes import check_scopes, missing_scopes
from bridge.sandbox.testing import SandboxHandle
from bridge.settings import MeisaSettings, SecretStr

FULL = "meisa_test_full_000000000000000000000000"
READ_ONLY = "meisa_test_readonly_00000000000000000000"
TAGS_ONLY = "meisa_test_tagsonly_00000000000000000000"
CONFIG = {
    "keys": [
        {
            "key": FULL,
            "name": "full",
            "scopes": ["*"],
            "rate_limit_per_minute": None,
            "rate_limit_per_hour": None,
        },
        {"key": READ_ONLY, "name": "read-only", "scopes": ["contacts:read"]},
        {"key": TAGS_ONLY, "name": "tags-only", "scopes": ["tags:write", "contacts:read"]},
    ]
}
pytestmark = [pytest.mark.integration, pytest.mark.sandbox_config(CONFIG)]
TRANSPORTS = ["pyreqwest", "h1", "httpx"]


def settings(sandbox: SandboxHandle, key: str = FULL, **kw: Any) -> MeisaSettings:
    return MeisaSettings(base_url=sandbox.base_url, api_key=SecretStr(key), **kw)


@pytest.fixture(params=TRANSPORTS)
async def client(
    request: pytest.FixtureRequest, sandbox: SandboxHandle
) -> AsyncIterator[MeisaClient]:
    async with MeisaClient(settings(sandbox, transport=request.param)) as c:
        yield c


def call(kind: CallKind, **body: Any) -> MeisaCall:
    return MeisaCall(kind=kind, body=body, contact_key=contact_key(body))


# -- endpoints ---------------------------------------------------------------------------------


async def test_ping_describes_the_key(client: MeisaClient) -> None:
    info = await client.ping()
    assert info.name == "full"
    assert info.environment == "test"
    assert "emails:trigger" in info.scopes
    assert info.product["id"]
    assert (info.rate_limit_per_minute, info.rate_limit_per_hour) == (None, None)


async def test_upsert_creates_then_merges(client: MeisaClient, sandbox: SandboxHandle) -> None:
    first = await client.upsert(
        {"email": "Sarah@Example.com", "external_id": "u1", "custom_fields": {"plan": "free"}}
    )
    assert first.status == 200
    assert first.body["email"] == "sarah@example.com"
    again = await client.send(call("upsert", email="sarah@example.com", custom_fields={"n": 2}))
    assert again.body["id"] == first.body["id"]
    assert sandbox.contact("sarah@example.com")["custom_fields"] == {"plan": "free", "n": 2}  # type: ignore[index]


async def test_track_needs_the_contact(client: MeisaClient, sandbox: SandboxHandle) -> None:
    with pytest.raises(ContactNotFound):
        await client.track({"email": "nobody@example.com", "event_name": "x"})
    await client.upsert({"email": "a@example.com"})
    result = await client.send(call("track", email="a@example.com", event_name="feature_used"))
    assert result.body["status"] == "tracked"
    assert [e["event_name"] for e in sandbox.events(email="a@example.com")] == ["feature_used"]


async def test_tags_resolve_contact_and_change_tags(
    client: MeisaClient, sandbox: SandboxHandle
) -> None:
    await client.send(call("add_tag", email="t@example.com", external_id="u7", tag_name="vip"))
    await client.send(call("add_tag", email="t@example.com", external_id="u7", tag_name="beta"))
    contact = sandbox.contact("t@example.com")
    assert contact is not None
    assert {t["name"] for t in contact["tags"]} == {"vip", "beta"}
    beta = next(t["id"] for t in contact["tags"] if t["name"] == "beta")
    await client.remove_tag(contact["id"], tag_id=beta)
    await client.send(call("remove_tag", email="t@example.com", external_id="u7", tag_name="vip"))
    assert sandbox.contact("t@example.com")["tags"] == []  # type: ignore[index]
    upserts = sandbox.requests(path="/api/v1/contacts/upsert/")
    assert len(upserts) == 1, "the contact id is cached after the first lookup"


async def test_unsubscribed_emails(client: MeisaClient, sandbox: SandboxHandle) -> None:
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        await client.upsert({"email": email})
    sandbox.set_status("a@example.com", "unsubscribed")
    sandbox.set_status("b@example.com", "bounced")
    assert await client.unsubscribed_emails() == {"a@example.com", "b@example.com"}


async def test_trigger_outcomes(client: MeisaClient, sandbox: SandboxHandle) -> None:
    sent = await client.trigger(
        {
            "trigger_key": "verification_code",
            "to_email": "otp@example.com",
            "variables": {"code": "123456"},
            "recipient": {"first_name": "Sarah"},
            "idempotency_key": "otp-1",
        }
    )
    assert (sent.status, sent.outcome, sent.body["status"]) == (200, "ok", "sent")
    scheduled = await client.trigger(
        {"trigger_key": "payment_failure", "to_email": "p@example.com"}
    )
    assert (scheduled.status, scheduled.outcome, scheduled.reason) == (202, "ok", "scheduled")
    skipped = await client.trigger({"trigger_key": "pro_tips", "to_email": "free@example.com"})
    assert (skipped.outcome, skipped.reason) == ("skipped", "conditions_not_met")
    sandbox.set_status("otp@example.com", "unsubscribed")
    with pytest.raises(Unsubscribed):
        await client.trigger({"trigger_key": "receipt", "to_email": "otp@example.com"})


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"trigger_key": "team_invite", "to_email": "x@example.com"}, 422),  # no sender
        ({"trigger_key": "nope", "to_email": "x@example.com"}, 400),
        ({"trigger_key": "legacy_welcome", "to_email": "x@example.com"}, 400),  # inactive
        ({"trigger_key": "receipt", "to_email": "not-an-email"}, 400),
    ],
)
async def test_trigger_rejections_are_poison_not_skips(
    client: MeisaClient, body: dict[str, Any], status: int
) -> None:
    with pytest.raises(RejectedCall) as info:
        await client.trigger(body)
    assert info.value.status == status
    assert not isinstance(info.value, Unsubscribed | ContactNotFound)


async def test_enroll_list_and_enrollments(client: MeisaClient) -> None:
    created = await client.send(call("enroll", email="e@example.com", sequence_slug="onboarding"))
    assert created.status == 201
    assert created.body["sequence_slug"] == "onboarding"
    with pytest.raises(AlreadyEnrolled):
        await client.enroll({"email": "e@example.com", "sequence_slug": "onboarding"})
    enrollments = await client.contact_enrollments("e@example.com")
    assert enrollments["contact_exists"] is True
    assert [e["sequence_slug"] for e in enrollments["enrollments"]] == ["onboarding"]
    active = {s["slug"] for s in await client.list_sequences()}
    assert "onboarding" in active
    assert "product-tips" not in active
    found = await client.list_sequences(status="all", search="win")
    assert [s["slug"] for s in found] == ["win-back"]


async def test_a_redelivered_enroll_is_skipped_not_poison(sandbox: SandboxHandle) -> None:
    # At-least-once: the same enroll arrives again after a crash, a rebalance or a redrive.
    enroll = call("enroll", email="twice@example.com", sequence_slug="onboarding")
    vt = VirtualTime()
    async with MeisaClient(settings(sandbox)) as client:
        governor = RateGovernor(per_minute=None, per_hour=None, clock=vt.clock, sleep=vt.sleep)
        deliverer = Deliverer(client, governor, RetryPolicy(), sleep=vt.sleep)
        assert (await deliverer.deliver(enroll)).status == 201
        with pytest.raises(AlreadyEnrolled) as info:
            await deliverer.deliver(enroll)
    assert info.value.reason == "already_enrolled"
    assert vt.waits == [], "a skip is not retried"
    assert [r["status"] for r in sandbox.requests(path="/api/v1/sequences/enroll/")] == [201, 400]
    assert len(sandbox.enrollments(email="twice@example.com")) == 1


async def test_unknown_tag_id_is_poison_at_once_unknown_contact_is_not_found(
    sandbox: SandboxHandle,
) -> None:
    vt = VirtualTime()
    async with MeisaClient(settings(sandbox)) as client:
        governor = RateGovernor(per_minute=None, per_hour=None, clock=vt.clock, sleep=vt.sleep)
        deliverer = Deliverer(client, governor, RetryPolicy(), sleep=vt.sleep)
        tag = call("add_tag", email="tagged@example.com", tag_id="t_missing")
        with pytest.raises(RejectedCall) as info:
            await deliverer.deliver(tag)
        assert not isinstance(info.value, ContactNotFound)
        with pytest.raises(ContactNotFound):
            await client.add_tag("c_missing", tag_name="vip")
    assert info.value.status == 404
    assert vt.waits == [], "retrying cannot create the tag"
    assert len(sandbox.requests(path="/api/v1/contacts/upsert/")) == 1, "one lookup, no repeats"


async def test_bulk_enroll_is_chunked(client: MeisaClient, sandbox: SandboxHandle) -> None:
    emails = [f"user{i}@example.com" for i in range(1001)]
    results = await client.bulk_enroll("welcome-pro", emails)
    assert [r.status for r in results] == [200, 200, 200]
    assert len(sandbox.requests(path="/api/v1/sequences/api/bulk-enroll/")) == 3
    assert len(sandbox.enrollments(sequence_slug="welcome-pro")) == 1001


async def test_spec_field_is_refused_before_anything_is_sent(
    client: MeisaClient, sandbox: SandboxHandle
) -> None:
    with pytest.raises(SpecFieldError):
        await client.send(call("upsert", email="a@example.com", tags=["x"]))
    assert sandbox.requests(path="/api/v1/") == []


# -- outcome classes ---------------------------------------------------------------------------


async def test_unknown_key_is_unauthorized(sandbox: SandboxHandle) -> None:
    async with MeisaClient(settings(sandbox, "meisa_test_wrong_000000000000000000000")) as c:
        with pytest.raises(Unauthorized) as info:
            await c.ping()
    assert "meisa_test_wrong" not in str(info.value)


async def test_missing_scope_is_forbidden_naming_the_scope(sandbox: SandboxHandle) -> None:
    async with MeisaClient(settings(sandbox, READ_ONLY)) as c:
        assert await c.unsubscribed_emails() == frozenset()
        with pytest.raises(Forbidden, match="emails:trigger"):
            await c.trigger({"trigger_key": "receipt", "to_email": "x@example.com"})


async def test_tags_write_scope_does_not_authorise_tags(sandbox: SandboxHandle) -> None:
    async with MeisaClient(settings(sandbox)) as full:
        contact = (await full.upsert({"email": "t@example.com"})).body
    async with MeisaClient(settings(sandbox, TAGS_ONLY)) as c:
        with pytest.raises(Forbidden, match="contacts:write"):
            await c.add_tag(contact["id"], tag_name="vip")


async def test_429_with_delta_retry_after(client: MeisaClient, sandbox: SandboxHandle) -> None:
    sandbox.set_fault("upsert", status=429, retry_after=7, count=1)
    with pytest.raises(RateLimited) as info:
        await client.upsert({"email": "a@example.com"})
    assert info.value.retry_after == 7.0


async def test_429_with_http_date_retry_after(client: MeisaClient, sandbox: SandboxHandle) -> None:
    sandbox.set_fault("upsert", status=429, retry_after=30, retry_after_format="http-date", count=1)
    with pytest.raises(RateLimited) as info:
        await client.upsert({"email": "a@example.com"})
    assert info.value.retry_after is not None
    assert 27.0 <= info.value.retry_after <= 30.0  # whole-second dates, a little time passed


async def test_retry_after_is_capped(sandbox: SandboxHandle) -> None:
    sandbox.set_fault("upsert", status=429, retry_after=86_400, count=1)
    async with MeisaClient(settings(sandbox, retry_after_cap_seconds=60.0)) as c:
        with pytest.raises(RateLimited) as info:
            await c.upsert({"email": "a@example.com"})
    assert info.value.retry_after == 60.0


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_server_error(
    client: MeisaClient, sandbox: SandboxHandle, status: int
) -> None:
    sandbox.set_fault("track", status=status, retry_after=2, count=1)
    with pytest.raises(ServerError) as info:
        await client.track({"email": "a@example.com", "event_name": "x"})
    assert info.value.retry_after == 2.0


@pytest.mark.parametrize("mode", ["close", "reset"])
async def test_dropped_connection_is_transport_error(
    client: MeisaClient, sandbox: SandboxHandle, mode: str
) -> None:
    sandbox.set_fault("upsert", drop=mode, count=1)
    with pytest.raises(TransportError) as info:
        await client.upsert({"email": "a@example.com"})
    assert FULL not in str(info.value)
    assert info.value.__context__ is None
    ok = await client.upsert({"email": "a@example.com"})
    assert ok.status == 200, "the client recovers on a fresh connection"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_timeout_is_transport_error(sandbox: SandboxHandle, transport: str) -> None:
    sandbox.set_fault("ping", latency_ms=1500, count=1)
    async with MeisaClient(settings(sandbox, timeout=0.3, transport=transport)) as c:  # type: ignore[arg-type]
        with pytest.raises(TransportError):
            await c.ping()


async def test_connection_refused_is_transport_error() -> None:
    s = MeisaSettings(base_url="http://127.0.0.1:9/api/v1", api_key=SecretStr(FULL))
    async with MeisaClient(s) as c:
        with pytest.raises(TransportError):
            await c.ping()


# -- delivery: governor + retries over real HTTP -----------------------------------------------


class VirtualTime:
    """Clock and sleep for the governor and the retries: waits are recorded, not slept."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def test_deliverer_retries_transient_faults_until_delivered(sandbox: SandboxHandle) -> None:
    sandbox.set_fault("trigger", status=503, count=2)
    sandbox.set_fault("trigger", status=429, retry_after=5, count=1)
    vt = VirtualTime()
    async with MeisaClient(settings(sandbox)) as client:
        governor = RateGovernor(per_minute=None, per_hour=None, clock=vt.clock, sleep=vt.sleep)
        deliverer = Deliverer(client, governor, RetryPolicy(), sleep=vt.sleep, rng=random.Random(1))
        body = {"trigger_key": "receipt", "to_email": "r@example.com", "idempotency_key": "k1"}
        result = await deliverer.deliver(call("trigger", **body))
    assert result.body["status"] == "sent"
    assert len(vt.waits) == 3
    assert vt.waits[2] >= 5.0, "Retry-After honoured"
    # One 429 (no run of them): the call waited it out, the key was not paused for everyone.
    assert governor.core.paused_until == -math.inf
    assert len(sandbox.sends(to_email="r@example.com")) == 1


async def test_deliverer_retries_track_until_the_contact_exists(sandbox: SandboxHandle) -> None:
    async with MeisaClient(settings(sandbox)) as client:

        async def contact_arrives(seconds: float) -> None:
            await client.upsert({"email": "late@example.com"})

        governor = RateGovernor(per_minute=None, per_hour=None)
        deliverer = Deliverer(client, governor, RetryPolicy(), sleep=contact_arrives)
        result = await deliverer.deliver(call("track", email="late@example.com", event_name="x"))
    assert result.body["status"] == "tracked"


async def test_startup_scope_check_against_ping(sandbox: SandboxHandle) -> None:
    needed = {"emails:trigger": ["otp-email"], "tags:write": ["tag-churned"]}
    async with MeisaClient(settings(sandbox, READ_ONLY)) as c:
        info = await c.ping()
    assert missing_scopes(needed, info.scopes) == {
        "contacts:write": ["tag-churned"],
        "emails:trigger": ["otp-email"],
    }
    with pytest.raises(MissingScopes, match="emails:trigger: needed by otp-email"):
        check_scopes(needed, info.scopes)
    async with MeisaClient(settings(sandbox)) as c:
        check_scopes(needed, (await c.ping()).scopes)


async def test_base_url_without_the_api_prefix_halts_at_ping(sandbox: SandboxHandle) -> None:
    s = MeisaSettings(base_url=sandbox.url, api_key=SecretStr(FULL))
    async with MeisaClient(s) as c:
        with pytest.raises(WrongBaseUrl, match="base_url"):
            await c.ping()
