"""The rate governor against the sandbox's real limiter, in virtual time.

The key allows 5 requests a minute. The governor's clock is virtual; its sleep advances both that
clock and the sandbox's clock (POST /_sandbox/clock), so minutes pass without waiting.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bridge.errors import RateLimited
from bridge.meisa.calls import CallKind, MeisaCall, contact_key
from bridge.meisa.client import MeisaClient
from bridge.meisa.delivery import Deliverer
from bridge.meisa.governor import RateGovernor
from bridge.meisa.models import CallResult
from bridge.meisa.retry import RetryPolicy
from bridge.sandbox.testing import SandboxHandle
from bridge.settings import MeisaSettings, SecretStr

SMALL = "meisa_test_small_00000000000000000000000"
CONFIG = {
    "keys": [
        {
            "key": SMALL,
            "name": "small",
            "scopes": ["*"],
            "rate_limit_per_minute": 5,
            "rate_limit_per_hour": 1000,
        }
    ]
}
pytestmark = [pytest.mark.integration, pytest.mark.sandbox_config(CONFIG)]


class CountingClient:
    """The real client, counting requests in flight so virtual time never jumps under one."""

    def __init__(self, client: MeisaClient) -> None:
        self.client = client
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def send(self, call: MeisaCall) -> CallResult:
        self.in_flight += 1
        self.idle.clear()
        try:
            return await self.client.send(call)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self.idle.set()

    def requests_for(self, call: MeisaCall) -> int:
        return self.client.requests_for(call)


class SharedTime:
    def __init__(self, sandbox: SandboxHandle, client: CountingClient) -> None:
        self.sandbox = sandbox
        self.client = client
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        for _ in range(5):  # let the tasks granted at this instant start their requests
            await asyncio.sleep(0)
        await self.client.idle.wait()  # and let those requests reach the sandbox
        if seconds > 0:
            self.now += seconds
            self.sandbox.advance_clock(float(seconds))


def call(kind: CallKind, **body: Any) -> MeisaCall:
    return MeisaCall(kind=kind, body=body, contact_key=contact_key(body))


async def test_the_key_really_limits_at_five(sandbox: SandboxHandle) -> None:
    sandbox.reset()
    settings = MeisaSettings(base_url=sandbox.base_url, api_key=SecretStr(SMALL))
    async with MeisaClient(settings) as client:
        for i in range(5):
            await client.upsert({"email": f"u{i}@example.com"})
        with pytest.raises(RateLimited):
            await client.upsert({"email": "u5@example.com"})


async def test_governed_calls_never_hit_429_and_trigger_goes_first(sandbox: SandboxHandle) -> None:
    sandbox.reset()
    settings = MeisaSettings(base_url=sandbox.base_url, api_key=SecretStr(SMALL))
    async with MeisaClient(settings) as real:
        client = CountingClient(real)
        vt = SharedTime(sandbox, client)
        governor = RateGovernor.from_ping(
            await real.ping(), settings, clock=vt.clock, sleep=vt.sleep
        )
        deliverer = Deliverer(client, governor, RetryPolicy(), sleep=vt.sleep)
        upserts = [call("upsert", email=f"user{i}@example.com") for i in range(11)]
        tasks = [asyncio.create_task(deliverer.deliver(c)) for c in upserts]
        await asyncio.sleep(0)
        otp = call("trigger", trigger_key="verification_code", to_email="otp@example.com")
        tasks.append(asyncio.create_task(deliverer.deliver(otp)))
        results = await asyncio.gather(*tasks)
        await governor.aclose()
    assert all(r.status == 200 for r in results)
    log = sandbox.requests(path="/api/v1/")
    assert [r for r in log if r["status"] == 429] == []
    paths = [r["path"] for r in log]
    assert paths[0] == "/api/v1/ping/"
    # Paced at 5 per 60.5 s, the ping spent the first token: the waiting trigger takes the next
    # one, ahead of every upsert queued before it.
    assert paths[1] == "/api/v1/emails/trigger/"
    assert vt.now > 120.0, "12 calls at 5/min (after the ping) need three windows"
