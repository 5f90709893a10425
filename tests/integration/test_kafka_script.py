"""scripts/kafka.sh: one broker per data directory, clean stop, data kept across restarts, reset.

The shared session broker is only asked for its status and started a second time. Stop, restart
and reset run against a second broker on free ports with its own data directory.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "kafka.sh"


def kafka_sh(verb: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), verb],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def pid_in(output: str) -> int:
    match = re.search(r"\(pid (\d+)\)", output)
    assert match, output
    return int(match.group(1))


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def two_free_ports() -> tuple[int, int]:
    with socket.socket() as first, socket.socket() as second:
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        return int(first.getsockname()[1]), int(second.getsockname()[1])


@pytest.mark.integration
def test_second_start_is_a_no_op_on_the_running_broker(kafka_bootstrap: str) -> None:
    env = {"KAFKA_PORT": kafka_bootstrap.rsplit(":", 1)[1]}
    before = kafka_sh("status", env)
    assert before.returncode == 0, before.stdout + before.stderr

    again = kafka_sh("start", env)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "already running" in again.stdout
    after = kafka_sh("status", env)
    assert after.returncode == 0
    assert pid_in(before.stdout) == pid_in(again.stdout) == pid_in(after.stdout)


@pytest.mark.integration
def test_start_refuses_a_port_taken_by_another_process(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {"KAFKA_PORT": kafka_bootstrap.rsplit(":", 1)[1], "KAFKA_DATA_DIR": str(tmp_path)}

    result = kafka_sh("start", env)

    assert result.returncode != 0
    assert "in use by another process" in result.stderr


@pytest.fixture
def second_broker(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a second broker on free ports; stopped and wiped afterwards."""
    port, controller_port = two_free_ports()
    env = {
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller_port),
        "KAFKA_DATA_DIR": str(tmp_path / "kafka"),
    }
    yield env
    kafka_sh("reset", env)


@pytest.mark.integration
def test_failed_start_exits_non_zero_and_shows_the_log(second_broker: dict[str, str]) -> None:
    result = kafka_sh("start", {**second_broker, "KAFKA_HEAP_OPTS": "-Xmx256m -XX:+NoSuchOption"})

    assert result.returncode != 0
    assert "NoSuchOption" in result.stderr
    assert "exited during startup" in result.stderr
    assert kafka_sh("status", second_broker).returncode == 1


def write_marker(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(topic, value=b"kept")
    assert producer.flush(30) == 0


def stored_messages(bootstrap: str, topic: str) -> int | None:
    """How many messages the topic holds, or None if it does not exist."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic not in admin.list_topics(timeout=10).topics:
        return None
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kafka-sh-test"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()
    return int(high - low)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stop_frees_the_port_restart_keeps_data_and_reset_wipes_it(
    second_broker: dict[str, str],
) -> None:
    port = int(second_broker["KAFKA_PORT"])
    bootstrap = f"127.0.0.1:{port}"
    data_dir = Path(second_broker["KAFKA_DATA_DIR"])
    data_dir.mkdir(parents=True)
    (data_dir / "kafka.pid").write_text("999999\n")  # stale, from a broker long gone

    first = kafka_sh("start", second_broker)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "stale pid file" in first.stdout
    assert (data_dir / "logs" / "server.log").is_file()
    write_marker(bootstrap, "kept-across-restarts")

    stopped = kafka_sh("stop", second_broker)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not port_is_open(port)
    assert kafka_sh("status", second_broker).returncode == 1
    assert "not running" in kafka_sh("stop", second_broker).stdout

    restarted = kafka_sh("start", second_broker)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert pid_in(restarted.stdout) != pid_in(first.stdout)
    assert stored_messages(bootstrap, "kept-across-restarts") == 1

    wiped = kafka_sh("reset", second_broker)
    assert wiped.returncode == 0, wiped.stdout + wiped.stderr
    assert not port_is_open(port)
    assert kafka_sh("start", second_broker).returncode == 0
    assert stored_messages(bootstrap, "kept-across-restarts") is None
