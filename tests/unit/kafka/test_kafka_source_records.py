"""A consumed confluent-kafka Message becomes a Record with its bytes and headers untouched."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from bridge.events import Record
from bridge.kafka.source import broker_error, record_of


def test_a_message_keeps_its_key_value_headers_and_timestamp() -> None:
    message = Message(
        topic="events", partition=3, offset=42, key=b"usr_1", value=b'{"a": 1}',
        headers=[("trace", b"abc"), ("empty", None)], timestamp=(1, 1700000000000),
    )  # fmt: skip
    assert record_of(message) == Record(
        topic="events", partition=3, offset=42, key=b"usr_1", value=b'{"a": 1}',
        headers=(("trace", b"abc"), ("empty", None)), timestamp=1700000000000,
    )  # fmt: skip


def test_a_message_without_key_headers_or_timestamp_has_none_of_them() -> None:
    record = record_of(Message(topic="events", partition=0, offset=7, value=None))
    assert (record.key, record.value, record.headers, record.timestamp) == (None, None, (), None)


def test_text_keys_and_header_values_become_utf8_bytes() -> None:
    message = Message(
        topic="events", partition=0, offset=1, key="usr_é", value="{}", headers={"h": "ü"}
    )
    record = record_of(message)
    assert (record.key, record.value, record.headers) == (
        "usr_é".encode(),
        b"{}",
        (("h", "ü".encode()),),
    )


@pytest.mark.parametrize(
    ("code", "unreachable"),
    [
        (KafkaError._TRANSPORT, True),
        (KafkaError._ALL_BROKERS_DOWN, True),
        (KafkaError.COORDINATOR_NOT_AVAILABLE, True),
        (KafkaError.NOT_COORDINATOR, True),
        (KafkaError.ILLEGAL_GENERATION, False),
        (KafkaError.UNKNOWN_MEMBER_ID, False),
        (KafkaError.OFFSET_METADATA_TOO_LARGE, False),
    ],
)
def test_a_broker_out_of_reach_is_told_from_one_that_answered_no(
    code: int, unreachable: bool
) -> None:
    error = broker_error(KafkaException(KafkaError(code)))
    assert error.unreachable is unreachable
    assert str(error)  # librdkafka's own words
