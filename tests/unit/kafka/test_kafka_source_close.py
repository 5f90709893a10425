"""KafkaSource.close() is bounded: a consumer whose close hangs (librdkafka can, after leaving
the group) does not hold the bridge's shutdown or the process's exit."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from bridge.kafka import source as source_module
from bridge.kafka.source import KafkaSource


class HangingConsumer:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.called_on: list[threading.Thread] = []

    def close(self) -> None:
        self.called_on.append(threading.current_thread())
        self.release.wait(30)


class FailingConsumer:
    def close(self) -> None:
        raise RuntimeError("broker gone")


def make(consumer: object) -> KafkaSource:
    src = KafkaSource({"bootstrap.servers": "127.0.0.1:9", "group.id": "g"}, ["events"])
    src._consumer = consumer
    src._callback_timeout = 0.0
    return src


async def test_a_close_that_hangs_is_given_up_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(source_module, "CLOSE_SLACK_SECONDS", 0.2)
    consumer = HangingConsumer()
    src = make(consumer)
    with caplog.at_level(logging.WARNING, logger="bridge.pipeline.consumer"):
        await asyncio.wait_for(src.close(), 5)
    assert "did not finish closing within 0s" in caplog.text
    assert consumer.called_on[0].daemon, "a daemon thread: it cannot hold the process at exit"
    consumer.release.set()


async def test_a_close_that_fails_raises_its_error() -> None:
    with pytest.raises(RuntimeError, match="broker gone"):
        await make(FailingConsumer()).close()
