"""What tracing costs per event, without Kafka or Meisa's network.

examples/events.jsonl (copied as in bench/pipeline_memory.py) runs through the real Pipeline on
the in-memory broker and the real Deliverer, whose Meisa answers every call at once, with tracing
off, on at ratio 1.0 and on at ratio 0 (every span made for propagation, none recorded). Spans
go to an OTLP/HTTP receiver in a subprocess that only reads and acknowledges them, so encoding
and sending them is counted in this process's CPU and receiving them is not. Modes alternate
for `--rounds` rounds; the table shows each mode's median CPU per event and its difference from
tracing off.

    .venv/bin/python bench/tracing_cost.py [--events 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline_memory import EVENTS, TOPIC, _events

from bridge.codecs import build_decoder
from bridge.config import BridgeConfig, load_rules
from bridge.dlq import DeadLetterProducer
from bridge.kafka.memory import MemoryBroker, MemoryProducer, MemorySource
from bridge.meisa.calls import MeisaCall
from bridge.meisa.delivery import Deliverer
from bridge.meisa.models import CallResult
from bridge.observability import start_tracing
from bridge.observability.tracing import Tracing
from bridge.pipeline.dispatcher import Slot
from bridge.pipeline.message import Sending
from bridge.pipeline.pipeline import Pipeline
from bridge.settings import CodecSettings, DlqSettings, PipelineSettings, TracingSettings

RULES = Path(EVENTS).parent / "rules.yaml"
RECEIVER = """
import http.server
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class InstantMeisa:
    async def send(self, call: MeisaCall) -> CallResult:
        return CallResult(status=200, body={"id": "c1"})

    def requests_for(self, call: MeisaCall) -> int:
        return 1


class OpenGovernor:
    async def acquire(self, priority: int, tokens: int = 1) -> float:
        return 0.0

    def on_success(self) -> None:
        pass

    def on_rate_limited(self, retry_after: float | None) -> None:
        pass


@contextmanager
def receiver() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{proc.stdout.readline().strip()}/v1/traces"
    finally:
        proc.terminate()
        proc.wait()


async def _run(values: list[bytes], tracing: Tracing, partitions: int = 6) -> float:
    """CPU seconds from the first event to the last commit, exporting included."""
    broker = MemoryBroker()
    broker.create_topic(TOPIC, partitions)
    broker.create_topic("dlq")
    for n, value in enumerate(values):
        broker.produce(TOPIC, value, partition=n % partitions)
    deliverer = Deliverer(InstantMeisa(), OpenGovernor())

    async def deliver(call: MeisaCall, slot: Slot, sending: Sending) -> object:
        trace = tracing.for_call(call, sending.messages)
        return await deliverer.deliver(call, slot, not_found=False, trace=trace)

    pipeline = Pipeline(
        config=BridgeConfig(
            topics=(TOPIC,),
            pipeline=PipelineSettings(commit_interval_seconds=0.05),
            dlq=DlqSettings(topic="dlq"),
        ),
        source=MemorySource(broker, [TOPIC], "bench"),
        decoder=build_decoder(CodecSettings()),
        rules=load_rules(RULES),
        deliver=deliver,
        guard=lambda call, event_time: None,
        dlq=DeadLetterProducer(MemoryProducer(broker), "dlq"),
        tracing=tracing,
    )
    cpu = time.process_time()
    task = asyncio.create_task(pipeline.run())
    ends = {(TOPIC, p): broker.high((TOPIC, p)) for p in range(partitions)}
    for _ in itertools.count():
        if all(broker.committed("bench", tp) == end for tp, end in ends.items()):
            break
        await asyncio.sleep(0.01)
    pipeline.stop()
    await task
    tracing.shutdown()  # the last batches are encoded and sent
    return time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the examples' poison events would log one line each
    values = _events(args.events)
    modes = {"off": None, "on, ratio 1.0": 1.0, "on, ratio 0": 0.0}
    cpu: dict[str, list[float]] = {mode: [] for mode in modes}
    with receiver() as endpoint:
        for _ in range(args.rounds):
            for mode, ratio in modes.items():
                settings = TracingSettings(
                    enabled=ratio is not None, endpoint=endpoint, sampler_ratio=ratio
                )
                spent = asyncio.run(_run(values, start_tracing(settings)))
                cpu[mode].append(spent / args.events * 1e6)
    base = statistics.median(cpu["off"])
    print(f"{args.events:,} events, {args.rounds} rounds; CPU us/event, median (every round)")
    for mode, rounds in cpu.items():
        median = statistics.median(rounds)
        shown = ", ".join(f"{r:.0f}" for r in rounds)
        print(f"  {mode:<14} {median:6.0f}  {median - base:+5.0f}   ({shown})")


if __name__ == "__main__":
    main()
