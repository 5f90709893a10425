"""`meisa-bridge status --config FILE`: the consumer group's lag per partition, its members and
their partitions, the dead-letter topic's size, the pace and, from a replica's /metrics, the rate
budget.

Exit codes (bridge.exitcodes): OK when the status was printed (an unreachable /metrics is
reported in it, not an error); REFUSED for a configuration error or when Kafka does not answer.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from bridge.config import BridgeConfig
from bridge.errors import BrokerError, ConfigError
from bridge.exitcodes import ExitCode
from bridge.kafka.properties import consumer_config
from bridge.kafka.protocols import Admin, TopicPartition
from bridge.status import render, scrape
from bridge.status.model import (
    BridgeView,
    DeadLetters,
    Sample,
    Status,
    pace_between,
    partition_lags,
)

TIMEOUT = 15.0  # each Kafka request; a healthy cluster answers in milliseconds


@dataclass(frozen=True, kw_only=True)
class Options:
    sample_seconds: float = 5.0  # between the two looks at the committed offsets; 0: one look
    metrics_url: str | None = None  # None: do not read /metrics


def status_command(
    args: argparse.Namespace, *, out: TextIO = sys.stdout, admin: Admin | None = None
) -> int:
    from bridge.config import load_config

    try:
        # status makes no Meisa call: it works where ${MEISA_API_KEY} is unset.
        config = load_config(args.config, strict_env=False)
    except ConfigError as exc:
        print(f"meisa-bridge status: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    options = Options(sample_seconds=max(0.0, args.sample), metrics_url=_metrics_url(args, config))
    if admin is None:
        from bridge.kafka.admin import KafkaAdmin

        admin = KafkaAdmin(config.kafka)
    try:
        status = gather(config, admin, options)
    except BrokerError as exc:
        print(f"meisa-bridge status: {exc}", file=sys.stderr)
        return ExitCode.REFUSED
    print(render.as_json(status) if args.json else render.as_text(status), file=out)
    return ExitCode.OK


def _metrics_url(args: argparse.Namespace, config: BridgeConfig) -> str | None:
    if args.no_metrics:
        return None
    return args.metrics_url or scrape.default_url(config.server.host, config.server.port)


def gather(
    config: BridgeConfig,
    admin: Admin,
    options: Options,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    fetch: Callable[[str], BridgeView] = scrape.fetch,
) -> Status:
    """Look twice at the group's committed offsets, `sample_seconds` apart (the pace), and once
    at everything else."""
    kafka = consumer_config(config.kafka)
    group, reset = str(kafka["group.id"]), str(kafka["auto.offset.reset"]).lower()
    bounds, first = _look(admin, group, config.topics, clock)
    last = first
    if options.sample_seconds > 0:
        sleep(options.sample_seconds)
        bounds, last = _look(admin, group, config.topics, clock)
    state = admin.describe_group(group, TIMEOUT)
    rows = partition_lags(bounds, last.committed, state, reset)
    pace = None if last is first else pace_between(first, last, sum(r.lag for r in rows))
    present = {topic for topic, _ in bounds}
    return Status(
        group=state,
        partitions=rows,
        missing_topics=[t for t in config.topics if t not in present],
        dead_letters=_dead_letters(admin, config.dlq.topic),
        pace=pace,
        bridge=None if options.metrics_url is None else fetch(options.metrics_url),
    )


def _look(
    admin: Admin, group: str, topics: tuple[str, ...], clock: Callable[[], float]
) -> tuple[dict[TopicPartition, tuple[int, int]], Sample]:
    bounds = admin.offset_bounds(topics, TIMEOUT)
    committed = admin.committed_offsets(group, list(bounds), TIMEOUT)
    at = clock()
    return bounds, Sample(at, committed, {tp: end for tp, (_, end) in bounds.items()})


def _dead_letters(admin: Admin, topic: str | None) -> DeadLetters | None:
    if not topic:
        return None
    bounds = admin.offset_bounds([topic], TIMEOUT)
    if not bounds:
        return DeadLetters(topic, None)
    return DeadLetters(topic, sum(end - start for start, end in bounds.values()), len(bounds))
