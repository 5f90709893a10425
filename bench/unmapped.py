"""Events that make no call: what they cost alone, and beside events that do.

    KAFKA_PORT=29092 scripts/bench.sh bench/unmapped.py
    .venv/bin/python bench/unmapped.py [--events 100000] [--mapped 0.05] [--sample] [--runs mix]

Topics often carry far more events than the rules act on. Plain JSON events for 600 people on a
4-partition topic, the example rules (examples/rules.yaml), `meisa-bridge run` in its own
process with default settings (commits every 0.5 s and INFO text logs, the test configs'
values), the sandbox as the Meisa double (unlimited key, no added latency). Three runs:

* unmapped: `--events` page views, a type no rule names;
* mix: the same count with `--mapped` of them profile updates (`user.updated`: one upsert each,
  each for a person of its own, so none coalesce), the rest page views;
* mapped only: the mix's profile updates alone, in the same order.

Each run's busy span starts when the bridge logs its partition assignment and ends at the last
tick (every 50 ms) in which the process used more than a fifth of a core before its group had
committed every offset; events/s and CPU us/event cover that span, "(all)" the whole process,
start-up and shutdown included. The parts of the mix are its page views at the unmapped run's
CPU per event plus the mapped-only run's busy CPU; "mix/parts" is the mix's busy CPU over that.
`--sample` runs each run again under bench/_sampler.py and prints its CPU by stage, and the mix's
stages against those of its parts (which count start-up twice: the "other" stage, mostly).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from _common import (
    BOOTSTRAP,
    ROOT,
    add_bridge_set,
    bridge_run_argv,
    load_average,
    peak_rss_mib,
    proc_cpu,
    settings,
    topics,
)
from _sampler import all_stages
from bridge_harness import end_offsets, write_config

PEOPLE = 600
PARTITIONS = 4
TICK = 0.05  # seconds between samples of the process's CPU and the group's committed offsets
BUSY = 0.2  # a tick in which the process used more than this share of a core is busy
SANDBOX = {"request_log_size": 1_000_000}
ASSIGNED = re.compile(rb"assigned: \S")

RUNS = ("unmapped", "mix", "mapped-only")


def workload(count: int, mapped: float, seed: int = 3) -> list[dict[str, Any]]:
    """`count` events; a `mapped` share of them profile updates, the rest page views.

    Page views come from `PEOPLE` people; each profile update is a person of its own, so no two
    upserts coalesce and the mix and its mapped part alone make the same calls.
    """
    rng = random.Random(seed)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = []
    for n in range(count):
        if rng.random() < mapped:
            kind, data = "user.updated", {**_ids(f"new{n}"), "first_name": "Ann", "language": "en"}
        else:
            page = rng.choice(["/", "/pricing", "/docs"])
            kind, data = "page.viewed", {**_ids(str(rng.randrange(PEOPLE))), "page": page}
        out.append({"id": f"evt-{n}-{seed}", "type": kind, "time": now, "data": data})
    return out


def _ids(user: str) -> dict[str, str]:
    return {"user_id": f"usr_{user}", "email": f"user{user}@example.com"}


def produce(topic: str, events: list[dict[str, Any]]) -> None:
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True, "linger.ms": 20}
    )
    for item in events:
        producer.produce(topic, key=item["data"]["user_id"].encode(), value=orjson.dumps(item))
        producer.poll(0)
    assert producer.flush(60) == 0


@dataclass
class Run:
    name: str
    events: int
    calls: int
    span: float  # seconds, assignment to the last busy tick
    cpu_busy: float  # process CPU seconds over that span
    cpu_all: float  # whole process, start-up and shutdown included
    peak_rss_mib: float
    load: float  # 1-minute load average when the run ended

    @property
    def us_per_event(self) -> float:
        return self.cpu_busy * 1e6 / self.events


def run_bridge(
    argv: list[str], *, name: str, group: str, topic: str, events: int, sandbox: Any,
    timeout: float,
) -> Run:  # fmt: skip
    from confluent_kafka import Consumer, TopicPartition

    ends = end_offsets(BOOTSTRAP, topic, PARTITIONS)
    probe = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group})
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    log = tempfile.NamedTemporaryFile()  # noqa: SIM115 (closed in the finally below)
    sandbox.reset()
    proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=ROOT)
    timeline: list[tuple[float, float]] = []
    assigned_at: int | None = None
    peak = 0.0
    deadline = time.monotonic() + timeout
    reaped: tuple[int, int, Any] = (0, 0, None)
    try:
        while True:
            cpu = proc_cpu(proc.pid)
            if cpu is not None:
                timeline.append((time.time(), cpu))
            peak = max(peak, peak_rss_mib(proc.pid) or 0.0)
            if assigned_at is None and ASSIGNED.search(Path(log.name).read_bytes()):
                assigned_at = len(timeline) - 1
            reaped = os.wait4(proc.pid, os.WNOHANG)
            if reaped[0] != 0 or time.monotonic() > deadline:
                tail = Path(log.name).read_bytes().decode(errors="replace")[-3000:]
                raise RuntimeError(f"{name}: exited or timed out:\n{tail}")
            if assigned_at is not None:
                got = {tp.partition: tp.offset for tp in probe.committed(tps, timeout=10)}
                if got == ends:
                    break
            time.sleep(TICK)
    finally:
        probe.close()
        if reaped[0] == 0:
            proc.send_signal(signal.SIGTERM)
            reaped = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(reaped[1])
        log.close()
    usage = reaped[2]
    assert assigned_at is not None
    first, last = assigned_at, _last_busy(timeline, assigned_at)
    requests = sandbox.requests(path="/api/v1/", limit=10**7)
    calls = sum(1 for r in requests if not r["path"].endswith("/ping/"))
    return Run(
        name=name, events=events, calls=calls,
        span=max(timeline[last][0] - timeline[first][0], TICK),
        cpu_busy=timeline[last][1] - timeline[first][1],
        cpu_all=usage.ru_utime + usage.ru_stime, peak_rss_mib=peak, load=load_average(),
    )  # fmt: skip


def _last_busy(timeline: list[tuple[float, float]], start: int) -> int:
    """The index of the last sample that closed a busy tick (CPU > BUSY of the wall time)."""
    last = start
    for i in range(start + 1, len(timeline)):
        (t0, c0), (t1, c1) = timeline[i - 1], timeline[i]
        if c1 - c0 > BUSY * (t1 - t0):
            last = i
    return last


def bridge_argv(
    tmp: Path, sandbox: Any, *, topic: str, group: str, overrides: Sequence[str],
    sample_to: Path | None = None,
) -> list[str]:  # fmt: skip
    cfg = write_config(
        tmp, bootstrap=BOOTSTRAP, topics=[topic], base_url=sandbox.base_url,
        api_key=sandbox.unlimited_key, group=group, extra=settings(overrides),
    )  # fmt: skip
    doc = yaml.safe_load(cfg.read_text())
    del doc["rules"]  # the harness's own rules; these runs use the example rules
    doc["rules_file"] = str(ROOT / "examples" / "rules.yaml")
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    return bridge_run_argv(cfg, sample_to)


# -- the tables ----------------------------------------------------------------------------------

HEADER = (
    f"{'run':<13}{'events':>8}{'calls':>7}{'events/s':>10}{'CPU us/event':>13}"
    f"{'(all)/event':>12}{'CPU us/call':>12}{'RSS MiB':>9}{'load':>6}"
)


def row(r: Run) -> str:
    per_call = f"{r.cpu_busy * 1e6 / r.calls:>12.0f}" if r.calls else f"{'-':>12}"
    return (
        f"{r.name:<13}{r.events:>8}{r.calls:>7}{r.events / r.span:>10.0f}{r.us_per_event:>13.1f}"
        f"{r.cpu_all * 1e6 / r.events:>12.1f}{per_call}{r.peak_rss_mib:>9.0f}{r.load:>6.1f}"
    )


def parts(unmapped: Run, mix: Run, mapped_only: Run) -> list[str]:
    views = mix.events - mapped_only.events
    alone = unmapped.cpu_busy / unmapped.events * views
    total = alone + mapped_only.cpu_busy
    return [
        f"parts of the mix: {views} page views x {unmapped.us_per_event:.1f} us = "
        f"{alone:.2f} s, plus {mapped_only.events} profile updates alone "
        f"({mapped_only.calls} calls) {mapped_only.cpu_busy:.2f} s = {total:.2f} s CPU",
        f"mix measured: {mix.cpu_busy:.2f} s CPU ({mix.calls} calls); "
        f"mix/parts x{mix.cpu_busy / total:.2f}",
    ]


def stages_of(report: dict[str, Any]) -> dict[str, float]:
    """CPU seconds by stage, native threads included (bench/_sampler.py's `all_stages`)."""
    return all_stages(report)


def stage_table(sampled: dict[str, dict[str, float]], events: dict[str, int]) -> list[str]:
    """CPU by stage of each sampled run, in us per event of that run; with all three, also the
    mix's stages against those of its parts, in CPU seconds (start-up counts in every run)."""
    names = list(sampled)
    order = sorted({s for run in sampled.values() for s in run}, key=lambda s: -sum(
        run.get(s, 0.0) / events[name] for name, run in sampled.items()))  # fmt: skip
    compare = {"unmapped", "mix", "mapped-only"} <= sampled.keys()
    head = f"{'stage':<20}" + "".join(f"{n + ' us/ev':>20}" for n in names)
    if compare:
        head += f"{'parts s':>10}{'mix s':>8}{'mix-parts':>11}"
    out = [head]
    if compare:
        share = (events["mix"] - events["mapped-only"]) / events["unmapped"]
    for stage in [*order, "total"]:
        cpu = {n: (sum(r.values()) if stage == "total" else r.get(stage, 0.0))
               for n, r in sampled.items()}  # fmt: skip
        line = f"{stage:<20}" + "".join(f"{cpu[n] * 1e6 / events[n]:>20.1f}" for n in names)
        if compare:
            whole = cpu["unmapped"] * share + cpu["mapped-only"]
            line += f"{whole:>10.2f}{cpu['mix']:>8.2f}{cpu['mix'] - whole:>+11.2f}"
        out.append(line)
    return out


# -- main ------------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--mapped", type=float, default=0.05, help="share of the mix that maps")
    p.add_argument(
        "--runs", default=",".join(RUNS), metavar="NAMES",
        help=f"which runs, comma-separated, of {', '.join(RUNS)} (default: all)",
    )  # fmt: skip
    p.add_argument(
        "--sample", action="store_true",
        help="run each run again under bench/_sampler.py and print its CPU by stage",
    )  # fmt: skip
    p.add_argument("--timeout", type=float, default=600.0, help="per run, seconds")
    add_bridge_set(p)
    args = p.parse_args()
    from bridge.sandbox.testing import sandbox_process

    mix = workload(args.events, args.mapped)
    loads = {
        "unmapped": workload(args.events, 0.0),
        "mix": mix,
        "mapped-only": [e for e in mix if e["type"] != "page.viewed"],
    }
    wanted = args.runs.split(",")
    if unknown := [n for n in wanted if n not in RUNS]:
        p.error(f"--runs: unknown {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    runs: dict[str, Run] = {}
    sampled: dict[str, dict[str, float]] = {}
    if args.bridge_set:
        print(f"bridge settings changed: {', '.join(args.bridge_set)}")
    with sandbox_process(SANDBOX) as (sandbox, _), tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for name, sample in [
            *((n, False) for n in wanted),
            *((n, True) for n in wanted if args.sample),
        ]:
            events = loads[name]
            with topics(PARTITIONS, prefix=f"unmapped-{name}") as (topic,):
                produce(topic, events)
                group = f"unmapped-{name}-{uuid.uuid4().hex[:6]}"
                out = tmp / f"sampler-{name}.json" if sample else None
                argv = bridge_argv(
                    tmp, sandbox, topic=topic, group=group, overrides=args.bridge_set,
                    sample_to=out,
                )  # fmt: skip
                how = " under the sampler" if sample else ""
                print(
                    f"  {name}{how}: {len(events)} events (load {load_average():.1f}) ...",
                    flush=True,
                )
                run = run_bridge(
                    argv, name=name, group=group, topic=topic, events=len(events),
                    sandbox=sandbox, timeout=args.timeout,
                )  # fmt: skip
                if out is None:
                    runs[name] = run
                else:
                    sampled[name] = stages_of(json.loads(out.read_text()))
    print()
    print(HEADER)
    for run in runs.values():
        print(row(run))
    if {"unmapped", "mix", "mapped-only"} <= runs.keys():
        print()
        print("\n".join(parts(runs["unmapped"], runs["mix"], runs["mapped-only"])))
    if sampled:
        print("\nCPU by stage (in-process sampler, separate runs, start-up included):")
        print("\n".join(stage_table(sampled, {n: len(loads[n]) for n in sampled})))
    print(
        f"\n{PEOPLE} people, {PARTITIONS} partitions, examples/rules.yaml, sandbox without added "
        "latency; busy span from the assignment to the last busy tick; (all) with start-up and "
        "shutdown; load = 1-minute load average at the end of each run (2 cores)."
    )


if __name__ == "__main__":
    main()
