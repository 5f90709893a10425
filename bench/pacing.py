"""What pacing costs and how much of the key it spends, against unpaced runs in one process.

The real Pipeline on the in-memory broker with the example rules (bench/pipeline_memory.py), and
the real delivery step: a Deliverer with the real RateGovernor, over a Meisa that answers every
call after `--latency-ms`. Each limit runs the same events three times: paced at the limit;
unpaced (a key without limits, as the sandbox's unlimited key); and unpaced at the paced run's
rate, Meisa answering after 64 / (paced calls/s) seconds, so that 64 calls in flight go at that
rate. The last one differs from the paced run only in the governor's pacing; the plain unpaced
run also runs the pipeline for a shorter time. The events per run are what the key allows in
`--seconds`.

Printed per limit: calls/s from the first call to the last, the key's rate (limit / 60) and the
attainable rate (the key's rate, or the unpaced run's where the bridge itself is slower), the
paced run's share of the attainable rate, and CPU microseconds per event (the process's CPU over
the run) paced, unpaced and unpaced at the same rate, with the ratios.

    .venv/bin/python bench/pacing.py [--limits 3000,100000,1000000] [--seconds 6] [--latency-ms 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import time
from dataclasses import dataclass

from pipeline_memory import TOPIC, _events, example_pipeline, governed

from bridge.kafka.memory import MemoryBroker, MemorySource
from bridge.meisa.calls import MeisaCall
from bridge.meisa.models import CallResult
from bridge.settings import MeisaSettings, PipelineSettings

PARTITIONS = 6
IN_FLIGHT = 64  # pipeline.max_in_flight's default


@dataclass
class Run:
    events: int
    calls: int
    span: float  # seconds from the first call to the last
    cpu: float  # process CPU seconds over the run

    @property
    def rate(self) -> float:
        return self.calls / self.span if self.span > 0 else 0.0

    @property
    def cpu_per_event_us(self) -> float:
        return self.cpu / self.events * 1e6


class Meisa:
    """Answers every call after `latency` seconds; records when calls were answered."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.times: list[float] = []

    def requests_for(self, call: MeisaCall) -> int:
        return 1

    async def send(self, call: MeisaCall) -> CallResult:
        if self.latency:
            await asyncio.sleep(self.latency)
        self.times.append(time.perf_counter())
        return CallResult(200, {"id": "c1"})


async def run(events: list[bytes], per_minute: int | None, latency: float) -> Run:
    broker = MemoryBroker()
    broker.create_topic(TOPIC, PARTITIONS)
    broker.create_topic("dlq")
    for n, value in enumerate(events):
        broker.produce(TOPIC, value, partition=n % PARTITIONS)
    meisa = Meisa(latency)
    deliver, governor = governed(meisa, per_minute=per_minute, settings=MeisaSettings())
    source = MemorySource(broker, [TOPIC], "bench")
    settings = PipelineSettings()  # the defaults: commits every 0.02 s
    pipeline = example_pipeline(broker, source, deliver, settings)
    ends = {(TOPIC, p): broker.high((TOPIC, p)) for p in range(PARTITIONS)}
    cpu = time.process_time()
    task = asyncio.create_task(pipeline.run())
    for _ in itertools.count():  # until every partition is committed to its end
        if all(broker.committed("bench", tp) == end for tp, end in ends.items()):
            break
        await asyncio.sleep(0.01)
    cpu = time.process_time() - cpu
    pipeline.stop()
    await task
    await governor.aclose()
    span = meisa.times[-1] - meisa.times[0] if len(meisa.times) > 1 else 0.0
    return Run(len(events), len(meisa.times), span, cpu)


def report(limit: int, paced: Run, unpaced: Run, same_rate: Run) -> str:
    key = limit / 60
    attainable = min(key, unpaced.rate)
    cpu = paced.cpu_per_event_us
    return (
        f"{limit:>9,}/min | {paced.events:>6,} | {paced.rate:>6,.0f} | {key:>6,.0f} | "
        f"{attainable:>6,.0f} | {paced.rate / attainable:>4.0%} | {cpu:>5.0f} | "
        f"{unpaced.cpu_per_event_us:>5.0f} x{cpu / unpaced.cpu_per_event_us:.2f} | "
        f"{same_rate.cpu_per_event_us:>5.0f} x{cpu / same_rate.cpu_per_event_us:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", default="3000,100000,1000000")
    parser.add_argument("--seconds", type=float, default=6.0, help="paced run length")
    parser.add_argument("--max-events", type=int, default=60_000)
    parser.add_argument(
        "--latency-ms", type=float, default=5.0,
        help="Meisa's answer time (0: at once, which lets a whole drain run in a few event-loop "
        "steps, as no real server does)",
    )  # fmt: skip
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the examples' poison events would log one line each
    print(
        "limit         | events | calls/s | key/s | attain/s | use | CPU us/event: paced | "
        "unpaced | unpaced, same rate"
    )
    # A first run pays for the imports' lazy work and warms the caches: it would count against
    # whichever of the three runs came first.
    asyncio.run(run(_events(2_000), None, args.latency_ms / 1000))
    for limit in (int(x) for x in args.limits.split(",")):
        # The example events make about 0.8 calls each: enough events for `seconds` of calls.
        count = min(args.max_events, int(limit / 60 * args.seconds / 0.8))
        events = _events(count)
        latency = args.latency_ms / 1000
        paced = asyncio.run(run(events, limit, latency))
        unpaced = asyncio.run(run(events, None, latency))
        slowed = max(latency, IN_FLIGHT / paced.rate) if paced.rate else latency
        same_rate = asyncio.run(run(events, None, slowed))
        print(report(limit, paced, unpaced, same_rate), flush=True)


if __name__ == "__main__":
    main()
