"""A producer (bridge.kafka.protocols.Producer) on confluent-kafka: `await send(...)` returns once
the broker acknowledged the record, and raises BrokerError when it was refused or never
acknowledged, so a caller can count on what it wrote.

Delivery reports are served by `poll()` on the event loop's thread while records are pending (a
short interval: a poison offset waits for its report).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Producer as KafkaClientProducer

from bridge.errors import BrokerError
from bridge.kafka.properties import producer_config
from bridge.kafka.protocols import Headers, TopicState
from bridge.kafka.source import broker_error

TIMEOUT = 15.0  # a blocking write of a command-line tool; a healthy cluster answers in ms
POLL_SECONDS = 0.005


class KafkaProducer:
    """Idempotent, acks=all (bridge.kafka.properties.producer_config)."""

    def __init__(self, kafka: Mapping[str, Any], *, client: Any = None) -> None:
        if client is None:
            client = KafkaClientProducer(
                producer_config(kafka), logger=logging.getLogger("bridge.kafka")
            )
        self._client = client
        self._pending = 0
        self._pump: asyncio.Task[None] | None = None

    async def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: Any, msg: Any) -> None:
            # Runs inside poll() on the event loop thread (see _poll).
            if done.done():
                return
            if err is not None:
                done.set_exception(BrokerError(str(err)))
            else:
                done.set_result(None)

        extra: dict[str, Any] = {}
        if partition is not None:
            extra["partition"] = partition
        if timestamp_ms is not None:
            extra["timestamp"] = timestamp_ms
        try:
            self._client.produce(
                topic,
                value=value,
                key=key,
                headers=list(headers),
                on_delivery=on_delivery,
                **extra,
            )
        except KafkaException as exc:  # e.g. larger than message.max.bytes
            raise broker_error(exc) from None
        except BufferError as exc:  # the local queue is full
            raise BrokerError(str(exc)) from None
        self._pending += 1
        if self._pump is None or self._pump.done():
            self._pump = loop.create_task(self._poll())
        try:
            await done
        finally:
            self._pending -= 1

    async def _poll(self) -> None:
        while self._pending > 0:
            self._client.poll(0)
            await asyncio.sleep(POLL_SECONDS)

    def send_sync(
        self, topic: str, *, partition: int, value: bytes | None, headers: Headers
    ) -> None:
        failures: list[Any] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(err)

        self._client.produce(
            topic, value=value, partition=partition, headers=list(headers), on_delivery=on_delivery
        )
        if self._client.flush(TIMEOUT) != 0 or failures:
            raise BrokerError(str(failures[0]) if failures else "not acknowledged in time")

    def topic_state(self, topic: str, timeout: float) -> TopicState:
        try:
            meta = self._client.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            return TopicState("unknown", str(broker_error(exc)))
        found = meta.topics.get(topic)
        error = found.error if found is not None else None
        if error is None:
            return TopicState("ok")
        if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return TopicState("missing", str(error))
        if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            return TopicState("forbidden", str(error))
        return TopicState("unknown", str(error))

    def flush(self, timeout: float) -> int:
        return int(self._client.flush(timeout))
