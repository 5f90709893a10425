"""The live pipeline's own cost, without Kafka or HTTP.

examples/events.jsonl, copied with fresh ids and people until there are `--events` of them, is
spread over `--partitions` partitions of the in-memory broker (bridge.kafka.memory) and run
through the real Pipeline: decode, rules, lockstep, per-person lanes, coalescing, offset tracking
and commits. Meisa answers every call at once, so what is left is the bridge's own CPU per event.
Prints events/s (wall) and CPU microseconds per event.

    .venv/bin/python bench/pipeline_memory.py [--events 20000] [--partitions 6]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import time
from pathlib import Path

import orjson

from bridge.codecs import build_decoder
from bridge.config import BridgeConfig, load_rules
from bridge.dlq import DeadLetterProducer
from bridge.kafka.memory import MemoryBroker, MemoryProducer, MemorySource
from bridge.meisa.calls import MeisaCall
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
    broker: MemoryBroker, source: MemorySource, deliver: Deliver, settings: PipelineSettings
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
    )


async def _run(events: int, partitions: int) -> tuple[float, float, int]:
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

    source = MemorySource(broker, [TOPIC], "bench")
    pipeline = example_pipeline(
        broker, source, deliver, PipelineSettings(commit_interval_seconds=0.05)
    )
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
    return wall, cpu, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the examples' poison events would log one line each
    wall, cpu, calls = asyncio.run(_run(args.events, args.partitions))
    print(
        f"{args.events:,} events over {args.partitions} partitions, {calls:,} calls: "
        f"{args.events / wall:,.0f} events/s wall, {cpu / args.events * 1e6:,.0f} us CPU/event"
    )


if __name__ == "__main__":
    main()
