"""DLQ headers, producer config, the DLQ producer over a client double, and the breaker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from hypothesis import given
from hypothesis import strategies as st

from bridge.dlq import (
    DLQ_HEADERS,
    DeadLetter,
    DeadLetterProducer,
    DeadLetterWriteFailed,
    DlqBreaker,
    Failure,
    build_dlq_headers,
    dlq_record_headers,
)
from bridge.errors import DlqBreakerTripped, RejectedCall, StartupRefused
from bridge.events import Record
from bridge.kafka.memory import MemoryBroker, MemoryProducer
from bridge.kafka.producer import KafkaProducer
from bridge.kafka.properties import producer_config


def letter(**kw: Any) -> DeadLetter:
    record = Record(
        topic="app.users",
        partition=3,
        offset=42,
        key=b"\x00usr_1",
        value=b'{"bad": ',
        headers=(("trace", b"\xff\x01"), ("empty", None)),
        timestamp=1700000000123,
    )
    failure = Failure(
        error=RejectedCall("to_email jane@example.com invalid", status=400, endpoint="trigger"),
        stage="deliver",
        rule="otp-email",
        attempts=2,
    )
    return DeadLetter(record, failure, **kw)


def test_headers_name_everything_and_mask_emails() -> None:
    headers = dict(
        build_dlq_headers(
            error=RejectedCall("jane@example.com refused", status=400, endpoint="trigger"),
            stage="deliver",
            rule="otp-email",
            topic="app.auth",
            partition=1,
            offset=9,
            timestamp=None,
            attempts=3,
        )
    )
    assert list(headers) == list(DLQ_HEADERS)
    assert headers["meisa-bridge.error.class"] == b"RejectedCall"
    assert b"jane@example.com" not in headers["meisa-bridge.error.message"]
    assert headers["meisa-bridge.rule"] == b"otp-email"
    assert headers["meisa-bridge.stage"] == b"deliver"
    assert headers["meisa-bridge.offset"] == b"9"
    assert headers["meisa-bridge.timestamp"] == b""
    assert headers["meisa-bridge.attempts"] == b"3"


def test_record_headers_keep_original_headers_verbatim_first() -> None:
    headers = dlq_record_headers(letter())
    assert headers[:2] == [("trace", b"\xff\x01"), ("empty", None)]
    assert [name for name, _ in headers[2:]] == list(DLQ_HEADERS)


def test_producer_config_is_idempotent_and_drops_consumer_properties() -> None:
    conf = producer_config(
        {
            "bootstrap.servers": "b:9092",
            "group.id": "g",
            "auto.offset.reset": "latest",
            "security.protocol": "SASL_SSL",
            "sasl.password": "pw",
            "isolation.level": "read_committed",
            "acks": "1",
        }
    )
    assert conf == {
        "bootstrap.servers": "b:9092",
        "security.protocol": "SASL_SSL",
        "sasl.password": "pw",
        "enable.idempotence": True,
        "acks": "all",
    }


class FakeProducer:
    def __init__(self, err: Any = None) -> None:
        self.produced: list[dict[str, Any]] = []
        self.callbacks: list[Any] = []
        self.err = err

    def produce(self, topic: str, **kw: Any) -> None:
        self.produced.append({"topic": topic, **kw})
        self.callbacks.append(kw["on_delivery"])

    def poll(self, timeout: float) -> int:
        callbacks, self.callbacks = self.callbacks, []
        for cb in callbacks:
            cb(self.err, None)
        return len(callbacks)

    def flush(self, timeout: float) -> int:
        return 0


async def test_send_returns_after_the_delivery_report_with_original_bytes() -> None:
    fake = FakeProducer()
    producer = DeadLetterProducer(KafkaProducer({}, client=fake), "dlq")
    await asyncio.wait_for(producer.send(letter()), 5)
    [record] = fake.produced
    assert record["topic"] == "dlq"
    assert record["key"] == b"\x00usr_1"
    assert record["value"] == b'{"bad": '


async def test_send_raises_when_the_broker_refuses() -> None:
    producer = DeadLetterProducer(
        KafkaProducer({}, client=FakeProducer(err="MSG_TIMED_OUT")), "dlq"
    )
    with pytest.raises(DeadLetterWriteFailed):
        await asyncio.wait_for(producer.send(letter()), 5)


class RefusingProducer(FakeProducer):
    """librdkafka refuses some records in produce() itself (too large, local queue full)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def produce(self, topic: str, **kw: Any) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)), BufferError("queue full")],
)
async def test_send_raises_when_produce_refuses_the_record(error: BaseException) -> None:
    # Anything else would end the DLQ task without a halt: the partition would stop committing
    # and the bridge would keep running without saying why.
    producer = DeadLetterProducer(KafkaProducer({}, client=RefusingProducer(error)), "dlq")
    with pytest.raises(DeadLetterWriteFailed, match="dlq"):
        await asyncio.wait_for(producer.send(letter()), 5)


async def test_a_dead_letter_keeps_the_original_bytes_on_the_in_memory_broker() -> None:
    broker = MemoryBroker()
    broker.create_topic("dlq")
    await DeadLetterProducer(MemoryProducer(broker), "dlq").send(letter())
    [record] = broker.log("dlq", 0)
    assert (record.key, record.value) == (b"\x00usr_1", b'{"bad": ')
    assert dict(record.headers)["meisa-bridge.offset"] == b"42"


def test_a_missing_dead_letter_topic_refuses_the_start() -> None:
    with pytest.raises(StartupRefused, match="does not exist"):
        DeadLetterProducer(MemoryProducer(MemoryBroker()), "dlq").check_topic()


def test_breaker_trips_on_consecutive_poison() -> None:
    breaker = DlqBreaker(max_consecutive=3, max_ratio=0, window=10)
    breaker.record(True)
    breaker.record(True)
    breaker.record(False)
    breaker.record(True)
    breaker.record(True)
    with pytest.raises(DlqBreakerTripped):
        breaker.record(True)


def test_breaker_trips_on_ratio_once_window_is_full() -> None:
    breaker = DlqBreaker(max_consecutive=0, max_ratio=0.5, window=4)
    for poison in (True, False, True):
        breaker.record(poison)  # window not full yet
    with pytest.raises(DlqBreakerTripped):
        breaker.record(True)


def _trips(breaker: DlqBreaker, poison: bool) -> bool:
    try:
        breaker.record(poison)
    except DlqBreakerTripped:
        return True
    return False


def test_breaker_tolerates_a_ratio_at_the_limit() -> None:
    breaker = DlqBreaker(max_consecutive=0, max_ratio=0.5, window=4)
    outcomes = [_trips(breaker, p) for p in (True, False, True, False, True, False, True)]
    assert outcomes == [False] * 7  # every full window holds exactly 2 of 4 poison
    assert _trips(breaker, True)  # T F T T: 3 of 4 is past the limit


@given(
    outcomes=st.lists(st.booleans(), max_size=60),
    window=st.integers(1, 8),
    max_ratio=st.sampled_from([0.0, 0.25, 0.5, 0.75]),
)
def test_breaker_fill_and_trip_follow_the_last_window_of_outcomes(
    outcomes: list[bool], window: int, max_ratio: float
) -> None:
    breaker = DlqBreaker(max_consecutive=0, max_ratio=max_ratio, window=window)
    for n, poison in enumerate(outcomes):
        last = outcomes[max(0, n + 1 - window) : n + 1]
        full = len(last) == window
        assert _trips(breaker, poison) == (
            max_ratio > 0 and full and sum(last) / window > max_ratio
        )
        expected = sum(last) / (max_ratio * window) if max_ratio > 0 else 0.0
        assert breaker.fill()[1] == pytest.approx(expected)
