"""The status command on the in-memory broker: what it gathers, prints, and its exit codes."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from bridge.config import BridgeConfig, DlqSettings, ServerSettings
from bridge.errors import BrokerError
from bridge.exitcodes import ExitCode
from bridge.kafka.memory import MemoryAdmin, MemoryBroker, MemorySource
from bridge.kafka.protocols import OffsetAndMetadata, TopicPartition
from bridge.status import render
from bridge.status.command import Options, gather, status_command
from bridge.status.model import BridgeView, Budget

GROUP = "meisa-bridge"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _broker() -> MemoryBroker:
    broker = MemoryBroker()
    broker.create_topic("app.users", 2)
    broker.create_topic("dlq", 1)
    for i in range(10):
        broker.produce("app.users", b"{}", partition=i % 2)
    for _ in range(3):
        broker.produce("dlq", b"x")
    broker.commit(GROUP, {("app.users", 0): OffsetAndMetadata(2)})
    return broker


def _config() -> BridgeConfig:
    return BridgeConfig(
        kafka={"group.id": GROUP},
        topics=("app.users", "app.gone"),
        dlq=DlqSettings(topic="dlq"),
        server=ServerSettings(host="0.0.0.0", port=9400),
    )


def test_gather_reads_lag_members_the_dlq_and_the_pace_between_two_looks() -> None:
    broker = _broker()
    asyncio.run(_join(broker))
    clock = Clock()

    def sleep(seconds: float) -> None:  # the bridge commits while status waits
        clock.now += seconds
        broker.commit(GROUP, {("app.users", 0): OffsetAndMetadata(4)})
        broker.produce("app.users", b"{}", partition=1)

    status = gather(
        _config(),
        MemoryAdmin(broker),
        Options(sample_seconds=2.0, metrics_url="http://x/metrics"),
        clock=clock,
        sleep=sleep,
        fetch=lambda url: BridgeView(url, Budget(key_per_minute=60, requests_per_event=1.0)),
    )
    rows = {(p.topic, p.partition): p for p in status.partitions}
    assert rows[("app.users", 0)].committed == 4
    assert rows[("app.users", 0)].lag == 1
    assert rows[("app.users", 1)].committed is None
    assert rows[("app.users", 1)].lag == 6
    assert status.lag == 7
    assert status.missing_topics == ["app.gone"]
    assert status.dead_letters is not None
    assert status.dead_letters.records == 3
    assert [m.assignment for m in status.group.members] == [(("app.users", 0), ("app.users", 1))]
    assert all(p.owner == "member-0" for p in status.partitions)
    assert status.pace is not None
    assert status.pace.committed_per_second == 1.0  # 2 offsets in 2 s
    assert status.pace.arriving_per_second == 0.5
    assert status.pace.eta_seconds == pytest.approx(7 / 0.5)
    assert status.bridge is not None
    assert status.bridge.url == "http://x/metrics"


async def _join(broker: MemoryBroker) -> None:
    source = MemorySource(broker, ["app.users"], group=GROUP)

    class Listener:
        async def on_assign(self, tps: list[TopicPartition], committed: object) -> None:
            return None

        async def on_revoke(self, tps: list[TopicPartition]) -> dict[TopicPartition, object]:
            return {}

        async def on_lost(self, tps: list[TopicPartition]) -> None:
            return None

    await source.start(Listener(), callback_timeout=1.0)  # type: ignore[arg-type]
    await source.consume(1, 0.01)


def test_one_look_has_no_pace_and_no_metrics_read() -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError("slept")

    status = gather(_config(), MemoryAdmin(_broker()), Options(sample_seconds=0), sleep=no_sleep)
    assert status.pace is None
    assert status.bridge is None
    assert status.group.state == "empty"  # commits, no member


def _args(config: Path, **kw: object) -> argparse.Namespace:
    base = {"config": str(config), "json": False, "sample": 0.0, "metrics_url": None}
    return argparse.Namespace(**{**base, "no_metrics": True, **kw})


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "bridge.yaml"
    path.write_text(
        "kafka: {group.id: meisa-bridge}\ntopics: [app.users]\ndead_letter_topic: dlq\n"
        "meisa: {api_key: '${UNSET_KEY_FOR_STATUS}'}\nrules: []\n"
    )
    return path


def test_json_output_for_scripts_and_exit_ok(tmp_path: Path) -> None:
    out = io.StringIO()
    code = status_command(
        _args(_config_file(tmp_path), json=True), out=out, admin=MemoryAdmin(_broker())
    )
    assert code == ExitCode.OK
    doc = json.loads(out.getvalue())
    assert doc["group"] == GROUP
    assert doc["lag"] == 8
    assert doc["partitions"][0] == {
        "topic": "app.users", "partition": 0, "start": 0, "end": 5, "committed": 2, "lag": 3,
        "owner": None,
    }  # fmt: skip
    assert doc["dead_letter"] == {"topic": "dlq", "records": 3, "partitions": 1}
    assert doc["pace"] is None
    assert doc["bridge"] is None


def test_a_config_error_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kafka: [1]\n")
    assert status_command(_args(bad), admin=MemoryAdmin(_broker())) == ExitCode.REFUSED
    assert "bad.yaml:1" in capsys.readouterr().err


class _Unreachable(MemoryAdmin):
    def offset_bounds(
        self, topics: Iterable[str], timeout: float
    ) -> dict[TopicPartition, tuple[int, int]]:
        raise BrokerError("Kafka unreachable: all brokers down")


def test_kafka_not_answering_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = status_command(_args(_config_file(tmp_path)), admin=_Unreachable(MemoryBroker()))
    assert code == ExitCode.REFUSED
    assert "Kafka unreachable" in capsys.readouterr().err


def test_the_text_output_shows_each_part() -> None:
    broker = _broker()
    asyncio.run(_join(broker))
    clock = Clock()

    def sleep(seconds: float) -> None:
        clock.now += seconds

    budget = Budget(per_minute=30, share=0.5, key_per_minute=60, key_per_hour=3600,
                    throttled="retry_after", requests_per_event=2.0)  # fmt: skip
    status = gather(
        _config(),
        MemoryAdmin(broker),
        Options(sample_seconds=5, metrics_url="http://b/metrics"),
        clock=clock,
        sleep=sleep,
        fetch=lambda url: BridgeView(url, budget),
    )
    text = render.as_text(status)
    assert "group meisa-bridge: consumer protocol, stable, 1 member, assignor range" in text
    assert "app.users  0          2          5    3    #1" in text
    assert "total lag 8" in text
    assert "#1 member-0 client memory host 127.0.0.1: app.users[0,1]" in text
    assert "dead-letter topic dlq: 3 records" in text
    assert (
        "pace over 5.0 s: 0.0 messages/s committed, 0.0/s arriving; the lag is not shrinking"
        in text
    )
    assert "this replica's budget 30/min, share 0.50 of the key's 60/min and 3600/h" in text
    assert "throttled: retry_after" in text
    # 8 messages x 2 requests at 1 request/s
    assert "2.00 Meisa requests per message; at the key's full budget: 16s" in text


def test_an_unreachable_metrics_endpoint_is_reported_not_fatal() -> None:
    status = gather(
        _config(),
        MemoryAdmin(_broker()),
        Options(sample_seconds=0, metrics_url="http://127.0.0.1:1/metrics"),
        fetch=lambda url: BridgeView(url, error="connection refused"),
    )
    assert "http://127.0.0.1:1/metrics: not reachable (connection refused)" in render.as_text(
        status
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0s"), (42, "42s"), (185, "3m05s"), (3720, "1h02m"), (None, "not shrinking")],
)
def test_durations_read_as_people_write_them(seconds: float | None, text: str) -> None:
    assert render.duration(seconds) == text
