"""The Kafka sent-email ledger on the real broker: start-up races, load, and sharing keys."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from bridge.config import LedgerSettings
from bridge.errors import AlreadySent
from bridge.kafka.ledger import KafkaLedger
from bridge.meisa.calls import MeisaCall

pytestmark = pytest.mark.integration


def _trigger(key: str) -> MeisaCall:
    body = {"trigger_key": "receipt", "to_email": "a@example.com", "idempotency_key": key}
    return MeisaCall(kind="trigger", body=body, contact_key="a@example.com")


def _settings() -> LedgerSettings:
    return LedgerSettings(topic=f"ledger-{uuid.uuid4().hex[:10]}", partitions=3)


def test_instances_starting_together_on_a_missing_topic_all_load_it(kafka_bootstrap: str) -> None:
    settings = _settings()
    ledgers = [KafkaLedger({"bootstrap.servers": kafka_bootstrap}, settings) for _ in range(4)]
    errors: list[BaseException] = []

    def open_one(ledger: KafkaLedger) -> None:
        try:
            ledger.open()
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == []
    finally:
        for ledger in ledgers:
            ledger.close()


def test_a_key_one_instance_records_is_known_to_another_and_to_a_later_start(
    kafka_bootstrap: str,
) -> None:
    settings = _settings()
    kafka = {"bootstrap.servers": kafka_bootstrap}
    first, second = KafkaLedger(kafka, settings), KafkaLedger(kafka, settings)
    first.open()
    second.open()
    try:
        asyncio.run(first.record(_trigger("receipt-42")))
        deadline = time.monotonic() + 30
        while "receipt-42" not in second.index and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(AlreadySent):
            second.check(_trigger("receipt-42"))
    finally:
        first.close()
        second.close()
    later = KafkaLedger(kafka, settings)
    later.open()
    try:
        assert "receipt-42" in later.index
        assert "receipt-43" not in later.index
    finally:
        later.close()
