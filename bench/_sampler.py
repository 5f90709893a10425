"""A small in-process sampling profiler: where the bridge's CPU goes, by hot-path stage.

    python bench/_sampler.py OUT.json -- -m bridge run --config bridge.yaml

runs the module after `--` (as `python -m` would) with a sampler thread beside it. Every
`INTERVAL` seconds the sampler reads each Python thread's CPU clock and stack; the CPU the thread
spent since the previous sample goes to the stage its stack is in now. So waiting (select, a
blocking librdkafka call) weighs nothing, without having to recognise it. The stage is the
innermost frame that belongs to a known part (stdlib frames are skipped: `json.dumps` called from
the client is "send"); a stack with none is "event loop". CPU outside Python threads (librdkafka's
own threads) is the process total minus what the sampler saw. At exit OUT.json holds
{"stages": {stage: cpu_seconds}, "process_cpu": seconds, "samples": n}.

Not a benchmark itself (scripts/bench.sh skips `_*.py`); bench/side_by_side.py runs it.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import runpy
import sys
import sysconfig
import threading
import time
from types import CodeType, FrameType

INTERVAL = 0.002  # 500 samples/s: a few % overhead, enough samples for a 10 s run

# (stage, path fragments), first match wins within one frame; stages follow the hot path.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("consume", ("bridge/pipeline/consumer.py", "confluent_kafka/")),
    ("decode", ("bridge/codecs/", "bridge/events.py", "fastavro/")),
    ("match", ("bridge/rules/engine.py:matching", "bridge/rules/engine.py:_action_applies")),
    ("map", ("bridge/rules/", "jmespath/")),
    ("coalesce", ("bridge/pipeline/coalesce.py",)),
    ("govern", ("bridge/meisa/governor.py", "bridge/meisa/schedule.py", "bridge/meisa/aimd.py")),
    ("classify", ("bridge/meisa/classify.py", "bridge/meisa/models.py")),
    (
        "send",
        (
            "bridge/meisa/client.py",
            "bridge/meisa/calls.py",
            "httpx/",
            "httpcore/",
            "httpx_aiohttp/",
            "aiohttp/",
            "h11/",
            "anyio/",
            "yarl/",
            "multidict/",
            "sniffio/",
        ),
    ),
    ("retry", ("tenacity/", "bridge/meisa/retry.py", "bridge/meisa/delivery.py")),
    ("commit", ("bridge/pipeline/offsets.py", "bridge/pipeline/commit.py")),
    (
        "dispatch",
        ("bridge/pipeline/dispatcher.py", "bridge/pipeline/pipeline.py", "bridge/pipeline/"),
    ),
    ("log+metrics", ("bridge/observability/", "prometheus_client/", "/logging/")),
)
STDLIB = sysconfig.get_paths()["stdlib"]


_BY_CODE: dict[CodeType, str | None] = {}  # a frame's code decides its stage: computed once


def _code_stage(code: CodeType) -> str | None:
    path = code.co_filename
    if "/logging/" in path:  # stdlib, but its cost is the bridge's choice
        return "log+metrics"
    if path.startswith(STDLIB) and "site-packages" not in path:
        return None
    where = f"{path}:{code.co_name}"
    return next((stage for stage, parts in STAGES if any(p in where for p in parts)), None)


def stage_of(frame: FrameType | None) -> str:
    while frame is not None:
        code = frame.f_code
        stage = _BY_CODE.get(code, "")
        if stage == "":
            stage = _BY_CODE[code] = _code_stage(code)
        if stage is not None:
            return stage
        frame = frame.f_back
    return "event loop"


class Sampler:
    def __init__(self, out: str) -> None:
        self.out = out
        self.stages: dict[str, float] = {}
        self.samples = 0
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()
        atexit.register(self.write)

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(INTERVAL):
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    self._sample(ident, frame)

    def _sample(self, ident: int, frame: FrameType) -> None:
        try:
            cpu = time.clock_gettime(time.pthread_getcpuclockid(ident))
        except (OSError, ProcessLookupError):  # the thread just ended
            return
        spent = cpu - self._last.get(ident, cpu)
        self._last[ident] = cpu
        if spent > 0:
            stage = stage_of(frame)
            self.stages[stage] = self.stages.get(stage, 0.0) + spent
        self.samples += 1

    def write(self) -> None:
        self._stop.set()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        report = {
            "stages": self.stages,
            "process_cpu": usage.ru_utime + usage.ru_stime,
            "samples": self.samples,
        }
        with open(self.out, "w", encoding="utf-8") as fh:
            json.dump(report, fh)


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
