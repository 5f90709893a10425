"""Opening the sent-email ledger without a broker: the opt-out and the topic a deployment uses."""

from __future__ import annotations

import logging

import pytest

from bridge.kafka.ledger import KafkaLedger, open_ledger
from bridge.ledger import NO_LEDGER
from bridge.settings import BridgeSettings, LedgerSettings


async def test_turning_the_ledger_off_warns_once_with_its_cost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = BridgeSettings(kafka={"group.id": "shop"}, ledger=LedgerSettings(enabled=False))
    with caplog.at_level(logging.INFO):
        async with open_ledger(config) as ledger:
            assert ledger is NO_LEDGER
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "ledger.enabled: false" in message
    assert "one-hour idempotency window" in message
    assert "email a person twice" in message


def test_a_kafka_ledger_is_named_from_the_live_group_unless_given() -> None:
    live = {"bootstrap.servers": "b:9092", "group.id": "shop"}
    assert KafkaLedger(live, LedgerSettings()).topic == "shop.sent-emails"
    assert KafkaLedger({}, LedgerSettings()).topic == "meisa-bridge.sent-emails"
    assert KafkaLedger(live, LedgerSettings(topic="keys")).topic == "keys"
