"""The sent-email ledger: a trigger delivered again after Meisa's one-hour window emails once.

The second delivery is the same Kafka message read by a second consumer group (as a replay, a
reset of offsets or a long-lost partition would read it), two hours later on the sandbox's clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bridge_harness import ConfigFactory, event, produce, reached_end, running, wait_for

from bridge.sandbox.testing import SandboxHandle

pytestmark = pytest.mark.integration

TWO_HOURS = 2 * 3600


def _deliver_twice(
    kafka_bootstrap: str,
    sandbox: SandboxHandle,
    topic: str,
    config: Callable[[str], Path],
) -> None:
    otp = event("auth.otp", 1, 1, code="123456")
    produce(kafka_bootstrap, topic, [otp])
    for _ in range(2):
        group = f"ledger-{uuid.uuid4().hex[:8]}"
        with running(config(group)):
            wait_for(reached_end(kafka_bootstrap, group, topic, 1), 60, "the OTP's offset")
        sandbox.advance_clock(TWO_HOURS)


def test_a_trigger_delivered_again_two_hours_later_is_emailed_once(
    kafka_bootstrap: str,
    sandbox: SandboxHandle,
    make_topic: Any,
    bridge_config: ConfigFactory,
) -> None:
    topic = make_topic(1)
    ledger = {"topic": f"ledger-{uuid.uuid4().hex[:10]}", "partitions": 2}
    _deliver_twice(
        kafka_bootstrap,
        sandbox,
        topic,
        lambda group: bridge_config(topic, group, extra={"ledger": ledger}),
    )
    sends = sandbox.sends(trigger_key="verification_code")
    assert len(sends) == 1
    assert sends[0]["duplicates"] == 0  # the second delivery never reached Meisa
    assert len(sandbox.requests("/api/v1/emails/trigger")) == 1


def test_without_a_ledger_meisa_emails_again_after_its_hour(
    kafka_bootstrap: str,
    sandbox: SandboxHandle,
    make_topic: Any,
    bridge_config: ConfigFactory,
) -> None:
    topic = make_topic(1)
    _deliver_twice(kafka_bootstrap, sandbox, topic, lambda group: bridge_config(topic, group))
    assert len(sandbox.sends(trigger_key="verification_code")) == 2
