"""What a message read ahead really costs in memory, against what read-ahead accounts for it.

examples/events.jsonl, copied with fresh ids and people until there are `--events` of them, is
run through the real Pipeline on the in-memory broker while Meisa never answers, so every
message with calls stays held (decoded, mapped, in the lockstep or a lane). tracemalloc measures
what the held messages add, and the pipeline's tracker says what read-ahead counts for them
(`pipeline.read_ahead_bytes`: the message's bytes plus `MESSAGE_OVERHEAD_BYTES`). Prints both
per message and their ratio: above 1, the bound under-counts.

    .venv/bin/python bench/read_ahead.py [--events 5000] [--partitions 2]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import tracemalloc

import orjson
from pipeline_memory import TOPIC, _events, example_pipeline

from bridge.kafka.memory import MemoryBroker, MemorySource
from bridge.meisa.calls import MeisaCall
from bridge.pipeline.dispatcher import Slot
from bridge.pipeline.message import Sending
from bridge.pipeline.readahead import MESSAGE_OVERHEAD_BYTES
from bridge.settings import PipelineSettings


async def _held(events: int, partitions: int) -> tuple[int, int, int, int]:
    """(bytes measured, bytes accounted, messages held, bytes of the messages themselves)."""
    broker = MemoryBroker()
    broker.create_topic(TOPIC, partitions)
    broker.create_topic("dlq")
    values = [v for v in _events(events) if _valid(v)]  # no poison: nothing leaves for the DLQ
    never = asyncio.Event()

    async def deliver(call: MeisaCall, slot: Slot, sending: Sending) -> object:
        await never.wait()  # Meisa never answers: every message stays held
        return None

    source = MemorySource(broker, [TOPIC], "bench")
    pipeline = example_pipeline(broker, source, deliver, PipelineSettings())
    task = asyncio.create_task(pipeline.run())
    await asyncio.sleep(0.5)  # joined, nothing to read yet
    gc.collect()
    before = tracemalloc.take_snapshot()
    for n, value in enumerate(values):
        broker.produce(TOPIC, value, partition=n % partitions)
    raw = sum(len(v) for v in values)
    while any(  # noqa: ASYNC110 (polls the in-memory broker's positions, no event to wait on)
        source.assigned.get((TOPIC, p)) != broker.high((TOPIC, p)) for p in range(partitions)
    ):
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    gc.collect()
    after = tracemalloc.take_snapshot()
    measured = sum(s.size_diff for s in after.compare_to(before, "filename"))
    held = pipeline.tracker.held().values()
    accounted, messages = sum(b for b, _ in held), sum(n for _, n in held)
    pipeline.stop()
    never.set()
    await task
    return measured - raw, accounted, messages, raw


def _valid(value: bytes) -> bool:
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--partitions", type=int, default=2)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    tracemalloc.start()
    measured, accounted, messages, raw = asyncio.run(_held(args.events, args.partitions))
    per, counted = measured / max(1, messages), accounted / max(1, messages)
    print(
        f"{messages:,} messages held ({raw / max(1, messages):,.0f} bytes each on the wire): "
        f"{per:,.0f} bytes each measured beyond the wire bytes, {counted:,.0f} accounted "
        f"(wire bytes + {MESSAGE_OVERHEAD_BYTES:,}); measured / accounted = {per / counted:.2f}"
    )


if __name__ == "__main__":
    main()
