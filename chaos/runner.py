"""The chaos run: history -> broker, N bridges in one group -> sandbox, faults, drain, oracle.

    python -m chaos --profile short|long [--seed N] [--instances N]

Steps: start the sandbox (unlimited key, no automations); create fresh topics and produce half of
the seeded history; start the instances; produce the other half while the seeded fault schedule
runs; clear the faults and wait until every offset is committed (or the drain timeout); SIGTERM
every instance; save the sandbox's record and a manifest in the run directory; run the checker.
The broker must run under `scripts/kafka.sh` on KAFKA_PORT: the schedule restarts it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import heapq
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chaos import check, kafka_io
from chaos.cluster import Cluster, Instance, broker
from chaos.history import SCHEMAS_DIR, TOPICS, build
from chaos.schedule import (
    MEISA_HOUR,
    OUTAGE_REAL_SECONDS,
    OUTAGE_SECONDS,
    PROFILES,
    SANDBOX_FAULTS,
    Fault,
    Profile,
    format_schedule,
    make_schedule,
)

HERE = Path(__file__).resolve().parent
DLQ_TOPIC = "meisa-bridge.chaos.dlq"
OUTCOMES_TOPIC = "meisa-bridge.chaos.outcomes"
OUTCOMES_PARTITIONS = 3
SESSION_SECONDS = 45.0  # the broker's and librdkafka's default session timeout
SAMPLE_SECONDS = 5.0
SANDBOX_CONFIG: dict[str, Any] = {
    "keys": [
        {
            "key": "meisa_test_chaos_000000000000000000000000",
            "name": "chaos",
            "environment": "test",
            "scopes": ["*"],
            "rate_limit_per_minute": None,
            "rate_limit_per_hour": None,
        }
    ],
    "automations": [],
    "request_log_size": 1000,
}


# `--protocol classic`: the classic group protocol, with a session as short as the local broker's
# for the consumer protocol (scripts/kafka/server.properties.in), so a stop outlasts both.
CLASSIC: dict[str, Any] = {"group.protocol": "classic", "session.timeout.ms": 10000}


def bridge_config(
    run: Path,
    *,
    bootstrap: str,
    group: str,
    base_url: str,
    ledger: str | None,
    protocol: str = "consumer",
    outcomes: str | None = None,
) -> Path:
    kafka: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": "chaos",
    }
    if protocol == "classic":
        kafka.update(CLASSIC)
    doc: dict[str, Any] = {
        "kafka": kafka,
        "topics": list(TOPICS),
        "dead_letter_topic": DLQ_TOPIC,
        "meisa": {"base_url": base_url, "api_key": "${MEISA_API_KEY}", "timeout": 5},
        "codec": {"format": "auto", "schemas_dir": str(SCHEMAS_DIR)},
        "suppression": {"enabled": False},
        "server": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "INFO", "format": "text"},
        "rules_file": str(HERE / "rules.yaml"),
    }
    # The ledger is on by default; --no-ledger has to turn it off explicitly.
    doc["ledger"] = {"topic": ledger, "partitions": 3} if ledger else {"enabled": False}
    if outcomes:
        doc["outcomes"] = {"topic": outcomes}
    path = run / "bridge.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass
class Run:
    profile: Profile
    seed: int
    bootstrap: str
    port: int
    dir: Path
    sandbox: Any
    cluster: Cluster
    group: str
    total: int = 0
    queue: list[tuple[float, int, Callable[[], None]]] = field(default_factory=list)
    jumps: list[list[float]] = field(default_factory=list)
    offset: float = 0.0
    started: float = 0.0
    samples: list[tuple[float, int]] = field(default_factory=list)
    broker_thread: threading.Thread | None = None
    sampler: threading.Thread | None = None
    broker_outages: list[list[float]] = field(default_factory=list)  # real [stop, back]
    _seq: int = 0

    def later(self, seconds: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self.queue, (time.monotonic() + seconds, self._seq, action))

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {text}", flush=True)

    # --- faults ---------------------------------------------------------------------------------

    def apply(self, fault: Fault) -> None:
        self.say(f"{fault.kind}: {fault.describe()}")
        if fault.kind in SANDBOX_FAULTS:
            self.sandbox.set_fault("*", **SANDBOX_FAULTS[fault.kind], seed=self.seed)
            return
        handlers: dict[str, Callable[[Fault], object]] = {
            "kill": self._kill,
            "term": self._term,
            "zombie": self._zombie,
            "scale-out": lambda f: self._start(),
            "scale-in": self._scale_in,
            "broker": self._broker,
            "outage": self._outage,
            "meisa-hour": lambda f: self._advance(MEISA_HOUR),
        }
        handlers[fault.kind](fault)

    def _start(self) -> None:
        self.cluster.start()

    def _kill(self, fault: Fault) -> None:
        inst = self.cluster.pick(fault.slot)
        if inst is not None:
            self.cluster.kill(inst)
            self.later(fault.down, self._start)

    def _term(self, fault: Fault) -> None:
        inst = self.cluster.pick(fault.slot)
        if inst is not None:
            self.cluster.term(inst, wait=False)
            self.later(fault.down, lambda: self._restart_after_exit(inst))

    def _restart_after_exit(self, inst: Instance) -> None:
        if inst.proc.poll() is None:
            self.later(1.0, lambda: self._restart_after_exit(inst))
            return
        self.cluster.wait_exit(inst)
        self.cluster.start()

    def _scale_in(self, fault: Fault) -> None:
        if len([i for i in self.cluster.running if not i.stopped]) <= 1:
            self.say("scale-in skipped: it would leave no instance awake")
            return
        inst = self.cluster.pick(fault.slot)
        if inst is not None:
            self.cluster.term(inst, wait=False)
            self.later(1.0, lambda: self._reap(inst))

    def _reap(self, inst: Instance) -> None:
        if inst.proc.poll() is None:
            self.later(1.0, lambda: self._reap(inst))
        else:
            self.cluster.wait_exit(inst)

    def _zombie(self, fault: Fault) -> None:
        inst = self.cluster.pick(fault.slot)
        if inst is not None:
            self.cluster.stop(inst)
            self.later(fault.down, lambda: self.cluster.cont(inst))

    def _broker(self, fault: Fault) -> None:
        """Stop, wait, start, on a thread: the schedule goes on while the broker is away."""

        def cycle() -> None:
            outage = [time.time(), time.time()]
            self.broker_outages.append(outage)
            broker("stop", self.port)
            time.sleep(fault.down)
            broker("start", self.port)
            outage[1] = time.time()
            self.say("broker back")

        self.broker_thread = threading.Thread(target=cycle, name="broker", daemon=True)
        self.broker_thread.start()

    def _outage(self, fault: Fault) -> None:
        self.sandbox.set_fault("*", status=503, duration=OUTAGE_SECONDS)
        steps = int(OUTAGE_REAL_SECONDS)
        for i in range(1, steps + 1):
            self.later(float(i), lambda: self._advance(OUTAGE_SECONDS / steps, quiet=True))

    def _advance(self, seconds: float, *, quiet: bool = False) -> None:
        self.sandbox.advance_clock(seconds)
        self.offset += seconds
        self.jumps.append([time.time(), self.offset])
        if not quiet:
            self.say(f"sandbox clock +{seconds:.0f}s (offset {self.offset:.0f}s)")

    # --- the loop -------------------------------------------------------------------------------

    def committed_total(self) -> int | None:
        try:
            probe = kafka_io.committed(
                self.bootstrap, self.group, TOPICS, timeout=kafka_io.PROBE_TIMEOUT
            )
            return sum(probe.values())
        except Exception:  # the broker is down for a moment: skip this sample
            return None

    def tick(self, produced: int) -> None:
        for inst in self.cluster.reap_unexpected():
            self.say(f"{inst.name} exited on its own (code {inst.proc.returncode}); restarting")
            self.cluster.start()
        if self.sampler is None or not self.sampler.is_alive():
            # On a thread: while the broker is away a probe takes seconds, and faults are due.
            self.sampler = threading.Thread(target=self._sample, args=(produced,), daemon=True)
            self.sampler.start()

    def _sample(self, produced: int) -> None:
        done = self.committed_total()
        if done is not None:
            self.samples.append((time.monotonic() - self.started, done))
            self.say(
                f"committed {done:,} of {produced:,} produced "
                f"({len(self.cluster.running)} instances)"
            )

    def loop_until(
        self, deadline: float, produced: Callable[[], int], stop: Callable[[], bool]
    ) -> None:
        next_sample = time.monotonic()
        while time.monotonic() < deadline and not stop():
            now = time.monotonic()
            while self.queue and self.queue[0][0] <= now:
                _, _, action = heapq.heappop(self.queue)
                action()
            if now >= next_sample:
                self.tick(produced())
                next_sample = now + SAMPLE_SECONDS
            time.sleep(0.1)


def execute(
    run: Run, faults: list[Fault], producer: kafka_io.HistoryProducer, first: int
) -> dict[str, Any]:
    run.started = time.monotonic()
    for spec in run.profile.background:
        run.sandbox.set_fault("*", **spec, seed=run.seed)
    for _ in range(run.profile.instances):
        run.cluster.start()
    producer.trickle(first, run.profile.window * 0.9)  # a backlog until the last faults
    for fault in faults:
        run.later(fault.at, functools.partial(run.apply, fault))

    def produced() -> int:
        return producer.delivered

    last = max(f.at for f in faults) + OUTAGE_REAL_SECONDS + 60
    run.loop_until(run.started + last, produced, lambda: not run.queue)
    if run.broker_thread is not None:
        run.broker_thread.join()
    window_end = time.monotonic()
    committed_in_window = run.samples[-1][1] if run.samples else 0
    run.say("faults over: clearing sandbox faults, back to the profile's instance count")
    run.sandbox.clear_faults()
    for inst in list(run.cluster.running):
        if inst.stopped:
            run.cluster.cont(inst)
    while len(run.cluster.running) < run.profile.instances:
        run.cluster.start()
    ends: dict[str, int] = {}

    def drained() -> bool:
        nonlocal ends
        if not producer.done.is_set():
            return False
        try:
            ends = ends or kafka_io.end_offsets(run.bootstrap, TOPICS)
            now = kafka_io.committed(run.bootstrap, run.group, TOPICS, kafka_io.PROBE_TIMEOUT)
            return now == ends
        except Exception:
            return False

    run.loop_until(time.monotonic() + run.profile.drain_timeout, produced, drained)
    drain = time.monotonic() - window_end
    run.say(f"drain: {drain:.0f}s; stopping every instance (SIGTERM)")
    run.cluster.shutdown()
    return {
        "total": run.total,
        "committed_in_window": committed_in_window,
        "window": window_end - run.started,
        "drain_seconds": drain,
        "samples": run.samples,
    }


def main(argv: list[str] | None = None) -> int:
    from bridge.sandbox.testing import sandbox_process

    args = _parse(argv)
    profile = PROFILES[args.profile]
    if args.instances:
        profile = dataclasses.replace(profile, instances=args.instances)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.run_dir or f"var/chaos/{profile.name}-{args.seed}-{stamp}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    last = run_dir.parent / "last"
    if last.is_symlink() or last.exists():
        last.unlink()
    last.symlink_to(run_dir.name)
    bootstrap = f"127.0.0.1:{args.kafka_port}"
    zombie = args.zombie_seconds or profile.zombie_seconds or SESSION_SECONDS + 5
    faults = make_schedule(profile, args.seed, stop_seconds=zombie)
    print(
        f"chaos profile {profile.name}, seed {args.seed}, {profile.instances} instances, "
        f"{args.protocol} group protocol, run dir {run_dir}"
    )
    if profile.background:
        print(f"sandbox faults for the whole run: {list(profile.background)}")
    print(
        f"fault schedule (rerun: python -m chaos --profile {profile.name} --seed {args.seed} "
        f"--protocol {args.protocol}):"
    )
    print(format_schedule(faults), flush=True)
    messages, expected = build(
        args.seed, profile.people, time.time(), poison=profile.poison, rejected=profile.rejected
    )
    print(
        f"history: {len(messages):,} messages for {profile.people:,} people, "
        f"{len(expected.tracks):,} tracks, {len(expected.triggers):,} triggers "
        f"({len(expected.stale)} stale), {profile.poison + profile.rejected} poison "
        f"({profile.rejected} making a call Meisa refuses)",
        flush=True,
    )
    group = f"chaos-{profile.name}-{args.seed}-{stamp}"
    ledger = None if args.no_ledger else f"meisa-bridge.chaos.ledger-{stamp}"
    outcomes = OUTCOMES_TOPIC if profile.outcomes else None
    with sandbox_process({**SANDBOX_CONFIG, "seed": args.seed}) as (sandbox, _proc):
        key = SANDBOX_CONFIG["keys"][0]["key"]
        config = bridge_config(
            run_dir,
            bootstrap=bootstrap,
            group=group,
            base_url=sandbox.base_url,
            ledger=ledger,
            protocol=args.protocol,
            outcomes=outcomes,
        )
        fresh = {**TOPICS, DLQ_TOPIC: 1}
        if outcomes:
            fresh[outcomes] = OUTCOMES_PARTITIONS
        kafka_io.fresh_topics(bootstrap, fresh)
        producer = kafka_io.HistoryProducer(bootstrap, messages)
        first = producer.first(profile.first_share)
        env = {**os.environ, "MEISA_API_KEY": key}
        the_cluster = Cluster(config, run_dir, env)
        run = Run(
            profile,
            args.seed,
            bootstrap,
            args.kafka_port,
            run_dir,
            sandbox,
            the_cluster,
            group,
            total=len(messages),
        )
        try:
            progress = execute(run, faults, producer, first)
        except BaseException:
            for inst in list(the_cluster.running):
                the_cluster.kill(inst)
            raise
        record = check.sandbox_record(sandbox.url)
    (run_dir / "sandbox.json").write_text(json.dumps(record))
    expected.poison = producer.poison
    manifest = {
        "profile": profile.name,
        "seed": args.seed,
        "protocol": args.protocol,
        "track_budget": profile.track_budget,
        "bootstrap": bootstrap,
        "topics": TOPICS,
        "dlq_topic": DLQ_TOPIC,
        "group": group,
        "ledger_topic": ledger,
        "outcomes_topic": outcomes,
        "schedule": [f.__repr__() for f in faults],
        "instances": the_cluster.history,
        "clock_jumps": run.jumps,
        "broker_outages": run.broker_outages,
        "progress": progress,
        "produce_errors": producer.errors[:20],
        "expected": expected.to_json(),
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    print(f"\n== oracle (python -m chaos.check --run-dir {run_dir})", flush=True)
    return check.check_dir(run_dir)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="short")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--instances", type=int, default=0, help="default: the profile's")
    p.add_argument("--kafka-port", type=int, default=int(os.environ.get("KAFKA_PORT", "9092")))
    p.add_argument("--run-dir", default=None, help="default: var/chaos/<profile>-<seed>-<time>")
    p.add_argument(
        "--protocol",
        choices=("consumer", "classic"),
        default="consumer",
        help="the consumer group protocol: consumer (KIP-848, the bridge's default) or classic",
    )
    p.add_argument(
        "--zombie-seconds",
        type=float,
        default=None,
        help="SIGSTOP length (default: the profile's, else the 45 s classic session + 5 s)",
    )
    p.add_argument(
        "--no-ledger", action="store_true", help="run the bridges without a sent-email ledger"
    )
    return p.parse_args(argv)
