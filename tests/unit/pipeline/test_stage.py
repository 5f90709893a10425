"""The stages' shared lifecycle: close, join within what is left of one grace, terminate."""

from __future__ import annotations

import asyncio

from bridge.pipeline.stage import OnDemand, TaskStage, Ticker, shut_down


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Step:
    """A stage whose join takes `takes` seconds of the fake clock and succeeds if they fit."""

    def __init__(self, name: str, takes: float, clock: Clock, log: list[str]) -> None:
        self.name = name
        self._takes = takes
        self._clock = clock
        self._log = log

    def close(self) -> None:
        self._log.append(f"close {self.name}")

    async def join(self, grace: float | None = None) -> bool:
        assert grace is not None
        self._log.append(f"join {self.name} {grace:g}")
        self._clock.now += min(self._takes, grace)
        return self._takes <= grace

    async def terminate(self) -> None:
        self._log.append(f"terminate {self.name}")


async def test_each_stage_is_closed_only_once_the_one_before_it_joined() -> None:
    clock, log = Clock(), []
    stages = [Step("read", 1, clock, log), Step("dispatcher", 4, clock, log)]
    assert await shut_down(stages, 10, clock=clock) == []
    assert log == ["close read", "join read 10", "close dispatcher", "join dispatcher 9"]


async def test_a_stage_that_runs_out_of_grace_is_terminated_and_the_rest_get_what_is_left() -> None:
    clock, log = Clock(), []
    stages = [
        Step("dispatcher", 30, clock, log),
        Step("dead letters", 1, clock, log),
        Step("commit", 0, clock, log),
    ]
    assert await shut_down(stages, 10, clock=clock) == ["dispatcher", "dead letters"]
    assert log == [
        "close dispatcher",
        "join dispatcher 10",
        "terminate dispatcher",
        "close dead letters",
        "join dead letters 0",
        "terminate dead letters",
        "close commit",
        "join commit 0",
    ]


async def test_a_ticker_finishes_the_step_under_way_and_takes_no_other() -> None:
    steps: list[str] = []
    begun, release = asyncio.Event(), asyncio.Event()

    async def step() -> None:
        steps.append("begun")
        begun.set()
        await release.wait()
        steps.append("ended")

    ticker = Ticker("commit", 0.01, step)
    await asyncio.wait_for(begun.wait(), 5)
    ticker.close()
    assert not await ticker.join(0.05), "the step under way is waited for"
    release.set()
    assert await ticker.join(1)
    await asyncio.sleep(0.05)
    assert steps == ["begun", "ended"]


class Steps:
    """A step that records when it ran (the loop's clock) and can be held open."""

    def __init__(self) -> None:
        self.at: list[float] = []
        self.release = asyncio.Event()
        self.release.set()
        self.begun = asyncio.Event()

    async def __call__(self) -> None:
        self.at.append(asyncio.get_running_loop().time())
        self.begun.set()
        await self.release.wait()


async def test_on_demand_steps_only_when_asked_and_once_for_asks_before_it_runs() -> None:
    steps = Steps()
    timer = OnDemand("commit", 0.02, steps)
    await asyncio.sleep(0.1)
    assert steps.at == [], "nothing asked, nothing runs (an idle bridge does not wake for it)"
    asked = asyncio.get_running_loop().time()
    timer.ask()
    await asyncio.sleep(0.005)
    timer.ask()
    await asyncio.sleep(0.1)
    assert len(steps.at) == 1
    assert steps.at[0] - asked >= 0.02 - 0.002, "the step waits the delay after the first ask"
    timer.close()
    assert await timer.join(1)


async def test_on_demand_an_ask_during_the_step_brings_one_more_a_delay_after_it_ends() -> None:
    steps = Steps()
    steps.release.clear()
    timer = OnDemand("commit", 0.02, steps)
    timer.ask()
    await asyncio.wait_for(steps.begun.wait(), 5)
    timer.ask()  # e.g. a commit failed and offered its partitions again
    await asyncio.sleep(0.05)
    assert len(steps.at) == 1, "no second step while the first one runs"
    ended = asyncio.get_running_loop().time()
    steps.release.set()
    await asyncio.sleep(0.1)
    assert len(steps.at) == 2
    assert steps.at[1] - ended >= 0.02 - 0.002
    timer.close()
    assert await timer.join(1)


async def test_on_demand_closed_finishes_the_step_under_way_and_starts_no_other() -> None:
    steps = Steps()
    steps.release.clear()
    timer = OnDemand("commit", 0.01, steps)
    timer.ask()
    await asyncio.wait_for(steps.begun.wait(), 5)
    timer.ask()
    timer.close()
    assert not await timer.join(0.05), "the step under way is waited for"
    steps.release.set()
    assert await timer.join(1)
    assert len(steps.at) == 1
    idle = OnDemand("commit", 0.01, steps)
    idle.ask()
    idle.close()  # asked but not yet due: closing ends the wait without a step
    assert await idle.join(1)
    assert len(steps.at) == 1


async def test_a_task_stage_is_cancelled_when_its_join_runs_out() -> None:
    task = asyncio.create_task(asyncio.sleep(60))
    stage = TaskStage("read", task, on_close=lambda: None)
    stage.close()
    assert not await stage.join(0.01)
    await stage.terminate()
    assert task.cancelled()
