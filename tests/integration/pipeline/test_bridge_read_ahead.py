"""Read-ahead: a one-time code queued behind a backlog on the same topic is not held by it.

8,000 profile updates wait on a 2-partition topic for a 600-a-minute key (minutes of work); OTP
events published to the same topic behind them reach Meisa while the backlog is still draining,
because the bridge reads on past the messages that wait for the budget and sends triggers at
once. Before read-ahead, each partition paused at 2,000 unfinished messages and the OTPs sat
unread until the backlog had drained that far.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from bridge_harness import ConfigFactory, event, produce, running, wait_for

from bridge.sandbox.testing import SandboxHandle

KEY = "meisa_test_read_ahead_000000000000000000"
CONFIG = {
    "keys": [
        {
            "key": KEY,
            "name": "read-ahead",
            "environment": "test",
            "scopes": ["*"],
            "rate_limit_per_minute": 600,
            "rate_limit_per_hour": None,
        }
    ],
    "request_log_size": 100_000,
}
BACKLOG = 8000
OTPS = 5
TRIGGER_PATH = "/api/v1/emails/trigger/"
UPSERT_PATH = "/api/v1/contacts/upsert/"
pytestmark = [pytest.mark.integration, pytest.mark.sandbox_config(CONFIG)]


def _accepted(sandbox: SandboxHandle, path: str) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests(path=path, limit=100_000) if r["status"] < 300]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_otps_behind_a_backlog_on_their_topic_overtake_it(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic = make_topic(partitions=2)
    produce(kafka_bootstrap, topic, [event("user.updated", i % 4000, i) for i in range(BACKLOG)])
    config = bridge_config(
        topic,
        f"read-ahead-{uuid.uuid4().hex[:6]}",
        api_key=KEY,
        pipeline={"shutdown_grace_seconds": 2},
    )
    with running(config):
        wait_for(lambda: bool(_accepted(sandbox, UPSERT_PATH)), 60, "a first upsert")
        otps = [event("auth.otp", 1_000_000 + n, n, code=f"{n:06d}") for n in range(OTPS)]
        for otp in otps:
            produce(kafka_bootstrap, topic, [otp])
            time.sleep(0.5)
        wait_for(lambda: len(_accepted(sandbox, TRIGGER_PATH)) == OTPS, 90, "every OTP sent")
        upserts_then = len(_accepted(sandbox, UPSERT_PATH))
    sent = {r["body"]["idempotency_key"] for r in _accepted(sandbox, TRIGGER_PATH)}
    assert sent == {f"otp-{otp['id']}" for otp in otps}
    # Every OTP went out while most of the backlog still waited for the budget.
    assert upserts_then < BACKLOG // 4
