"""librdkafka properties: the user's `kafka:` section over our defaults, with the safety settings
forced, for each kind of client the bridge opens. Pure functions: no client is created here.

Group protocol. By default the live consumer uses Kafka 4's consumer group protocol
(`group.protocol=consumer`, KIP-848) with the broker's `range` assignor: it rebalances
incrementally (members that stay keep their partitions and keep committing) and co-partitions
(partition N of every subscribed topic goes to the same member, so one person's events on several
topics, keyed alike, meet on one instance). A config that sets a classic-protocol property
(`partition.assignment.strategy`, `session.timeout.ms`, `heartbeat.interval.ms`) or
`group.protocol: classic` gets the classic protocol with the cooperative-sticky assignor instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.settings import DEFAULT_GROUP_ID

# At-least-once needs manual commits of explicit offsets and no auto-store. The end-of-partition
# events tell the event-time lockstep that a partition is caught up.
FORCED: Mapping[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "isolation.level": "read_committed",
    "enable.partition.eof": True,
}
# A fetch request to a broker waits up to fetch.wait.max.ms for data (librdkafka: 500 ms) and a
# consumer has one in flight per broker, so a partition resumed while the others are caught up is
# fetched only when that wait ends: at the end of every drain that paused partitions, calls stopped
# for up to half a second. 100 ms bounds that; an idle consumer sends 10 empty fetches a second.
RESUME_FETCH_WAIT_MS = 100
DEFAULTS: Mapping[str, Any] = {
    "auto.offset.reset": "earliest",
    "group.id": DEFAULT_GROUP_ID,
    "fetch.wait.max.ms": RESUME_FETCH_WAIT_MS,
}
CONSUMER_PROTOCOL: Mapping[str, Any] = {
    "group.protocol": "consumer",
    "group.remote.assignor": "range",
}
CLASSIC_PROTOCOL: Mapping[str, Any] = {
    "group.protocol": "classic",
    "partition.assignment.strategy": "cooperative-sticky",
}
CLASSIC_ONLY = ("partition.assignment.strategy", "session.timeout.ms", "heartbeat.interval.ms")

# Properties that only a consumer understands; producers and admin clients get everything else
# from the `kafka:` section (bootstrap servers, SASL, SSL, client.id, ...).
_CONSUMER_ONLY_PREFIXES = ("group.", "auto.", "enable.auto.", "fetch.", "queued.")
_CONSUMER_ONLY = frozenset(
    {
        "isolation.level",
        "partition.assignment.strategy",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "max.poll.interval.ms",
        "enable.partition.eof",
        "check.crcs",
        "coordinator.query.interval.ms",
        "consume.callback.max.messages",
    }
)


def consumer_config(kafka: Mapping[str, Any]) -> dict[str, Any]:
    """The live consumer: user properties (SASL, SSL, ...) over our defaults, safety forced."""
    return {**DEFAULTS, **_protocol(kafka), **kafka, **FORCED}


def protocol_conflict(kafka: Mapping[str, Any]) -> str | None:
    """Why the kafka properties cannot work together, or None."""
    protocol = str(kafka.get("group.protocol", "")).lower()
    classic = [k for k in CLASSIC_ONLY if k in kafka]
    if protocol == "consumer" and classic:
        return (
            f"kafka: {', '.join(classic)} belong to the classic group protocol; with "
            "group.protocol: consumer the broker sets sessions and assignment "
            "(group.consumer.session.timeout.ms, group.remote.assignor): remove them or set "
            "group.protocol: classic"
        )
    return None


def _protocol(kafka: Mapping[str, Any]) -> Mapping[str, Any]:
    """The group protocol's defaults: consumer, unless the config asks for classic."""
    protocol = str(kafka.get("group.protocol", "")).lower()
    if protocol == "classic" or (not protocol and any(k in kafka for k in CLASSIC_ONLY)):
        return CLASSIC_PROTOCOL
    return CONSUMER_PROTOCOL


def connection_config(kafka: Mapping[str, Any]) -> dict[str, Any]:
    """Connection settings only (bootstrap, security, client.id): no consumer properties."""
    return {
        k: v
        for k, v in kafka.items()
        if k not in _CONSUMER_ONLY and not k.startswith(_CONSUMER_ONLY_PREFIXES)
    }


def producer_config(kafka: Mapping[str, Any]) -> dict[str, Any]:
    """A producer whose acknowledgement means the record is safe: idempotent, acks=all."""
    return connection_config(kafka) | {"enable.idempotence": True, "acks": "all"}


def reader_config(kafka: Mapping[str, Any], group: str) -> dict[str, Any]:
    """A consumer that reads explicit offset ranges (replay, the DLQ tools) under its own group
    name and never commits."""
    conf = {k: v for k, v in kafka.items() if not str(k).startswith("group.")}
    conf.update(
        {
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    return conf
