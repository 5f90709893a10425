"""A small in-process sampling profiler: where the bridge's CPU goes, by hot-path stage.

    python bench/_sampler.py OUT.json -- -m bridge run --config bridge.yaml

runs the module after `--` (as `python -m` would) with a sampler beside it. The main thread,
which runs the event loop and so nearly all of the bridge's Python, is sampled by a timer signal
that fires every `INTERVAL` seconds of process CPU (ITIMER_PROF): its handler charges the CPU the
thread spent since the previous sample to the stage of the frame it interrupted. (A sampler
thread could only look when the main thread releases the GIL, which is mostly inside socket
calls: it charged a third of the CPU to `recv`.) Other Python threads (the Kafka consumer's) are
sampled by a thread that reads their CPU clocks and stacks. A thread found waiting (the event
loop in epoll, an executor thread waiting for work) is not charged: the CPU it spent since the
previous sample is spread over that thread's stages in proportion to the rest.

The stage is the innermost frame that belongs to a known part (stdlib frames are skipped:
`json.dumps` called from the client is "send"). A stack that reaches the event loop's own frames
first (its select, timers and ready callbacks, asyncio's own callbacks) is "event loop"; one with
no known frame at all is "other". Native threads are read by name at exit: pyreqwest's engine
thread is "HTTP engine thread"; the rest of the CPU outside Python threads (librdkafka's own
threads) is the process total minus what was seen. At exit OUT.json holds
{"stages": {stage: cpu_seconds}, "native": {stage: cpu_seconds}, "process_cpu": seconds,
"samples": n}; `all_stages(report)` gives every stage with the librdkafka remainder.

Not a benchmark itself (scripts/bench.sh skips `_*.py`); bench/side_by_side.py runs it.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import runpy
import signal
import sys
import sysconfig
import threading
import time
from types import CodeType, FrameType
from typing import Any

INTERVAL = 0.002  # 500 samples/s: a few % overhead, enough samples for a 10 s run

# (stage, path fragments), first match wins within one frame; stages follow the hot path.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("consume", ("bridge/kafka/", "confluent_kafka/")),
    ("decode", ("bridge/codecs/", "bridge/events.py", "bridge/outcome.py", "fastavro/")),
    ("match", ("bridge/rules/engine.py:matching", "bridge/rules/engine.py:_action_applies")),
    ("map", ("bridge/rules/", "jmespath/")),
    ("lockstep", ("bridge/pipeline/lockstep.py",)),
    ("coalesce", ("bridge/pipeline/coalesce.py",)),
    ("govern", ("bridge/meisa/governor.py", "bridge/meisa/schedule.py", "bridge/meisa/aimd.py")),
    ("classify", ("bridge/meisa/classify.py", "bridge/meisa/models.py")),
    (
        "send",
        (
            "bridge/meisa/client.py",
            "bridge/meisa/calls.py",
            "bridge/meisa/transport.py",
            "bridge/meisa/reqwest.py",
            "bridge/meisa/wire.py",
            "httpx/",
            "httpcore/",
            "h11/",
            "anyio/",
            "sniffio/",
        ),
    ),
    ("retry", ("bridge/meisa/retry.py",)),
    ("deliver", ("bridge/meisa/delivery.py", "bridge/pipeline/runner.py:deliver", "bridge/ledger")),
    ("commit", ("bridge/pipeline/offsets.py", "bridge/pipeline/commit.py")),
    # the per-person lanes, slots and call tasks
    (
        "dispatch",
        (
            "bridge/pipeline/dispatcher.py",
            "bridge/pipeline/lanes.py",
            "bridge/identity.py",
            "bridge/pipeline/fence.py",
            "bridge/pipeline/guards.py",
            "bridge/pipeline/message.py",
        ),
    ),
    # pipeline.py: the poll loop (accept, admit, backpressure) and finishing messages
    ("poll loop", ("bridge/pipeline/pipeline.py",)),
    ("log+metrics", ("bridge/observability/", "prometheus_client/", "/logging/")),
)
# The event loop's own frames: a stack that reaches one of them before any known stage is the
# loop's own work (select, timers, ready callbacks), not that of the code that started the loop.
LOOP_FRAMES = frozenset(
    {
        ("asyncio/base_events.py", "_run_once"),
        ("asyncio/events.py", "_run"),
        ("asyncio/base_events.py", "run_forever"),
        ("asyncio/runners.py", "run"),  # uvloop runs its loop in C: callbacks sit right on it
    }
)
# Innermost frames of a thread that waits: the event loop in epoll, an idle executor thread.
WAITS = frozenset({("selectors.py", "select"), ("thread.py", "_worker"), ("threading.py", "wait")})
STDLIB = sysconfig.get_paths()["stdlib"]


_BY_CODE: dict[CodeType, str | None] = {}  # a frame's code decides its stage: computed once


def _code_stage(code: CodeType) -> str | None:
    path = code.co_filename
    if any(f in path and code.co_name.startswith(name) for f, name in LOOP_FRAMES):
        return "event loop"
    if "/logging/" in path:  # stdlib, but its cost is the bridge's choice
        return "log+metrics"
    if path.startswith(STDLIB) and "site-packages" not in path:
        return None
    where = f"{path}:{code.co_name}"
    return next((stage for stage, parts in STAGES if any(p in where for p in parts)), None)


def _waiting(frame: FrameType) -> bool:
    """The thread is blocked (in epoll, or a worker thread waiting for work) right now."""
    code = frame.f_code
    return (code.co_filename.rpartition("/")[2], code.co_name) in WAITS


def stage_of(frame: FrameType | None) -> str:
    while frame is not None:
        code = frame.f_code
        stage = _BY_CODE.get(code, "")
        if stage == "":
            stage = _BY_CODE[code] = _code_stage(code)
        if stage is not None:
            return stage
        frame = frame.f_back
    return "other"


class Sampler:
    """The main thread (the event loop) is sampled by a CPU-time timer signal; other Python
    threads (the Kafka consumer's) by a thread reading their CPU clocks and stacks."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.stages: dict[int, dict[str, float]] = {}  # per thread
        self.idle: dict[int, float] = {}  # per thread: CPU seen at samples that found it waiting
        self.samples = 0
        self._main = threading.main_thread().ident or 0
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        signal.signal(signal.SIGPROF, self._on_timer)
        signal.setitimer(signal.ITIMER_PROF, INTERVAL, INTERVAL)
        self._thread.start()
        atexit.register(self.write)

    def _on_timer(self, signum: int, frame: FrameType | None) -> None:
        if frame is not None:
            self._charge(self._main, time.thread_time(), frame)

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(INTERVAL):
            for ident, frame in sys._current_frames().items():
                if ident not in (me, self._main):
                    self._sample(ident, frame)

    def _sample(self, ident: int, frame: FrameType) -> None:
        try:
            cpu = time.clock_gettime(time.pthread_getcpuclockid(ident))
        except (OSError, ProcessLookupError):  # the thread just ended
            return
        self._charge(ident, cpu, frame)

    def _charge(self, ident: int, cpu: float, frame: FrameType) -> None:
        spent = cpu - self._last.get(ident, cpu)
        self._last[ident] = cpu
        if spent > 0:
            if _waiting(frame):
                self.idle[ident] = self.idle.get(ident, 0.0) + spent
            else:
                stages = self.stages.setdefault(ident, {})
                stage = stage_of(frame)
                stages[stage] = stages.get(stage, 0.0) + spent
        self.samples += 1

    def totals(self) -> dict[str, float]:
        """CPU by stage; a thread's CPU found at its waits is spread over its own stages."""
        out: dict[str, float] = {}
        for ident in self.stages.keys() | self.idle.keys():
            stages = self.stages.get(ident) or {"other": 0.0}
            seen = sum(stages.values())
            for stage, cpu in stages.items():
                share = cpu / seen if seen else 1.0
                out[stage] = out.get(stage, 0.0) + cpu + share * self.idle.get(ident, 0.0)
        return out

    def write(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0.0)
        self._stop.set()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        report = {
            "stages": self.totals(),
            "native": native_threads(),
            "process_cpu": usage.ru_utime + usage.ru_stime,
            "samples": self.samples,
        }
        with open(self.out, "w", encoding="utf-8") as fh:
            json.dump(report, fh)


NATIVE_STAGES = {"pyreqwest": "HTTP engine thread"}  # thread name prefix -> stage


def native_threads() -> dict[str, float]:
    """CPU seconds of the named native threads still alive, by stage (Linux /proc)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as fh:
                stat = fh.read()
        except OSError:  # the thread just ended
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        stage = next((s for prefix, s in NATIVE_STAGES.items() if name.startswith(prefix)), None)
        if stage is not None:
            fields = stat[stat.rindex(")") + 2 :].split()
            out[stage] = out.get(stage, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def all_stages(report: dict[str, Any]) -> dict[str, float]:
    """CPU seconds by stage, native threads included; what no sample and no named thread saw is
    librdkafka's own threads."""
    stages: dict[str, float] = {**report["stages"], **report.get("native", {})}
    stages["librdkafka threads"] = max(0.0, report["process_cpu"] - sum(stages.values()))
    return stages


def main() -> None:
    out, sep, *rest = sys.argv[1:]
    if sep != "--" or rest[:1] != ["-m"] or len(rest) < 2:
        raise SystemExit("usage: _sampler.py OUT.json -- -m MODULE [ARGS...]")
    Sampler(out).start()
    sys.argv = [rest[1], *rest[2:]]
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    runpy.run_module(rest[1], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
