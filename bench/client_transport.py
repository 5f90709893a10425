"""Client CPU per request and requests/s on each HTTP engine under httpx's API.

Starts the Meisa sandbox in a subprocess on another CPU (so its CPU is not counted), then sends
small upserts through MeisaClient with N in flight, once per transport (pyreqwest, h1 and
httpx's own), and prints client CPU us/request, req/s and the ratios to httpx's own. CPU per
request is the robust number (it counts pyreqwest's engine thread too); req/s also depends on
the sandbox and on whatever else the machine runs. The bridge's default
(`MeisaSettings.transport`) follows this measurement. Runs on uvloop, the loop of `run`.

    .venv/bin/python bench/client_transport.py [--requests 3000] [--in-flight 16] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from typing import Literal

import uvloop

from bridge.meisa.client import MeisaClient
from bridge.sandbox.testing import sandbox_process
from bridge.settings import MeisaSettings, SecretStr

UNLIMITED_KEY = "meisa_test_unlimited_00000000000000000000"  # sandbox key without rate limits
Transport = Literal["pyreqwest", "h1", "httpx"]
TRANSPORTS: tuple[Transport, ...] = ("pyreqwest", "h1", "httpx")


@contextlib.contextmanager
def sandbox() -> Iterator[str]:
    """The sandbox in its own process on the second CPU; this client stays on the first."""
    cpus = os.sched_getaffinity(0)
    pinned = len(cpus) > 1
    if pinned:
        os.sched_setaffinity(0, {min(cpus)})
    with sandbox_process(cpus={max(cpus)} if pinned else None) as (handle, _):
        yield handle.base_url


async def run(url: str, transport: Transport, requests: int, in_flight: int) -> tuple[float, float]:
    settings = MeisaSettings(base_url=url, api_key=SecretStr(UNLIMITED_KEY), transport=transport)
    body = {"email": "bench@example.com", "custom_fields": {"plan": "pro", "count": 1}}
    async with MeisaClient(settings) as client:

        async def worker(n: int) -> None:
            for _ in range(n):
                await client.upsert(body)

        await asyncio.gather(*(worker(50) for _ in range(in_flight)))  # warm-up: pool, JIT caches
        per_worker = requests // in_flight
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(per_worker) for _ in range(in_flight)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = per_worker * in_flight
    return cpu / done * 1e6, done / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=16)
    parser.add_argument("--url", help="an already running sandbox's /api/v1 URL")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(sandbox())
        results = {t: uvloop.run(run(url, t, args.requests, args.in_flight)) for t in TRANSPORTS}
    print(
        f"{'transport':<10} {'client CPU us/req':>18} {'req/s':>8}   ({args.in_flight} in flight)"
    )
    for name, (us, rps) in results.items():
        print(f"{name:<10} {us:>18,.0f} {rps:>8,.0f}")
    h_us, h_rps = results["httpx"]
    for name, (us, rps) in results.items():
        if name != "httpx":
            print(
                f"{name} vs httpx: {h_us / us:.2f}x less CPU per request, {rps / h_rps:.2f}x req/s"
            )
    best = min(results, key=lambda name: results[name][0])
    print(f"default transport by this measurement: {best}")


if __name__ == "__main__":
    main()
