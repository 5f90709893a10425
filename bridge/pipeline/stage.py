"""The lifecycle every step of the pipeline shares, and the shutdown that walks it.

As in arroyo's processing strategies, a stage is shut down in three moves: `close()` (take no
new work; what is under way goes on), `join(grace)` (wait up to `grace` seconds for the
work under way; True once none is left) and `terminate()` (cancel what is left). The steps that
have work of their own implement it: the read loop and the timed tasks (`TaskStage`, `Ticker`,
`OnDemand`, below), the dispatcher (calls in progress and queued), the outcome writer (`Joined`:
messages waiting for their outcome records; its task and its final flush belong to `run`) and
the dead-letter writer (records on their way to the DLQ). The ledger has no stage: its writes
are part of a call and are acknowledged before the call is done.

`shut_down(stages, grace)` is the pipeline's shutdown: each stage in turn, upstream first, is
closed and joined within what is left of one grace period, and terminated if its join ran out,
before the next one is closed: the dispatcher's last calls may still hand poison to the
dead-letter writer, and the final commit takes what they finished.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol


class Stage(Protocol):
    name: str

    def close(self) -> None:
        """Take no new work; what is under way goes on."""

    async def join(self, grace: float) -> bool:
        """Wait up to `grace` seconds for the work under way; True once none is left."""

    async def terminate(self) -> None:
        """Cancel whatever is still under way."""


async def shut_down(
    stages: Sequence[Stage], grace: float, *, clock: Callable[[], float] = time.monotonic
) -> list[str]:
    """Close, join (within what is left of `grace`) and if need be terminate each stage, in
    order; returns the names of the stages that had to be terminated."""
    deadline = clock() + grace
    terminated = []
    for stage in stages:
        stage.close()
        if not await stage.join(max(0.0, deadline - clock())):
            terminated.append(stage.name)
            await stage.terminate()
    return terminated


class Joined:
    """A step whose task is started and stopped by its owner: at shutdown only its `join`
    counts (nothing to close, nothing to cancel here)."""

    def __init__(self, name: str, join: Callable[[float], Awaitable[bool]]) -> None:
        self.name = name
        self._join = join

    def close(self) -> None:
        return None

    async def join(self, grace: float) -> bool:
        return await self._join(grace)

    async def terminate(self) -> None:
        return None


class TaskStage:
    """A stage that is one task: `close` calls `on_close` (which should make the task end),
    `join` waits for the task, `terminate` cancels it."""

    def __init__(
        self, name: str, task: asyncio.Task[None], on_close: Callable[[], None] | None = None
    ) -> None:
        self.name = name
        self._task = task
        self._on_close = on_close or task.cancel  # by default nothing under way is worth waiting

    def close(self) -> None:
        self._on_close()

    async def join(self, grace: float | None = None) -> bool:
        await asyncio.wait([self._task], timeout=grace)
        return self._task.done()

    async def terminate(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class _Nap:
    """A sleep that `wake()` ends early: one future and one timer, no task cancellation (an idle
    bridge wakes tens of times a second; asyncio.timeout cost about twice as much CPU)."""

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None
        self.woken = False

    async def sleep(self, seconds: float) -> None:
        if self.woken:
            return
        loop = asyncio.get_running_loop()
        future = self._future = loop.create_future()
        timer = loop.call_later(seconds, _settle, future)
        try:
            await future
        finally:
            timer.cancel()
            self._future = None

    def wake(self) -> None:
        """End the sleep under way and every later one."""
        self.woken = True
        if self._future is not None:
            _settle(self._future)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Ticker(TaskStage):
    """`step` every `interval` seconds on a task of its own (the metrics report, the fence's
    clock) until closed; a step under way when it closes finishes."""

    def __init__(self, name: str, interval: float, step: Callable[[], Awaitable[None]]) -> None:
        self._interval = interval
        self._step = step
        self._nap = _Nap()
        super().__init__(name, asyncio.create_task(self._run(), name=name), self._nap.wake)

    async def _run(self) -> None:
        while True:
            await self._nap.sleep(self._interval)
            if self._nap.woken:
                return
            await self._step()


class OnDemand(TaskStage):
    """`step` on a task of its own, `delay` seconds after `ask()` (the commit timer: `ask` when
    finished work starts to wait for a commit). Asks before the step starts join it; an ask
    while it runs brings the next one `delay` after it ends, as a ticker's would. Nothing runs
    while nothing asks, so an idle bridge does not wake for it. Closed: a step under way
    finishes, no other starts."""

    def __init__(self, name: str, delay: float, step: Callable[[], Awaitable[None]]) -> None:
        self._delay = delay
        self._step = step
        self._loop = asyncio.get_running_loop()
        self._due: float | None = None  # when the next step is due (the loop's clock)
        self._asked = asyncio.Event()
        self._nap = _Nap()
        super().__init__(name, asyncio.create_task(self._run(), name=name), self._close)

    def ask(self) -> None:
        if self._due is None:
            self._due = self._loop.time() + self._delay
            self._asked.set()

    def _close(self) -> None:
        self._nap.wake()
        self._asked.set()

    async def _run(self) -> None:
        while True:
            await self._asked.wait()
            self._asked.clear()
            while self._due is not None:
                await self._nap.sleep(self._due - self._loop.time())
                if self._nap.woken:
                    return
                self._due = None
                await self._step()
                if self._due is not None:
                    self._due = self._loop.time() + self._delay
            if self._nap.woken:
                return
