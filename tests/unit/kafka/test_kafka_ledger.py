"""Opening the sent-email ledger without a broker: the opt-out and the topic a deployment uses."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition

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


class LoadingConsumer:
    """A consumer whose timestamp lookup fails for partition 1 the first time (its leader is
    still loading after a broker restart), then answers; each partition holds one record."""

    def __init__(self) -> None:
        self.lookups = 0
        self.assigned: list[TopicPartition] = []

    def list_topics(self, topic: str, timeout: float) -> Any:
        parts = {p: SimpleNamespace(leader=1) for p in (0, 1)}
        return SimpleNamespace(topics={topic: SimpleNamespace(partitions=parts, error=None)})

    def offsets_for_times(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.lookups += 1
        out = []
        for tp in tps:
            found = TopicPartition(tp.topic, tp.partition, 0)
            if tp.partition == 1 and self.lookups == 1:
                found = SimpleNamespace(
                    topic=tp.topic,
                    partition=1,
                    offset=-1,
                    error=KafkaError(KafkaError.LEADER_NOT_AVAILABLE),
                )
            out.append(found)
        return out

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        return 0, 1

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = tps


def test_a_partition_that_answers_the_start_lookup_with_an_error_is_asked_again() -> None:
    ledger = KafkaLedger({"group.id": "shop"}, LedgerSettings())
    consumer = LoadingConsumer()
    ledger._consumer = consumer
    starts, ends = ledger._start_positions(time.monotonic() + 5)
    assert consumer.lookups == 2, "the error was retried, not read as an empty partition"
    assert [(tp.partition, tp.offset) for tp in starts] == [(0, 0), (1, 0)]
    assert ends == {0: 1, 1: 1}
