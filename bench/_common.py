"""Helpers shared by the benchmarks; not a benchmark itself (scripts/bench.sh skips `_*.py`).

Importing it puts tests/integration/pipeline on sys.path, so a benchmark can reuse the bridge
scenarios' harness (`bridge_harness`: configs, producing events, offsets, running the bridge).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "pipeline"))

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
ADMIN_TIMEOUT = 30.0
T = TypeVar("T")


def create_topic(partitions: int, prefix: str = "bench") -> str:
    """A new, uniquely named topic with `partitions` partitions (replication factor 1)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    new = NewTopic(name, num_partitions=partitions, replication_factor=1)
    admin.create_topics([new])[name].result(ADMIN_TIMEOUT)
    return name


def delete_topics(names: Sequence[str]) -> None:
    from confluent_kafka.admin import AdminClient

    if names:
        admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
        for future in admin.delete_topics(list(names)).values():
            future.result(ADMIN_TIMEOUT)


@contextmanager
def topics(*partitions: int, prefix: str = "bench") -> Iterator[list[str]]:
    """One new topic per entry of `partitions`, deleted on exit."""
    names: list[str] = []
    try:
        for count in partitions:
            names.append(create_topic(count, prefix))
        yield names
    finally:
        delete_topics(names)


# A busy loop that runs only when its core would otherwise be idle (SCHED_IDLE).
_IDLE_LOOP = (
    "import os; os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile True: pass"
)


@contextmanager
def busy_cores(on: bool = True) -> Iterator[int]:
    """While inside, one SCHED_IDLE busy loop per core keeps every core from going idle; yields
    how many run (0 when `on` is false).

    On a virtual machine whose idle cores halt, a thread that sleeps and is woken is charged the
    halt and the wake-up as its own CPU time: 50-180 us per sleep of 1-50 ms on the development
    machine, the longer the sleep the more (bench/wake_cost.py). A run that sleeps often between
    small pieces of work (a paced backlog) then reads dearer than its work. Kept busy, the cores
    never halt; a SCHED_IDLE loop yields to any other thread at once, so the measured runs keep
    their speed.
    """
    loops = [
        subprocess.Popen([sys.executable, "-c", _IDLE_LOOP]) for _ in range(os.cpu_count() or 1)
    ] if on else []  # fmt: skip
    try:
        if loops:
            time.sleep(0.5)  # past their start-up, which runs at the normal priority
        yield len(loops)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def percentile(values: Sequence[T], q: float) -> T:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence of sortable values."""
    ordered = sorted(values)  # type: ignore[type-var]
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a running process so far (None: it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM: the process's own peak RSS (ru_maxrss would count the parent's RSS at fork)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), None)
    return int(line.split()[1]) / 1024 if line else None


def load_average() -> float:
    """The 1-minute load average: read numbers on a shared machine beside it."""
    return os.getloadavg()[0]


def bridge_run_argv(config: Path, sample_to: Path | None = None) -> list[str]:
    """`meisa-bridge run` as a child process, under the stage sampler when `sample_to` is given."""
    run = ["-m", "bridge", "run", "--config", str(config)]
    if sample_to is not None:
        return [sys.executable, str(ROOT / "bench" / "_sampler.py"), str(sample_to), "--", *run]
    return [sys.executable, *run]


def add_bridge_set(parser: Any) -> None:
    """`--bridge-set SECTION.KEY=VALUE` (repeatable): the bridge's settings other than its defaults,
    read by `settings()`."""
    parser.add_argument(
        "--bridge-set", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="a bridge setting other than its default (YAML value), e.g. pipeline.max_in_flight=64",
    )  # fmt: skip


def settings(overrides: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`section.key=value` strings as config sections (values parsed as YAML)."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in overrides:
        name, _, value = item.partition("=")
        section, _, key = name.partition(".")
        out.setdefault(section, {})[key] = yaml.safe_load(value)
    return out
