"""Events no rule maps, with the bridge's own decoder and rules on the in-memory broker: they are
done at once and counted, beside events that make calls, poison and tombstones."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from bridge import dlq
from bridge.codecs import build_decoder
from bridge.config import BridgeConfig, load_rules
from bridge.dlq import DeadLetterProducer
from bridge.kafka.memory import MemoryBroker, MemoryProducer, MemorySource
from bridge.meisa.calls import MeisaCall
from bridge.observability import Metrics
from bridge.pipeline.dispatcher import Slot
from bridge.pipeline.message import Sending
from bridge.pipeline.pipeline import Pipeline
from bridge.settings import CodecSettings, DlqSettings, PipelineSettings

RULES = Path(__file__).resolve().parents[3] / "examples" / "rules.yaml"
TP = ("events", 0)


def _event(kind: str, n: int, **extra: Any) -> bytes:
    data = {"user_id": f"usr_{n}", "email": f"u{n}@example.com", "first_name": "Ann"}
    return orjson.dumps({"type": kind, "id": f"evt_{n}", "time": "2026-03-02T09:00:00Z",
                         "data": data, **extra})  # fmt: skip


async def test_unmapped_events_are_committed_and_counted_beside_calls_poison_and_tombstones() -> (
    None
):
    broker = MemoryBroker()
    broker.create_topic("events", 1)
    broker.create_topic("dlq", 1)
    for value in [
        _event("page.viewed", 0),
        _event("user.updated", 1),  # one upsert
        _event("page.viewed", 2),
        _event("page.viewed", 3, id={"not": "text"}),  # poison although no rule maps its type
        None,  # a tombstone
        b'{"type": "page.viewed", "id": ',  # poison: not JSON
        _event("page.viewed", 6),
    ]:
        broker.produce("events", value)
    sent: list[str] = []

    async def deliver(call: MeisaCall, slot: Slot, sending: Sending) -> object:
        async with slot:
            sent.append(call.kind)
        return None

    metrics = Metrics()
    pipeline = Pipeline(
        config=BridgeConfig(
            topics=("events",),
            pipeline=PipelineSettings(commit_interval_seconds=0.02),
            dlq=DlqSettings(topic="dlq", max_consecutive=0, max_ratio=0),
        ),
        source=MemorySource(broker, ["events"], "g"),
        decoder=build_decoder(CodecSettings()),
        rules=load_rules(RULES),
        deliver=deliver,
        guard=lambda call, event_time: None,
        dlq=DeadLetterProducer(MemoryProducer(broker), "dlq"),
        metrics=metrics,
    )
    task = asyncio.create_task(pipeline.run())
    for _ in range(2000):
        if broker.committed("g", TP) == 7:
            break
        await asyncio.sleep(0.005)
    pipeline.stop()
    await asyncio.wait_for(task, 10)
    assert broker.committed("g", TP) == 7
    assert sent == ["upsert"]
    letters = [dict(r.headers) for r in broker.log("dlq", 0)]
    assert [(d[dlq.OFFSET], d[dlq.STAGE]) for d in letters] == [
        (b"3", b"decode"),
        (b"5", b"decode"),
    ]
    text = metrics.render().decode()
    line = 'meisa_bridge_events_total{outcome="%s",topic="events",type="%s"} %s'
    assert line % ("ok", "page.viewed", "3.0") in text
    assert line % ("ok", "user.updated", "1.0") in text
    assert line % ("tombstone", "", "1.0") in text
    assert line % ("dlq", "", "2.0") in text
