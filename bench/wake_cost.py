"""What a sleep costs in CPU on this machine: the same small piece of work (about 10 us of
Python) done back to back, then with an event-loop sleep of 1, 5, 10 and 50 ms after each, on
uvloop as `run` uses it; CPU per piece of work, and the same again while every core is kept busy
by a SCHED_IDLE loop (bench/_common.py, `busy_cores`).

On a virtual machine whose idle cores halt, the woken thread is charged the halt and the wake-up
as its own CPU time, growing with the length of the sleep; with the cores kept busy a sleep costs
a context switch. The difference is what a process that sleeps often between small pieces of work
(the bridge pacing a backlog, 10 ticks a second and an answer at a time) pays on such a machine
over its work. Baseline: the back-to-back run in the same process.

    .venv/bin/python bench/wake_cost.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson
import uvloop
from _common import busy_cores

GAPS_MS = (0.0, 1.0, 5.0, 10.0, 50.0)
SECONDS = 1.0  # of sleeping per measurement (fewer pieces for the longer gaps)


def work(n: int) -> bytes:
    """About 10 us of Python: a loop and a JSON encoding, like a small part of a call's handling."""
    total = 0
    for i in range(300):
        total += i
    return orjson.dumps({"n": n, "total": total})


async def cpu_per_piece(gap_ms: float) -> float:
    """CPU seconds per piece of work, each followed by `gap_ms` of sleep (0: a bare yield)."""
    count = 5000 if not gap_ms else max(20, int(SECONDS * 1000 / gap_ms))
    gap = gap_ms / 1000
    start = time.process_time()
    for n in range(count):
        work(n)
        await asyncio.sleep(gap)
    return (time.process_time() - start) / count


def measure(rounds: int) -> dict[float, float]:
    """The lowest of `rounds` runs per gap (the least disturbed), seconds per piece."""
    return {gap: min(uvloop.run(cpu_per_piece(gap)) for _ in range(rounds)) for gap in GAPS_MS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per gap; the lowest is shown")
    args = parser.parse_args()
    plain = measure(args.rounds)
    with busy_cores() as loops:
        busy = measure(args.rounds)
    print(f"CPU us per piece of work (lowest of {args.rounds} runs); busy: {loops} idle loops")
    print(f"{'sleep after each':<18}{'cores idle':>12}{'cores busy':>12}{'idle - busy':>13}")
    for gap in GAPS_MS:
        label = "none (yield)" if not gap else f"{gap:g} ms"
        idle, kept = plain[gap] * 1e6, busy[gap] * 1e6
        print(f"{label:<18}{idle:>12.1f}{kept:>12.1f}{idle - kept:>13.1f}")
    base = plain[0.0] * 1e6
    print(f"baseline (no sleep, cores idle): {base:.1f} us; a sleep adds "
          f"{(plain[GAPS_MS[1]] * 1e6 - base):.0f}-{(plain[GAPS_MS[-1]] * 1e6 - base):.0f} us "
          "with the cores idle")  # fmt: skip


if __name__ == "__main__":
    main()
