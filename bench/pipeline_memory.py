"""The live pipeline's own cost, without Kafka or HTTP.

examples/events.jsonl, copied with fresh ids and people until there are `--events` of them, is
spread over `--partitions` partitions of the in-memory broker (bridge.kafka.memory) and run
through the real Pipeline: decode, rules, lockstep, per-person lanes, coalescing, offset tracking
and commits. Meisa answers every call at once, so what is left is the bridge's own CPU per event.
Prints events/s (wall) and CPU microseconds per event.

`--deliverer` sends each call through what `run` wires around the HTTP client instead of
answering in the pipeline's deliver: the Deliverer (rate governor, retry policy, guard), attempt
metrics and event counts on a Prometheus registry.

    .venv/bin/python bench/pipeline_memory.py [--events 20000] [--partitions 6] [--deliverer]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import time
from pathlib import Path
from typing import Any

import orjson

from bridge.codecs import build_decoder
from bridge.config import BridgeConfig, load_rules
from bridge.dlq import DeadLetterProducer
from bridge.kafka.memory import MemoryBroker, MemoryProducer, MemorySource
from bridge.meisa.calls import MeisaCall
from bridge.meisa.delivery import Deliverer
from bridge.meisa.governor import RateGovernor
from bridge.meisa.models import CallResult
from bridge.observability import Metrics
from bridge.pipeline.callmetrics import attempt_metrics
from bridge.pipeline.dispatcher import Deliver, Slot
from bridge.pipeline.message import Sending
from bridge.pipeline.pipeline import Pipeline
from bridge.settings import CodecSettings, DlqSettings, PipelineSettings

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "examples" / "events.jsonl"
TOPIC = "events"


def _events(count: int) -> list[bytes]:
    """The example events, each copy with its own event ids, user ids and emails."""
    lines = [line for line in EVENTS.read_text().splitlines() if line.strip()]
    out = []
    for n in range(count):
        copy = n // len(lines)
        text = lines[n % len(lines)].replace("usr_", f"usr_{copy}_").replace("@", f"+{copy}@")
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:  # the examples' deliberately broken event: poison
            out.append(text.encode())
            continue
        event["id"] = f"{event['id']}-{copy}"
        out.append(orjson.dumps(event))
    return out


def example_pipeline(
    broker: MemoryBroker,
    source: MemorySource,
    deliver: Deliver,
    settings: PipelineSettings,
    metrics: Metrics | None = None,
) -> Pipeline:
    """The real Pipeline with the example rules on the in-memory broker ("dlq" its DLQ topic)."""
    return Pipeline(
        config=BridgeConfig(topics=(TOPIC,), pipeline=settings, dlq=DlqSettings(topic="dlq")),
        source=source,
        decoder=build_decoder(CodecSettings()),
        rules=load_rules(ROOT / "examples" / "rules.yaml"),
        deliver=deliver,
        guard=lambda call, event_time: None,
        dlq=DeadLetterProducer(MemoryProducer(broker), "dlq"),
        metrics=metrics,
    )


class _Instant:
    """A Meisa client that accepts every call at once."""

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, call: MeisaCall) -> CallResult:
        self.calls += 1
        return CallResult(200, None)

    def requests_for(self, call: MeisaCall) -> int:
        return 1


def governed(
    client: Any, *, per_minute: int | None = None, **options: Any
) -> tuple[Deliver, RateGovernor]:
    """The pipeline's deliver as `run` builds it: a Deliverer with its own rate governor
    (`per_minute` None: a key without limits) over `client`; `options` go to the Deliverer."""
    governor = RateGovernor(per_minute=per_minute, per_hour=None)
    deliverer = Deliverer(client, governor, **options)

    async def deliver(call: MeisaCall, slot: Slot, sending: Sending) -> object:
        return await deliverer.deliver(call, slot, not_found=False, event_time=sending.event_time)

    return deliver, governor


def _deliverer(metrics: Metrics) -> tuple[Deliver, _Instant]:
    """The pipeline's deliver as `run` builds it, on a client that answers at once."""
    client = _Instant()
    deliver, _ = governed(client, on_attempt=attempt_metrics(metrics), guard=lambda call, t: None)
    return deliver, client


async def _run(events: int, partitions: int, real: bool) -> tuple[float, float, int]:
    broker = MemoryBroker()
    broker.create_topic(TOPIC, partitions)
    broker.create_topic("dlq")
    for n, value in enumerate(_events(events)):
        broker.produce(TOPIC, value, partition=n % partitions)
    calls = 0

    async def deliver(call: MeisaCall, slot: Slot, sending: Sending) -> object:
        nonlocal calls
        async with slot:
            calls += 1
        return None

    metrics, client = None, None
    if real:
        metrics = Metrics()
        deliver, client = _deliverer(metrics)
    source = MemorySource(broker, [TOPIC], "bench")
    settings = PipelineSettings(commit_interval_seconds=0.05)
    pipeline = example_pipeline(broker, source, deliver, settings, metrics)
    wall, cpu = time.perf_counter(), time.process_time()
    task = asyncio.create_task(pipeline.run())
    ends = {(TOPIC, p): broker.high((TOPIC, p)) for p in range(partitions)}
    for _ in itertools.count():  # until every partition is committed to its end
        if all(broker.committed("bench", tp) == end for tp, end in ends.items()):
            break
        await asyncio.sleep(0.01)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    pipeline.stop()
    await task
    return wall, cpu, calls if client is None else client.calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--deliverer", action="store_true", help="through the real Deliverer")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the examples' poison events would log one line each
    wall, cpu, calls = asyncio.run(_run(args.events, args.partitions, args.deliverer))
    print(
        f"{args.events:,} events over {args.partitions} partitions, {calls:,} calls: "
        f"{args.events / wall:,.0f} events/s wall, {cpu / args.events * 1e6:,.0f} us CPU/event"
    )


if __name__ == "__main__":
    main()
