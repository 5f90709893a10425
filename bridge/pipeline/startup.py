"""Start-up checks of `meisa-bridge run`: refuse to start, with a message that says why.

The configuration has rules, topics and an API key; `GET /ping` answers and the key is accepted;
the key has every scope the rules need (the message names each missing scope and the rules that
need it); the Kafka brokers answer and the consumer group protocol settings do not conflict; the
dead-letter topic exists (`open_dead_letter`) and the health server's port is free
(`bind_server`). Each refusal is a StartupRefused (exit code REFUSED).
"""

from __future__ import annotations

import asyncio
import logging

from bridge.config import BridgeConfig
from bridge.dlq import DeadLetterProducer
from bridge.errors import (
    BrokerError,
    HaltError,
    RetryableError,
    StartupRefused,
    TlsError,
    Unauthorized,
)
from bridge.meisa.client import MeisaClient, tls_refusal
from bridge.meisa.models import PingInfo
from bridge.meisa.scopes import format_missing, missing_scopes
from bridge.observability import HealthServer, Metrics

log = logging.getLogger("bridge.run")

SUPPRESSION_SCOPE = "contacts:read"  # reads the unsubscribed list; optional (422s still skip)
PING_ATTEMPTS = 5  # ~15 s of backoff: long enough for a sandbox or a proxy to come up
KAFKA_PROBE_SECONDS = 15.0  # as long as the ping retries: a broker that is starting may answer


async def startup_check(
    client: MeisaClient, config: BridgeConfig, metrics: Metrics | None = None
) -> PingInfo:
    """GET /ping, then compare the key's scopes with what the rules need."""
    if not config.rules:
        # Consuming without rules would commit every event with no call: refuse instead.
        raise StartupRefused(f"{config.source}: no rules (add `rules:` or `rules_file:`)")
    if not config.topics:
        raise StartupRefused(f"{config.source}: no topics to consume (add `topics:`)")
    if not config.meisa.api_key:
        raise StartupRefused(
            "no Meisa API key: set MEISA_API_KEY (or meisa.api_key / meisa.api_key_file)"
        )
    info = await _ping(client, config)
    needed = config.rules.scopes_needed()
    missing = missing_scopes(needed, info.scopes)
    if metrics is not None:
        _key_metrics(metrics, config, info, needed)
    if missing:
        raise StartupRefused(format_missing(missing))
    log.info(
        "Meisa key %r (%s) at %s: %s/min, %s/h; scopes ok",
        info.name,
        info.environment,
        config.meisa.base_url,
        _limit(info.rate_limit_per_minute),
        _limit(info.rate_limit_per_hour),
    )
    await _check_kafka(config)
    return info


def _key_metrics(
    metrics: Metrics, config: BridgeConfig, info: PingInfo, needed: dict[str, list[str]]
) -> None:
    """The key's limits, and a 0/1 gauge per scope the rules (or the unsubscribed list) use."""
    metrics.rate_limit("minute", config.meisa.rate_limit_per_minute or info.rate_limit_per_minute)
    metrics.rate_limit("hour", config.meisa.rate_limit_per_hour or info.rate_limit_per_hour)
    scopes = set(needed) | ({SUPPRESSION_SCOPE} if config.suppression.enabled else set())
    for scope in sorted(scopes):
        metrics.scope_missing(scope, scope not in info.scopes)


def _limit(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


async def _check_kafka(config: BridgeConfig) -> None:
    """The brokers answer, or the bridge refuses to start instead of retrying unseen forever."""
    from bridge.kafka.admin import KafkaAdmin
    from bridge.kafka.properties import protocol_conflict

    conflict = protocol_conflict(config.kafka)
    if conflict is not None:
        raise StartupRefused(f"{config.source}: {conflict}")

    servers = config.kafka.get("bootstrap.servers", "(bootstrap.servers not set)")
    try:
        absent = await asyncio.to_thread(
            KafkaAdmin(config.kafka).missing_topics, config.topics, KAFKA_PROBE_SECONDS
        )
    except BrokerError as exc:
        raise StartupRefused(
            f"Kafka is not reachable at {servers} within {KAFKA_PROBE_SECONDS:g} s: "
            f"{exc} (check kafka.bootstrap.servers and the security settings)"
        ) from None
    if absent:
        log.warning(
            "topic(s) %s do not exist on %s: nothing is consumed from them until they are created",
            ", ".join(absent),
            servers,
        )


async def _ping(client: MeisaClient, config: BridgeConfig) -> PingInfo:
    for attempt in range(PING_ATTEMPTS):
        try:
            return await client.ping()
        except Unauthorized as exc:
            raise StartupRefused(
                f"Meisa rejected the API key (401) at {config.meisa.base_url}: check meisa.api_key "
                f"(MEISA_API_KEY). {exc}"
            ) from None
        except RetryableError as exc:
            if attempt == PING_ATTEMPTS - 1:
                raise StartupRefused(
                    f"Meisa is not reachable at {config.meisa.base_url}: {exc}"
                ) from None
            log.warning("GET /ping failed (%s); retrying", exc)
            await asyncio.sleep(2**attempt)
        except TlsError as exc:  # a certificate does not get better by waiting: no retry
            raise StartupRefused(tls_refusal(config.meisa.base_url, exc)) from None
        except HaltError as exc:
            raise StartupRefused(f"GET /ping: {exc}") from None
    raise AssertionError("unreachable")  # pragma: no cover


async def open_dead_letter(config: BridgeConfig) -> DeadLetterProducer | None:
    """The DLQ producer once its topic is known to exist; None without a dead_letter_topic."""
    from bridge.kafka.producer import KafkaProducer

    if not config.dlq.topic:
        log.warning("no dead_letter_topic: a poison message halts the bridge")
        return None
    dlq = DeadLetterProducer(KafkaProducer(config.kafka), config.dlq.topic)
    try:
        await asyncio.to_thread(dlq.check_topic)
    except StartupRefused:
        dlq.close(0)
        raise
    return dlq


def bind_server(server: HealthServer, config: BridgeConfig) -> None:
    """Listen for /metrics and /healthz, or refuse to start naming the address."""
    try:
        server.bind()
    except OSError as exc:
        where = f"{config.server.host}:{config.server.port}"
        raise StartupRefused(
            f"cannot serve /metrics and /healthz on {where} (server.port): {exc}"
        ) from None
