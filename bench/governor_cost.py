"""CPU per grant of the rate governor alone: callers that queue for tokens on a paced key, against
callers on a key without limits (every grant at once), on uvloop as `run` uses it.

Each caller acquires a token, yields once (as a call awaits its answer) and acquires again, for
`--seconds`; the process CPU over the run is divided by the grants. The paced figure includes
the event loop's own work per wake-up, which the unpaced callers never need.

    .venv/bin/python bench/governor_cost.py [--per-minute 100000] [--callers 40] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvloop

from bridge.meisa.governor import RateGovernor

UPSERT = 2  # the priority of upserts and tags: a backlog's


async def grants(per_minute: int | None, callers: int, seconds: float) -> tuple[int, float]:
    governor = RateGovernor(per_minute=per_minute, per_hour=None)
    count = 0
    stop = time.monotonic() + seconds

    async def caller() -> None:
        nonlocal count
        while time.monotonic() < stop:
            await governor.acquire(UPSERT)
            count += 1
            await asyncio.sleep(0)

    cpu = time.process_time()
    await asyncio.gather(*(caller() for _ in range(callers)))
    cpu = time.process_time() - cpu
    await governor.aclose()
    return count, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-minute", type=int, default=100_000)
    parser.add_argument("--callers", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    runs = [("paced", args.per_minute, args.seconds), ("no limit", None, 1.0)]
    found = {}
    for name, limit, seconds in runs:
        count, cpu = uvloop.run(grants(limit, args.callers, seconds))
        found[name] = cpu / count * 1e6
        print(f"{name:<9} {count / seconds:>10,.0f} grants/s  {found[name]:6.1f} us CPU per grant")
    print(f"paced / no limit: x{found['paced'] / found['no limit']:.2f} per grant")


if __name__ == "__main__":
    main()
