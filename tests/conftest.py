"""Shared fixtures: the local Kafka broker and a factory for throwaway topics.

The broker is the real one from `scripts/kafka.sh` (`make test` starts it; `make kafka-up` by hand).
Its address comes from KAFKA_BOOTSTRAP, else 127.0.0.1:KAFKA_PORT, else 127.0.0.1:9092.
Every test that uses `kafka_bootstrap` (directly or through `make_topic`) is marked `integration`.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic, TopicMetadata
from hypothesis import settings as hypothesis_settings

ADMIN_TIMEOUT_S = 30.0

# Property tests assert outcomes, never speed: no per-example deadline, which a loaded machine
# would miss at random.
hypothesis_settings.register_profile("bridge", deadline=None)
hypothesis_settings.load_profile("bridge")


def kafka_bootstrap_address() -> str:
    default = f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
    return os.environ.get("KAFKA_BOOTSTRAP", default)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos", action="store_true", help="also run the chaos suite (tests marked `chaos`)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_chaos = pytest.mark.skip(reason="the chaos suite runs with --chaos (or `make chaos`)")
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
        if item.get_closest_marker("chaos") and not config.getoption("--chaos"):
            item.add_marker(skip_chaos)
    # The chaos suite last: it restarts the broker, and the other tests' results come first.
    items.sort(key=lambda item: item.get_closest_marker("chaos") is not None)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The broker's bootstrap address, after checking that it answers."""
    bootstrap = kafka_bootstrap_address()
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=10)
    except KafkaException as exc:
        reason = str(exc)
    else:
        return bootstrap
    pytest.fail(
        f"no Kafka broker answers at {bootstrap} ({reason}). Start it with `make kafka-up` "
        "(`make test` starts it for you), or point KAFKA_BOOTSTRAP at a running broker.",
        pytrace=False,
    )


class TopicFactory(Protocol):
    def __call__(
        self,
        partitions: int = 1,
        name_prefix: str | None = None,
        config: dict[str, str] | None = None,
    ) -> str: ...


@pytest.fixture
def make_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[TopicFactory]:
    """Creates uniquely named topics (ready to use on return) and deletes them after the test."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    created: list[str] = []
    default_prefix = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:60]

    def make(
        partitions: int = 1, name_prefix: str | None = None, config: dict[str, str] | None = None
    ) -> str:
        name = f"{name_prefix or default_prefix}-{uuid.uuid4().hex[:10]}"
        new = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
        admin.create_topics([new], operation_timeout=ADMIN_TIMEOUT_S)[name].result(ADMIN_TIMEOUT_S)
        created.append(name)
        _wait_until_ready(admin, name, partitions)
        return name

    yield make
    _delete_topics(admin, created)


@pytest.fixture
def ledger_topics(kafka_bootstrap: str) -> Iterator[Callable[[Path], None]]:
    """`ledger_topics(config_path)`: the sent-email ledger topic a bridge, replay or redrive of
    that config creates (`<group.id>.sent-emails` unless the config names one) is deleted after
    the test, as `make_topic` deletes its topics."""
    from bridge.config import load_config
    from bridge.errors import ConfigErrors

    topics: list[str] = []

    def track(path: Path) -> None:
        try:
            config = load_config(path, strict_env=False)
        except ConfigErrors:  # a config a test breaks on purpose starts nothing
            return
        topic = config.ledger.topic_for(config.kafka)
        if topic is not None and topic not in topics:
            topics.append(topic)

    yield track
    _delete_topics(AdminClient({"bootstrap.servers": kafka_bootstrap}), topics)


def _wait_until_ready(admin: AdminClient, topic: str, partitions: int) -> None:
    # The controller has committed the topic once create_topics returns; the broker's metadata
    # follows a moment later, and producers fail fast on a partition without a leader.
    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    while time.monotonic() < deadline:
        if _has_leaders(admin.list_topics(topic=topic, timeout=5).topics.get(topic), partitions):
            return
        time.sleep(0.05)
    raise TimeoutError(f"topic {topic} has no leader for all {partitions} partitions")


def _has_leaders(meta: TopicMetadata | None, partitions: int) -> bool:
    if meta is None or meta.error is not None or len(meta.partitions) != partitions:
        return False
    return all(p.leader >= 0 for p in meta.partitions.values())


def _delete_topics(admin: AdminClient, topics: list[str]) -> None:
    if not topics:
        return
    for future in admin.delete_topics(topics, operation_timeout=ADMIN_TIMEOUT_S).values():
        try:
            future.result(ADMIN_TIMEOUT_S)
        except KafkaException as exc:
            # a test may delete its own topic; anything else is a real failure
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
