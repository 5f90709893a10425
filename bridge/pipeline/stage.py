"""The lifecycle every step of the pipeline shares, and the shutdown that walks it.

As in arroyo's processing strategies, a stage is shut down in three moves: `close()` (take no
new work; what is under way goes on), `join(grace)` (wait up to `grace` seconds for the
work under way; True once none is left) and `terminate()` (cancel what is left). The steps that
have work of their own implement it: the read loop and the periodic tasks (`TaskStage`,
`Ticker`, below), the dispatcher (calls in progress and queued), the outcome writer (`Joined`:
messages waiting for their outcome records; its task and its final flush belong to `run`) and
the dead-letter writer (records on their way to the DLQ). The ledger has no stage: its writes
are part of a call and are acknowledged before the call is done.

`shut_down(stages, grace)` is the pipeline's shutdown: each stage in turn, upstream first, is
closed and joined within what is left of one grace period, and terminated if its join ran out,
before the next one is closed: the dispatcher's last calls may still hand poison to the
dead-letter writer, and the commit timer's last tick commits what they finished.
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


class Ticker(TaskStage):
    """`step` every `interval` seconds on a task of its own (the commit timer, the metrics
    report, the fence's clock) until closed; a step under way when it closes finishes."""

    def __init__(self, name: str, interval: float, step: Callable[[], Awaitable[None]]) -> None:
        self._interval = interval
        self._step = step
        self._closed = asyncio.Event()
        super().__init__(name, asyncio.create_task(self._run(), name=name), self._closed.set)

    async def _run(self) -> None:
        while not self._closed.is_set():
            try:
                async with asyncio.timeout(self._interval):
                    await self._closed.wait()
            except TimeoutError:
                await self._step()
