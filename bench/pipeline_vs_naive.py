"""The bridge vs a naive consume -> post -> commit loop, against the sandbox with 5 ms latency.

Each side runs in its own subprocess (so CPU time and peak RSS are its own) on the same events
(upserts and tracks for many users, keyed by user id, 4 partitions). Prints events/s, calls/event,
CPU microseconds per event and peak RSS for both, and the throughput ratio.

    .venv/bin/python bench/pipeline_vs_naive.py [--events 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from _common import BOOTSTRAP, topics
from bridge_harness import committed, end_offsets, event, produce, write_config


def _usage(seconds: float, events: int, calls: int) -> dict[str, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds,
        "calls_per_event": calls / events,
        "cpu_us_per_event": (ru.ru_utime + ru.ru_stime) * 1e6 / events,
        "peak_rss_mib": ru.ru_maxrss / 1024,
    }


def child_naive(args: argparse.Namespace) -> dict[str, float]:
    sys.path.insert(0, str(Path(__file__).parent))
    from naive import run_naive

    from bridge.config import load_config

    config = load_config(args.config)
    r = run_naive(
        bootstrap=BOOTSTRAP, topic=args.topic, group=f"naive-{uuid.uuid4().hex[:6]}",
        base_url=config.meisa.base_url, api_key=config.meisa.api_key.get_secret_value(),
        rules=config.rules, total=args.events,
    )  # fmt: skip
    return _usage(r["seconds"], int(r["events"]), int(r["calls"]))


def child_bridge(args: argparse.Namespace) -> dict[str, float]:
    from bridge.config import load_config
    from bridge.observability import NullMetrics
    from bridge.pipeline.runner import run_bridge

    config = load_config(args.config)
    group = str(config.kafka["group.id"])
    ends = end_offsets(BOOTSTRAP, args.topic, 4)
    calls = [0]

    async def go() -> float:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        start = time.perf_counter()

        def watch() -> None:
            while committed(BOOTSTRAP, group, args.topic, 4) != ends:
                time.sleep(0.05)
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch, daemon=True).start()
        await run_bridge(config, stop=stop, metrics=NullMetrics())
        return time.perf_counter() - start

    seconds = asyncio.run(go())
    return _usage(seconds, args.events, calls[0] or int(args.calls))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=3000)
    p.add_argument("--child", choices=["naive", "bridge"])
    p.add_argument("--config")
    p.add_argument("--topic")
    p.add_argument("--calls", default="0")
    args = p.parse_args()
    if args.child:
        out = child_naive(args) if args.child == "naive" else child_bridge(args)
        print(json.dumps(out))
        return
    run_parent(args)


def run_parent(args: argparse.Namespace) -> None:
    with topics(4) as (topic,):
        results, n_events = _run_both(args, topic)
    print(f"{'':<8}{'events/s':>10}{'calls/event':>13}{'CPU us/event':>14}{'peak RSS MiB':>14}")
    for mode, r in results.items():
        cpe = r["calls_sent"] / r["events"]
        print(f"{mode:<8}{r['events_per_s']:>10.0f}{cpe:>13.2f}{r['cpu_us_per_event']:>14.0f}"
              f"{r['peak_rss_mib']:>14.0f}")  # fmt: skip
    ratio = results["bridge"]["events_per_s"] / results["naive"]["events_per_s"]
    print(f"bridge / naive events/s: {ratio:.1f}x  ({n_events} events, 5 ms added latency)")


def _run_both(args: argparse.Namespace, topic: str) -> tuple[dict[str, dict[str, float]], int]:
    from bridge.sandbox.testing import sandbox_process

    users = 300
    events = [event("user.updated", u, 0) for u in range(users)]
    events += [
        event("user.acted" if i % 2 else "user.updated", i % users, i)
        for i in range(1, args.events - users + 1)
    ]
    produce(BOOTSTRAP, topic, events)
    calls = len(events)  # one call per event with these rules (before coalescing)
    results = {}
    with sandbox_process() as (sb, _), tempfile.TemporaryDirectory() as tmp:
        for mode in ("naive", "bridge"):
            sb.reset()
            sb.set_fault("*", latency_ms=5)
            cfg = write_config(
                Path(tmp), bootstrap=BOOTSTRAP, topics=[topic], base_url=sb.base_url,
                api_key=sb.unlimited_key, group=f"bench-{mode}-{uuid.uuid4().hex[:6]}",
            )  # fmt: skip
            cmd = [sys.executable, __file__, "--child", mode, "--config", str(cfg)]
            cmd += ["--topic", topic, "--events", str(len(events)), "--calls", str(calls)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900)
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            results[mode]["calls_sent"] = len(sb.requests(path="/api/v1/", limit=100000))
    return results, len(events)


if __name__ == "__main__":
    main()
