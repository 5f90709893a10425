"""KafkaSource.close() is bounded: a consumer whose close hangs (librdkafka can, after leaving
the group) does not hold the bridge's shutdown or the process's exit."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading

import pytest
from confluent_kafka import TopicPartition as KafkaTopicPartition

from bridge.kafka import source as source_module
from bridge.kafka.protocols import OffsetAndMetadata
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


FROZEN_CLOSE = """
import asyncio, ctypes
from bridge.kafka import source
from bridge.kafka.source import KafkaSource

class Frozen:
    def close(self):
        ctypes.PyDLL(None).sleep(60)  # a C call that keeps the GIL: no Python runs meanwhile

source.CLOSE_SLACK_SECONDS = 0.2
source.CLOSE_WATCHDOG_SLACK_SECONDS = 0.5
src = KafkaSource({"bootstrap.servers": "127.0.0.1:9", "group.id": "g"}, ["events"])
src._consumer = Frozen()
src._callback_timeout = 0.0
asyncio.run(src.close())
print("closed")
"""


def test_a_close_frozen_with_the_gil_held_ends_the_process_with_every_stack() -> None:
    # The asyncio timeout cannot fire while a C call holds the GIL; faulthandler's watchdog can.
    done = subprocess.run(
        [sys.executable, "-c", FROZEN_CLOSE],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "closed" not in done.stdout
    assert "Timeout (" in done.stderr
    assert "in close" in done.stderr  # the frozen call's stack, for the operator


async def test_the_watchdog_is_disarmed_once_close_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    armed: list[float] = []
    monkeypatch.setattr(
        source_module.faulthandler, "dump_traceback_later", lambda t, **kw: armed.append(t)
    )
    monkeypatch.setattr(source_module.faulthandler, "cancel_dump_traceback_later", armed.clear)

    class Quick:
        def close(self) -> None:
            pass

    await make(Quick()).close()
    assert armed == []


class RevokeListener:
    async def on_revoke(self, tps: object) -> dict[tuple[str, int], OffsetAndMetadata]:
        return {("events", 0): OffsetAndMetadata(7)}


class CommittingConsumer:
    def __init__(self) -> None:
        self.commits: list[object] = []

    def commit(self, offsets: object, asynchronous: bool) -> list[object]:
        self.commits.append(offsets)
        return []


@pytest.mark.parametrize(("closing", "commits"), [(False, 1), (True, 0)])
def test_a_revoke_served_inside_close_commits_nothing(closing: bool, commits: int) -> None:
    # The final commit came just before close(); a commit there meets a member being torn down.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        consumer = CommittingConsumer()
        src = make(consumer)
        src._loop, src._listener, src._closing = loop, RevokeListener(), closing  # type: ignore[assignment]
        src._callback_timeout = 5.0
        src._revoked(consumer, [KafkaTopicPartition("events", 0)])
        assert len(consumer.commits) == commits
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
