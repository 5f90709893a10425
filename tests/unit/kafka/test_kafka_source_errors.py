"""The consumer's error callback: a lost broker connection reaches the pipeline at once (it
closes its fence), other client errors are only logged."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from confluent_kafka import KafkaError

from bridge.kafka.source import KafkaSource


def make() -> tuple[KafkaSource, list[str]]:
    src = KafkaSource({"bootstrap.servers": "127.0.0.1:9", "group.id": "g"}, ["events"])
    told: list[str] = []
    src.on_unreachable = lambda: told.append(threading.current_thread().name)
    src._loop = asyncio.get_running_loop()
    return src, told


def test_the_callback_is_given_to_the_client() -> None:
    src = KafkaSource({"bootstrap.servers": "127.0.0.1:9", "group.id": "g"}, ["events"])
    assert src._conf["error_cb"] == src._client_error


@pytest.mark.parametrize("code", [KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN])
async def test_a_lost_broker_connection_is_passed_to_the_loop(code: int) -> None:
    src, told = make()
    caller = threading.Thread(target=src._client_error, args=(KafkaError(code),), name="rdk")
    caller.start()
    caller.join()
    await asyncio.sleep(0.01)
    assert told == [threading.current_thread().name], "called once, on the loop's thread"


async def test_other_client_errors_are_logged_not_passed_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    src, told = make()
    with caplog.at_level(logging.WARNING, logger="bridge.pipeline.consumer"):
        src._client_error(KafkaError(KafkaError._MSG_TIMED_OUT))
        await asyncio.sleep(0.01)
    assert told == []
    assert "kafka client:" in caplog.text


async def test_a_closed_loop_is_not_an_error() -> None:
    src, told = make()
    loop = asyncio.new_event_loop()
    loop.close()
    src._loop = loop
    src._client_error(KafkaError(KafkaError._TRANSPORT))
    assert told == []
