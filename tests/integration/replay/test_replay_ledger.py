"""Replay and the sent-email ledger: a trigger the live bridge sent is not sent again by a replay
that opts triggers in, even after Meisa's one-hour idempotency window."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import replay_env as env

from bridge.config import LedgerSettings
from bridge.kafka.ledger import KafkaLedger
from bridge.meisa.calls import MeisaCall

pytestmark = pytest.mark.integration


def _record_sent(bootstrap: str, settings: LedgerSettings, idempotency_key: str) -> None:
    """What the live bridge wrote after Meisa accepted the trigger."""
    ledger = KafkaLedger({"bootstrap.servers": bootstrap}, settings)
    ledger.open()
    try:
        body = {"trigger_key": "verification_code", "idempotency_key": idempotency_key}
        asyncio.run(ledger.record(MeisaCall(kind="trigger", body=body, contact_key="x")))
    finally:
        ledger.close()


def test_replay_does_not_resend_a_trigger_the_ledger_holds(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: Any,
    replay_config: env.ConfigFactory,
) -> None:
    topic = make_topic()
    rules = [dict(r) for r in env.RULES]
    otp = next(r for r in rules if r["name"] == "otp")
    otp["do"] = [{**otp["do"][0], "on_replay": "send"}]
    sent, fresh = env._event("auth.otp", 1, 1, code="1"), env._event("auth.otp", 2, 2, code="2")
    env.produce(kafka_bootstrap, topic, [sent, fresh])
    settings = LedgerSettings(topic=f"ledger-{uuid.uuid4().hex[:10]}", partitions=1)
    _record_sent(kafka_bootstrap, settings, f"{sent['id']}:otp:0")  # the rule's default key
    sandbox.advance_clock(2 * 3600)  # Meisa itself no longer remembers the key
    ledger = {"topic": settings.topic, "partitions": 1}
    config = replay_config(topic, rules=rules, sections={"ledger": ledger})
    done = env.cli(
        "replay",
        "--config",
        config,
        "--from",
        "earliest",
        "--state-dir",
        tmp_path / "state",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout.strip().splitlines()[-1])
    assert [s["to_email"] for s in sandbox.sends()] == [fresh["data"]["email"]]
