"""CPU per call of the retry path when every call succeeds at once (the clean case).

Each call goes through the real Deliverer (rate governor with an unlimited key, one attempt, the
ledger off) to a sender that answers at once, so what differs between the modes is the retry
path alone:

- `loop`: the retry loop written out by hand, as the bridge had it before tenacity came back
  (kept here as the baseline);
- `bare+tenacity`: what the bridge does: the first attempt bare, tenacity's AsyncRetrying only
  after a failure (bridge.meisa.retry.RetryPolicy);
- `tenacity`: AsyncRetrying around every call, first attempt included (for scale: why the first
  attempt stays bare).

Every mode runs in a child process of this one, alternating for `--rounds` rounds, so the modes
share the machine's state; the table shows each mode's median CPU per call and its difference
from `loop`.

    .venv/bin/python bench/retry_cost.py [--calls 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_never

from bridge.errors import ContactNotFound
from bridge.meisa.calls import MeisaCall, contact_key
from bridge.meisa.delivery import Deliverer
from bridge.meisa.governor import RateGovernor
from bridge.meisa.models import CallResult
from bridge.meisa.retry import RetryPolicy, Sleep, may_wait_for_contact

T = TypeVar("T")
MODES = ("loop", "bare+tenacity", "tenacity")
OK = CallResult(200, {"status": "ok"})


class WrittenOutLoop(RetryPolicy):
    """The loop before tenacity came back: attempts, predicates and waits by hand."""

    async def run(
        self,
        call: MeisaCall,
        attempt: Callable[[int], Awaitable[T]],
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        not_found: bool = True,
    ) -> T:
        limit = self.not_found_retries if not_found else 0
        not_found_seen = 0
        number = 1
        while True:
            try:
                return await attempt(number)
            except Exception as error:
                not_found_seen += isinstance(error, ContactNotFound)
                early_404 = may_wait_for_contact(error, call) and not_found_seen <= limit
                if not (self._retried(error, call, False) or early_404):
                    raise
                wait = self.wait(number, error, rng)
                self.log_retry(call, number, error, wait)
            await sleep(wait)
            number += 1


class TenacityEveryCall(RetryPolicy):
    """A controller for every call, its first attempt included."""

    async def run(
        self,
        call: MeisaCall,
        attempt: Callable[[int], Awaitable[T]],
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        not_found: bool = True,
    ) -> T:
        number = 0

        async def next_attempt() -> T:
            nonlocal number
            number += 1
            return await attempt(number)

        controller = AsyncRetrying(
            sleep=sleep,
            retry=retry_if_exception(lambda e: self._retried(e, call, not_found)),
            wait=lambda state: 0.0,
            stop=stop_never,
            reraise=True,
        )
        result: T = await controller(next_attempt)
        return result


class Instant:
    async def send(self, call: MeisaCall) -> CallResult:
        return OK

    def requests_for(self, call: MeisaCall) -> int:
        return 1


def policy(mode: str) -> RetryPolicy:
    kinds: dict[str, type[RetryPolicy]] = {
        "loop": WrittenOutLoop,
        "bare+tenacity": RetryPolicy,
        "tenacity": TenacityEveryCall,
    }
    return kinds[mode]()


async def child(mode: str, calls: int) -> float:
    """CPU microseconds per call in this process."""
    governor = RateGovernor(per_minute=None, per_hour=None)
    deliverer = Deliverer(Instant(), governor, policy(mode))
    body = {"email": "ann@example.com"}
    call = MeisaCall(kind="upsert", body=body, contact_key=contact_key(body))
    for _ in range(1000):  # warm up
        await deliverer.deliver(call)
    start = time.process_time()
    for _ in range(calls):
        await deliverer.deliver(call)
    return (time.process_time() - start) / calls * 1e6


def run_child(mode: str, calls: int) -> float:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--calls", str(calls)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(asyncio.run(child(args.child, args.calls)))
        return
    found: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            found[mode].append(run_child(mode, args.calls))
    base = statistics.median(found["loop"])
    print(f"{'mode':<15}{'CPU us/call':>12}{'vs loop':>10}   runs")
    for mode in MODES:
        median = statistics.median(found[mode])
        runs = " ".join(f"{v:.2f}" for v in found[mode])
        print(f"{mode:<15}{median:>12.2f}{median - base:>+10.2f}   {runs}")


if __name__ == "__main__":
    main()
