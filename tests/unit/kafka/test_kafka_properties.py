"""Consumer settings: the consumer group protocol with range by default, classic on request."""

from __future__ import annotations

from bridge.kafka.properties import consumer_config, protocol_conflict


def test_the_default_is_the_consumer_protocol_with_the_range_assignor() -> None:
    conf = consumer_config({"bootstrap.servers": "b:9092"})
    assert conf["group.protocol"] == "consumer"
    assert conf["group.remote.assignor"] == "range"
    assert "partition.assignment.strategy" not in conf
    assert conf["enable.partition.eof"] is True
    assert conf["enable.auto.commit"] is False


def test_a_classic_only_property_selects_the_classic_protocol() -> None:
    conf = consumer_config({"session.timeout.ms": "6000"})
    assert conf["group.protocol"] == "classic"
    assert conf["partition.assignment.strategy"] == "cooperative-sticky"
    assert "group.remote.assignor" not in conf
    assert protocol_conflict({"session.timeout.ms": "6000"}) is None


def test_classic_properties_with_the_consumer_protocol_are_refused_with_a_reason() -> None:
    reason = protocol_conflict({"group.protocol": "consumer", "session.timeout.ms": "6000"})
    assert reason is not None
    assert "session.timeout.ms" in reason
    assert "group.protocol: classic" in reason


def test_user_properties_win_over_defaults_but_not_over_safety() -> None:
    conf = consumer_config({"group.remote.assignor": "uniform", "enable.auto.commit": True})
    assert conf["group.remote.assignor"] == "uniform"
    assert conf["enable.auto.commit"] is False


def test_a_fetch_waits_at_most_a_tenth_of_a_second_unless_the_user_says_otherwise() -> None:
    assert consumer_config({})["fetch.wait.max.ms"] == 100
    assert consumer_config({"fetch.wait.max.ms": 500})["fetch.wait.max.ms"] == 500
