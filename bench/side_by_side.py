"""Side by side: meisa-bridge, a Go stream processor and a naive Python loop, clean and faulty.

    make bench-side                     # builds the Go baseline once (cached under .cache/)
    .venv/bin/python bench/side_by_side.py [--events 20000] [--short-events 2000]
        [--fault-events 2000] [--no-profile]

Workload: JSON events for 600 people (a sign-up each, then plan changes and feature usage) on a
4-partition topic, keyed by user id, mapped to upsert/track; per-person order kept and offsets
committed after success by all three. The Meisa double is the sandbox (unlimited key, 5 ms added
latency); the fault profile adds 429 with `Retry-After: 1` to 2% of requests and 503 to 5%.
`--latency-ms`, `--rate-429`, `--retry-after` and `--rate-503` change them. The bridge and Go run
`--repeat` rounds (3) alternating, and the table shows each one's median run by CPU per call:
on a shared machine a single run of either swings by a fifth or more. The naive loop runs once,
clean on the short run's events.

The systems, each its own process (its CPU and peak RSS are its own):
* bridge: `meisa-bridge run` with default settings.
* go: a Benthos core stream (github.com/redpanda-data/benthos/v4, from the Go module proxy)
  with a small franz-go input that keeps per-key order and commits finished offsets, a Bloblang
  mapping and the http_client output, 64 in flight (bench/go/).
* naive: one message at a time, consume -> POST -> synchronous commit (bench/naive.py).
* paced: the bridge again, told the key allows `--paced` requests a minute (100,000; the double
  still has no limit), so its rate governor paces the same backlog: how much of the key it
  spends, and its marginal CPU per event against the unpaced bridge's (`paced/bridge`).
* held: the unpaced bridge with the double answering slowly enough that its calls go at about
  the paced key's rate (the answer time learnt round to round): `paced/held` is what the pacing
  itself costs, apart from what running at a third of the speed costs any run.

events/s and CPU us/event cover the busy span, from the first to the last API request the double
saw; "CPU us/event (all)" adds start-up and shutdown. calls counts every API request, retries too.
"silence s" is the longest time between two consecutive API requests. The marginal CPU per event
is the whole process's CPU of a clean `--events` run minus that of a `--short-events` run of the
same workload, over the events between them: start-up and shutdown cancel out. Each round runs
both for the bridge and Go, alternating.
A last bridge run under an in-process sampler (bench/_sampler.py) breaks its CPU down by stage.
`--busy-cores` keeps every core busy with a SCHED_IDLE loop: on a virtual machine whose idle
cores halt, each sleep charges the sleeping thread the halt and the wake-up (bench/wake_cost.py),
which a run that sleeps often (paced) pays far more of than one at full speed.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import (
    BOOTSTRAP,
    ROOT,
    add_bridge_set,
    bridge_run_argv,
    busy_cores,
    load_average,
    peak_rss_mib,
    proc_cpu,
    settings,
    topics,
)
from _sampler import all_stages
from bridge_harness import end_offsets, write_config

from bridge.settings import PipelineSettings

PEOPLE = 600
PARTITIONS = 4
LATENCY_MS = 5
GO_SOURCE = ROOT / "bench" / "go"
GO_CACHE = ROOT / ".cache" / "bench-go"
SANDBOX = {"request_log_size": 1_000_000}
BRIDGES = ("bridge", "paced", "held")  # the systems that run meisa-bridge
TICK = 0.05  # seconds between checks of the committed offsets and the process's CPU

RULES: list[dict[str, Any]] = [
    {
        "name": "signed-up",
        "on": "user.signed_up",
        "do": [
            {
                "upsert": {
                    "email": "{{ data.email }}",
                    "external_id": "{{ data.user_id }}",
                    "first_name": "{{ data.name }}",
                    "custom_fields": {"plan": "{{ data.plan }}"},
                }
            }
        ],
    },
    {
        "name": "plan-changed",
        "on": "user.plan_changed",
        "do": [
            {
                "upsert": {
                    "email": "{{ data.email }}",
                    "external_id": "{{ data.user_id }}",
                    "custom_fields": {"plan": "{{ data.plan }}"},
                }
            }
        ],
    },
    {
        "name": "feature-used",
        "on": "feature.used",
        "do": [
            {
                "track": {
                    "email": "{{ data.email }}",
                    "external_id": "{{ data.user_id }}",
                    "event_name": "feature_used",
                    "properties": {"feature": "{{ data.feature }}"},
                }
            }
        ],
    },
]

# The same mapping in Bloblang, for the Go baseline.
BLOBLANG = """\
meta meisa_path = if this.type == "feature.used" { "events/track/" } else { "contacts/upsert/" }
root = match {
  this.type == "user.signed_up" => {"email": this.data.email, "external_id": this.data.user_id,
                       "first_name": this.data.name, "custom_fields": {"plan": this.data.plan}},
  this.type == "user.plan_changed" => {"email": this.data.email, "external_id": this.data.user_id,
                          "custom_fields": {"plan": this.data.plan}},
  this.type == "feature.used" => {"email": this.data.email, "external_id": this.data.user_id,
                     "event_name": "feature_used", "properties": {"feature": this.data.feature}},
  _ => deleted(),
}
"""


def workload(count: int, seed: int = 11, unmapped: float = 0.0) -> list[dict[str, Any]]:
    """A sign-up per person, then 40% plan changes and 60% feature usage, people at random.

    With `unmapped` > 0 that share of the events after the sign-ups are page views, which no
    rule maps (topics often carry far more events than the rules act on).
    """
    rng = random.Random(seed)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def event(kind: str, user: int, **data: Any) -> dict[str, Any]:
        uid = f"usr_{user}"
        return {
            "id": f"evt-{uuid.UUID(int=rng.getrandbits(128)).hex}",
            "type": kind,
            "time": now,
            "data": {"user_id": uid, "email": f"user{user}@example.com", **data},
        }

    events = [event("user.signed_up", u, name=f"User {u}", plan="free") for u in range(PEOPLE)]
    while len(events) < count:
        user = rng.randrange(PEOPLE)
        if unmapped and rng.random() < unmapped:
            events.append(event("page.viewed", user, page=rng.choice(["/", "/pricing"])))
        elif rng.random() < 0.4:
            events.append(event("user.plan_changed", user, plan=rng.choice(["pro", "team"])))
        else:
            events.append(event("feature.used", user, feature=rng.choice(["export", "share"])))
    return events[:count]


def produce(topic: str, events: list[dict[str, Any]]) -> None:
    import orjson
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True})
    for item in events:
        producer.produce(topic, key=item["data"]["user_id"].encode(), value=orjson.dumps(item))
        producer.poll(0)
    assert producer.flush(60) == 0


# -- the Go baseline ---------------------------------------------------------------------------


def build_go() -> tuple[Path | None, str]:
    """The Go baseline binary (built once per source version), or None and why not."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    sources = [*sorted(GO_SOURCE.glob("*.go")), GO_SOURCE / "go.mod", GO_SOURCE / "go.sum"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    binary = GO_CACHE / f"baseline-{digest}"
    if binary.exists():
        return binary, "cached"
    if not Path(go).exists():
        return None, "no Go toolchain on this machine"
    GO_CACHE.mkdir(parents=True, exist_ok=True)
    print(f"building the Go baseline (Benthos + franz-go) into {binary.relative_to(ROOT)} ...")
    started = time.monotonic()
    done = subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=GO_SOURCE, capture_output=True, text=True,
        timeout=1800, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return None, f"go build failed: {done.stderr.strip()[-500:]}"
    return binary, f"built in {time.monotonic() - started:.0f} s"


def go_config(tmp: Path, *, topic: str, group: str, base_url: str, api_key: str) -> Path:
    import yaml

    base = base_url.rstrip("/")
    doc = {
        "input": {
            "franz_ordered": {
                "seed_brokers": [BOOTSTRAP], "topic": topic, "consumer_group": group,
            }
        },
        "pipeline": {"processors": [{"mapping": BLOBLANG}]},
        "output": {
            "http_client": {
                "url": base + '/${! @meisa_path }',
                "verb": "POST",
                "headers": {"X-API-Key": api_key, "Content-Type": "application/json"},
                "max_in_flight": 64,
            }
        },
        "logger": {"level": "WARN"},
    }  # fmt: skip
    path = tmp / f"go-{group}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# -- running one system ------------------------------------------------------------------------


@dataclass
class Run:
    system: str
    profile: str
    events: int
    requests: list[dict[str, Any]]
    span: float  # first to last API request, seconds
    cpu_busy: float  # process CPU over that span, seconds
    cpu_all: float  # whole process CPU, seconds
    peak_rss_mib: float
    threads: dict[str, float]  # CPU seconds by thread group, read just before it was stopped

    @property
    def calls(self) -> int:
        return len(self.requests)

    def status_count(self, pred: Callable[[int], bool]) -> int:
        return sum(1 for r in self.requests if pred(int(r["status"])))

    def longest_silence(self) -> float:
        times = sorted(_epoch(r["time"]) for r in self.requests)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _cpu_at(timeline: list[tuple[float, float]], when: float) -> float:
    """Process CPU at wall time `when`, interpolated between samples."""
    before = [(t, c) for t, c in timeline if t <= when] or timeline[:1]
    after = [(t, c) for t, c in timeline if t >= when] or timeline[-1:]
    (t0, c0), (t1, c1) = before[-1], after[0]
    return c0 if t1 <= t0 else c0 + (c1 - c0) * (when - t0) / (t1 - t0)


def committed(probe: Any, tps: list[Any]) -> dict[int, int] | None:
    """The group's committed offsets by partition; None while the coordinator is not ready."""
    from confluent_kafka import KafkaException

    try:
        return {tp.partition: tp.offset for tp in probe.committed(tps, timeout=10)}
    except KafkaException:  # e.g. NOT_COORDINATOR on a broker that just started
        return None


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far by thread group: the main thread (the bridge's event loop), librdkafka's
    (rdk:*), and the others by name (pyreqwest's engine, the consumer's executor thread)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        group = "main" if task.name == str(pid) else "rdk:*" if name.startswith("rdk:") else name
        out[group] = out.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy (a dev dependency) sampling `pid` without stopping it, until it exits."""
    spy = Path(sys.executable).parent / "py-spy"
    argv = [str(spy), "record", "--pid", str(pid), "--rate", "250", "--nonblocking",
            "--format", "raw", "--threads", "-o", str(out)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_system(
    system: str, argv: list[str], *, group: str, topic: str, events: int, sandbox: Any,
    profile: str, timeout: float, whole: bool = False, spy_to: Path | None = None,
) -> Run:  # fmt: skip
    """Run one system until its group committed every offset; `whole`: measure the whole run;
    `spy_to`: py-spy records the process's stacks into that file (collapsed, for flame graphs)."""
    from confluent_kafka import Consumer, TopicPartition

    ends = end_offsets(BOOTSTRAP, topic, PARTITIONS)
    probe = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group})
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=ROOT)
    spy = None if spy_to is None else py_spy(proc.pid, spy_to)
    timeline: list[tuple[float, float]] = []
    peak = 0.0
    threads: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    try:
        while True:
            cpu, rss = proc_cpu(proc.pid), peak_rss_mib(proc.pid)
            if cpu is not None:
                timeline.append((time.time(), cpu))
            peak = max(peak, rss or 0.0)
            if proc.poll() is not None:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"{system} exited with {proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{system} did not finish {events} events in {timeout:.0f} s")
            if committed(probe, tps) == ends:
                break
            time.sleep(TICK)
    finally:
        probe.close()
        if proc.poll() is None:
            peak = max(peak, peak_rss_mib(proc.pid) or 0.0)
            threads = thread_cpu(proc.pid)
            proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.close()
        if spy is not None:
            spy.wait(timeout=60)
    requests = [
        r for r in sandbox.requests(path="/api/v1/", limit=10**7)
        if not r["path"].endswith("/ping/")
    ]  # fmt: skip
    if requests and not whole:
        first, last = _epoch(requests[0]["time"]), _epoch(requests[-1]["time"])
    else:  # events that make no call: the run from start to the last commit is the work
        first, last = timeline[0][0], timeline[-1][0]
    return Run(
        system=system, profile=profile, events=events, requests=requests,
        span=max(last - first, 1e-3),
        cpu_busy=_cpu_at(timeline, last) - _cpu_at(timeline, first),
        cpu_all=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=peak, threads=threads,
    )  # fmt: skip


# -- the table ---------------------------------------------------------------------------------

HEADER = (
    f"{'system':<8}{'profile':<8}{'events':>7}{'events/s':>10}{'CPU us/event':>13}"
    f"{'CPU us/call':>12}{'(all)/event':>12}{'calls/event':>12}{'RSS MiB':>9}"
    f"{'429s':>6}{'5xx':>6}{'silence s':>10}"
)


def row(r: Run) -> str:
    return (
        f"{r.system:<8}{r.profile:<8}{r.events:>7}{r.events / r.span:>10.0f}"
        f"{r.cpu_busy * 1e6 / r.events:>13.0f}{r.cpu_busy * 1e6 / max(r.calls, 1):>12.0f}"
        f"{r.cpu_all * 1e6 / r.events:>12.0f}{r.calls / r.events:>12.2f}"
        f"{r.peak_rss_mib:>9.0f}{r.status_count(lambda s: s == 429):>6}"
        f"{r.status_count(lambda s: s >= 500):>6}{r.longest_silence():>10.2f}"
    )


def ratios(runs: dict[tuple[str, str], Run]) -> list[str]:
    out = []
    for profile in ("clean", "faults"):
        bridge = runs.get(("bridge", profile))
        if bridge is None:
            continue
        for other in ("go", "naive"):
            base = runs.get((other, profile))
            if base is None:
                continue
            speed = (bridge.events / bridge.span) / (base.events / base.span)
            per_call = (bridge.cpu_busy / max(bridge.calls, 1)) / (
                base.cpu_busy / max(base.calls, 1)
            )
            per_event = bridge.cpu_busy / base.cpu_busy * base.events / bridge.events
            rss = bridge.peak_rss_mib / base.peak_rss_mib
            out.append(
                f"{profile:<7} bridge/{other:<6} events/s x{speed:.2f}   CPU/call x{per_call:.2f}"
                f"   CPU/event x{per_event:.2f}   RSS x{rss:.2f}"
            )
    return out


def per_call(run: Run) -> float:
    return run.cpu_busy / max(run.calls, 1)


def median_run(runs: list[Run]) -> Run:
    """The run with the median CPU per call (the lower middle one of an even count)."""
    return sorted(runs, key=per_call)[(len(runs) - 1) // 2]


def round_ratios(rounds: dict[tuple[str, str], list[Run]]) -> str:
    """The clean bridge/go CPU-per-call ratio of each round: the spread behind the median."""
    pairs = zip(rounds.get(("bridge", "clean"), []), rounds.get(("go", "clean"), []), strict=False)
    found = [f"x{per_call(b) / per_call(g):.2f}" for b, g in pairs]
    return f"clean   bridge/go     CPU/call by round: {', '.join(found) or '-'}"


def spy_file(folder: str | None, system: str, profile: str, done: list[Run]) -> Path | None:
    """Where py-spy writes the stacks of this bridge run (`--py-spy DIR`), else None."""
    if folder is None or system not in BRIDGES:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) / f"{system}-{profile}-{len(done) + 1}.txt"


def marginal(long: Run, short: Run) -> float:
    """Seconds of CPU per event of a long run past a short one: whole-process CPU, so start-up,
    the group join and shutdown, which both runs pay alike, cancel out."""
    return (long.cpu_all - short.cpu_all) / max(long.events - short.events, 1)


def thread_table(rounds: dict[tuple[str, str], list[Run]], system: str) -> list[str]:
    """A bridge system's marginal CPU per event by thread (median over rounds)."""
    pairs = list(zip(rounds[(system, "clean")], rounds[(system, "short")], strict=False))
    names = sorted({n for long, _ in pairs for n in long.threads}, key=lambda n: (n != "main", n))
    out = []
    for name in names:
        each = [
            (long.threads.get(name, 0.0) - short.threads.get(name, 0.0))
            / max(long.events - short.events, 1)
            for long, short in pairs
        ]
        by_round = ", ".join(f"{v * 1e6:.0f}" for v in each)
        out.append(f"  {name:<12}{by_round:<36}{statistics.median(each) * 1e6:>8.0f}")
    return out


def marginal_table(rounds: dict[tuple[str, str], list[Run]]) -> list[str]:
    """Each system's marginal CPU per event by round and its median, and the bridge/Go ratio."""
    found: dict[str, list[float]] = {}
    for system in ("bridge", "paced", "held", "go"):
        pairs = zip(
            rounds.get((system, "clean"), []), rounds.get((system, "short"), []), strict=False
        )
        found[system] = [marginal(long, short) for long, short in pairs]
    if not found["bridge"]:
        return []
    (long, *_), (short, *_) = rounds[("bridge", "clean")], rounds[("bridge", "short")]
    out = [
        f"marginal CPU per event, clean: the {long.events}-event run minus the "
        f"{short.events}-event run, whole process, us",
        f"{'system':<14}{'by round':<36}{'median':>8}",
    ]
    for system, each in found.items():
        if each:
            by_round = ", ".join(f"{v * 1e6:.0f}" for v in each)
            out.append(f"{system:<14}{by_round:<36}{statistics.median(each) * 1e6:>8.0f}")
        if each and system in BRIDGES:
            out.extend(thread_table(rounds, system))
    for top, base in (("bridge", "go"), ("paced", "bridge"), ("paced", "held")):
        if found[top] and found[base]:
            by_round = ", ".join(
                f"x{t / b:.2f}" for t, b in zip(found[top], found[base], strict=False)
            )
            ratio = statistics.median(found[top]) / statistics.median(found[base])
            out.append(f"{top + '/' + base:<14}{by_round:<36}{'x' + format(ratio, '.2f'):>8}")
    return out


def paced_use(rounds: dict[tuple[str, str], list[Run]], per_minute: int) -> str | None:
    """The paced bridge's calls/s by round over what it could spend: the key's rate (what it
    told the governor), or the unpaced bridge's rate in the same round where that is lower."""
    paced, unpaced = rounds.get(("paced", "clean"), []), rounds.get(("bridge", "clean"), [])
    if not paced:
        return None
    key = per_minute / 60
    each = []
    for n, run in enumerate(paced):
        attainable = min([key, *(u.calls / u.span for u in unpaced[n : n + 1])])
        each.append(f"{run.calls / run.span:,.0f} ({run.calls / run.span / attainable:.0%})")
    return (
        f"clean   paced at {per_minute:,}/min ({key:,.0f} calls/s): calls/s by round (of the key, "
        f"or of the unpaced bridge's rate where lower): {', '.join(each)}"
    )


def held_use(rounds: dict[tuple[str, str], list[Run]], per_minute: int) -> str | None:
    """The held run's calls/s by round over the key's rate it was slowed to."""
    held, key = rounds.get(("held", "clean"), []), per_minute / 60
    if not held:
        return None
    rates = ", ".join(f"{r.calls / r.span:,.0f} ({r.calls / r.span / key:.0%})" for r in held)
    return f"clean   held (unpaced, Meisa slowed to the key's rate): calls/s by round {rates}"


# -- main --------------------------------------------------------------------------------------


def child_naive(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from naive import run_naive

    from bridge.config import load_config

    config = load_config(args.config)
    run_naive(
        bootstrap=BOOTSTRAP, topic=args.topic, group=str(config.kafka["group.id"]),
        base_url=config.meisa.base_url, api_key=config.meisa.api_key.get_secret_value(),
        rules=config.rules, total=args.events,
    )  # fmt: skip
    signal.pause()  # the parent stops it once the commits are seen, like the others


@dataclass(frozen=True)
class Faults:
    """The double's answers: added latency on every request; under the fault profile, 429 with
    a Retry-After on one share of the requests and 503 on another (seeded)."""

    latency_ms: int = LATENCY_MS
    rate_429: float = 0.02
    retry_after: int = 1
    rate_503: float = 0.05

    def describe(self) -> str:
        return (
            f"sandbox +{self.latency_ms} ms; faults: 429 Retry-After {self.retry_after} s on "
            f"{self.rate_429:.0%} and 503 on {self.rate_503:.0%} of requests"
        )


class Held:
    """The double's answer time for `held`, the unpaced bridge run at the paced key's rate: first
    what lets `pipeline.max_in_flight` calls on the wire go at that rate, then after each clean
    `held` run scaled by the rate it reached over the key's, so later rounds come near it."""

    def __init__(self, per_minute: int) -> None:
        self.key = per_minute / 60
        self.latency = PipelineSettings().max_in_flight / self.key  # seconds

    def faults(self, spec: Faults, system: str) -> Faults:
        if system != "held":
            return spec
        return replace(spec, latency_ms=max(1, round(self.latency * 1000)))

    def learn(self, run: Run) -> None:
        if run.span > 0:
            self.latency *= run.calls / run.span / self.key


def set_faults(sandbox: Any, faults: bool, spec: Faults) -> None:
    latency = spec.latency_ms
    for endpoint in ("upsert", "track"):
        if faults:
            sandbox.set_fault(
                endpoint, status=429, rate=spec.rate_429, retry_after=spec.retry_after,
                latency_ms=latency, seed=1,
            )  # fmt: skip
            sandbox.set_fault(endpoint, status=503, rate=spec.rate_503, latency_ms=latency, seed=2)
        sandbox.set_fault(endpoint, latency_ms=latency)


def commands(
    system: str, tmp: Path, *, topic: str, group: str, sandbox: Any, events: int,
    go_binary: Path | None, sample_to: Path | None = None, overrides: Sequence[str] = (),
) -> list[str] | None:  # fmt: skip
    key = sandbox.unlimited_key
    if system == "go":
        if go_binary is None:
            return None
        cfg = go_config(tmp, topic=topic, group=group, base_url=sandbox.base_url, api_key=key)
        return [str(go_binary), str(cfg)]
    # The bridge's own defaults (the test harness's config sets classic group properties and a
    # slower commit timer): the consumer group protocol, commits every 0.02 s.
    defaults = {"kafka": {"bootstrap.servers": BOOTSTRAP, "group.id": group}, "pipeline": {}}
    cfg = write_config(
        tmp, bootstrap=BOOTSTRAP, topics=[topic], base_url=sandbox.base_url, api_key=key,
        group=group, sections=defaults, extra={"rules": RULES, **settings(overrides)},
    )  # fmt: skip
    if system == "naive":
        return [sys.executable, __file__, "--child", "naive", "--config", str(cfg),
                "--topic", topic, "--events", str(events)]  # fmt: skip
    return bridge_run_argv(cfg, sample_to)


def profile_table(report: dict[str, Any], run: Run) -> list[str]:
    stages = all_stages(report)
    rdkafka = stages.pop("librdkafka threads")
    rows = [*sorted(stages.items(), key=lambda kv: -kv[1]), ("librdkafka threads", rdkafka)]
    total = sum(stages.values()) + rdkafka
    out = [f"{'stage':<20}{'us/event':>10}{'us/call':>10}{'share':>8}"]
    for stage, cpu in rows:
        out.append(
            f"{stage:<20}{cpu * 1e6 / run.events:>10.0f}{cpu * 1e6 / max(run.calls, 1):>10.0f}"
            f"{cpu / total:>8.0%}"
        )
    out.append(f"{'total (whole run)':<20}{total * 1e6 / run.events:>10.0f}"
               f"{total * 1e6 / max(run.calls, 1):>10.0f}{1:>8.0%}")  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=20_000, help="events in the clean profile")
    p.add_argument(
        "--short-events", type=int, default=2_000, metavar="N",
        help="the short clean run the marginal CPU per event subtracts (0: none)",
    )  # fmt: skip
    p.add_argument("--fault-events", type=int, default=2_000, help="events under faults")
    p.add_argument("--systems", default="bridge,paced,held,go,naive")
    p.add_argument(
        "--paced", type=int, default=100_000, metavar="PER_MIN",
        help="the key limit the paced bridge is told of (meisa.rate_limit_per_minute)",
    )  # fmt: skip
    p.add_argument("--no-profile", action="store_true", help="skip the sampled bridge run")
    p.add_argument(
        "--busy-cores", action="store_true",
        help="keep every core busy with a SCHED_IDLE loop, so that no measured thread is charged "
        "a halted core's wake-up (bench/wake_cost.py)",
    )  # fmt: skip
    p.add_argument(
        "--unmapped", type=float, default=0.0, metavar="SHARE",
        help="share of the events (after the sign-ups) that no rule maps, e.g. 0.95",
    )  # fmt: skip
    p.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    p.add_argument(
        "--repeat", type=int, default=3, metavar="N",
        help="rounds of the bridge and Go per profile, alternating (naive runs once); the table "
        "shows each system's median run by CPU per call, and every round's clean ratio is printed",
    )  # fmt: skip
    p.add_argument("--latency-ms", type=int, default=LATENCY_MS, help="added to every request")
    p.add_argument(
        "--rate-429", type=float, default=0.02, metavar="SHARE",
        help="under faults: share of the requests answered 429",
    )  # fmt: skip
    p.add_argument("--retry-after", type=int, default=1, help="the 429s' Retry-After, seconds")
    p.add_argument(
        "--rate-503", type=float, default=0.05, metavar="SHARE",
        help="under faults: share of the requests answered 503",
    )  # fmt: skip
    p.add_argument(
        "--py-spy", metavar="DIR",
        help="record each bridge run's stacks with py-spy into DIR (collapsed stack files)",
    )  # fmt: skip
    add_bridge_set(p)
    p.add_argument("--child", choices=["naive"])
    p.add_argument("--config")
    p.add_argument("--topic")
    args = p.parse_args()
    if args.child:
        child_naive(args)
        return
    run_all(args)


def run_all(args: argparse.Namespace) -> None:
    from bridge.sandbox.testing import sandbox_process

    systems = args.systems.split(",")
    spec = Faults(args.latency_ms, args.rate_429, args.retry_after, args.rate_503)
    go_binary, how = build_go() if "go" in systems else (None, "not asked for")
    print(f"Go baseline: {go_binary.relative_to(ROOT) if go_binary else 'none'} ({how})")
    if args.bridge_set:
        print(f"bridge settings changed: {', '.join(args.bridge_set)}")
    print(f"load average at start: {load_average():.1f}")
    rounds: dict[tuple[str, str], list[Run]] = {}
    profile_lines: list[str] = []
    held = Held(args.paced)
    with (
        sandbox_process(SANDBOX) as (sandbox, _),
        tempfile.TemporaryDirectory() as tmp_dir,
        busy_cores(args.busy_cores) as loops,
    ):
        tmp = Path(tmp_dir)
        if loops:
            print(f"cores kept busy: {loops} SCHED_IDLE loops")

        def run(system: str, profile: str, topic: str, count: int) -> None:
            group = f"side-{system}-{uuid.uuid4().hex[:6]}"
            paced = [f"meisa.rate_limit_per_minute={args.paced}"] if system == "paced" else []
            argv = commands(
                "bridge" if system in BRIDGES else system, tmp, topic=topic, group=group,
                sandbox=sandbox, events=count, go_binary=go_binary,
                overrides=[*args.bridge_set, *paced],
            )  # fmt: skip
            if argv is None:
                return
            sandbox.reset()
            set_faults(sandbox, profile == "faults", held.faults(spec, system))
            print(f"  {profile}: {system} ({count} events) ...", flush=True)
            done = run_system(
                system, argv, group=group, topic=topic, events=count, sandbox=sandbox,
                profile=profile, timeout=args.timeout, whole=bool(args.unmapped),
                spy_to=spy_file(args.py_spy, system, profile, rounds.get((system, profile), [])),
            )  # fmt: skip
            rounds.setdefault((system, profile), []).append(done)
            if system == "held" and profile == "clean":
                held.learn(done)

        short = 0 < args.short_events < args.events
        # naive is slow and far off: one round of it is enough, on the short topic when clean
        order = [s for r in range(max(1, args.repeat)) for s in systems if not r or s != "naive"]
        with topics(PARTITIONS, PARTITIONS, prefix="side-clean") as (long_topic, short_topic):
            produce(long_topic, workload(args.events, unmapped=args.unmapped))
            if short:
                produce(short_topic, workload(args.short_events, unmapped=args.unmapped))
            for system in order:
                if system == "naive" and short:
                    run(system, "clean", short_topic, args.short_events)
                    continue
                run(system, "clean", long_topic, args.events)
                if short:
                    run(system, "short", short_topic, args.short_events)
            if "bridge" in systems and not args.no_profile:
                profile_lines = sampled_bridge(
                    tmp, long_topic, args.events, sandbox, args, spec=spec
                )
        if args.fault_events:
            with topics(PARTITIONS, prefix="side-faults") as (topic,):
                produce(topic, workload(args.fault_events, unmapped=args.unmapped))
                for system in order:
                    if system != "held":  # a clean comparison only
                        run(system, "faults", topic, args.fault_events)
    print_results(args, rounds, profile_lines, go_binary=go_binary, how=how, spec=spec)


def print_results(
    args: argparse.Namespace, rounds: dict[tuple[str, str], list[Run]], profile_lines: list[str],
    *, go_binary: Path | None, how: str, spec: Faults,
) -> None:  # fmt: skip
    runs = {key: median_run(each) for key, each in rounds.items() if key[1] != "short"}
    print()
    print(HEADER)
    for run in runs.values():
        print(row(run))
    print()
    for line in ratios(runs):
        print(line)
    if args.repeat > 1:
        print(round_ratios(rounds))
    silences = [f"{r.longest_silence():.2f}" for r in rounds.get(("bridge", "clean"), [])]
    if silences:
        print(f"clean   bridge        longest silence by round, s: {', '.join(silences)}")
    for use in (paced_use(rounds, args.paced), held_use(rounds, args.paced)):
        if use:
            print(use)
    marginals = marginal_table(rounds)
    if marginals:
        print()
        print("\n".join(marginals))
    if go_binary is None and "go" in args.systems.split(","):
        print(f"(no Go row: {how})")
    if profile_lines:
        print("\nbridge CPU by stage (clean profile, in-process sampler, separate run):")
        print("\n".join(profile_lines))
    if args.unmapped:
        print(
            f"{args.unmapped:.0%} of the events after the sign-ups map to no call; events/s and "
            "CPU us/event over the whole run, start-up included"
        )
    print(
        f"\n{PEOPLE} people, {PARTITIONS} partitions, {spec.describe()}; CPU us/event over the "
        "busy span, (all) with start-up and shutdown; calls include retries; load average at "
        f"the end: {load_average():.1f}."
    )


def sampled_bridge(
    tmp: Path, topic: str, count: int, sandbox: Any, args: argparse.Namespace, *, spec: Faults
) -> list[str]:
    group = f"side-sampled-{uuid.uuid4().hex[:6]}"
    out = tmp / "sampler.json"
    argv = commands(
        "bridge", tmp, topic=topic, group=group, sandbox=sandbox, events=count, go_binary=None,
        sample_to=out, overrides=args.bridge_set,
    )  # fmt: skip
    assert argv is not None
    sandbox.reset()
    set_faults(sandbox, False, spec)
    print("  clean: bridge under the sampler ...", flush=True)
    run = run_system(
        "bridge", argv, group=group, topic=topic, events=count, sandbox=sandbox,
        profile="sampled", timeout=args.timeout,
    )  # fmt: skip
    return profile_table(json.loads(out.read_text()), run)


if __name__ == "__main__":
    main()
