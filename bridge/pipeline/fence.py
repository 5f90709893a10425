"""Hold new sends after the process was frozen, until the group has had its say.

A process stopped past the group's session timeout (SIGSTOP, a paused VM, a long GC or swap
stall) wakes up as a zombie: the group has given its partitions to another member, but its own
event loop resumes exactly where it was and would send the calls it had queued, racing the new
owner (a late copy can land after newer calls). The consumer learns that it lost the partitions
only on its next poll, after a heartbeat was answered.

`StallFence` notices the freeze (its ticker sees the clock jump by more than `stall` seconds) and
closes for `hold` seconds, which covers a heartbeat round trip and the poll that delivers the lost
assignment; calls and dead-letter records (bridge.pipeline.deadletters) that wait at the fence
then find their messages cancelled and are dropped.
Calls already on the wire when the process froze cannot be called back.

It also stays closed while the caller's `blocked` predicate holds: the pipeline closes it as soon
as a commit is refused (the broker is away, or a classic rebalance has moved the group to a new
generation and refuses the old one's commits) or the client reports a lost broker connection
(bridge.pipeline.commit, `broker_away`), and while finished work has waited for a commit
that hangs longer than commits usually take (bridge.pipeline.commit: 0.05 to 0.2 s). Work done
then could not be committed, and whoever reads the partition next would do it again; holding new
calls until a commit succeeds bounds that to what was in flight. Every call asks the predicate
as it starts, not at the last tick.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bridge.observability.logs import RepeatLimiter

log = logging.getLogger("bridge.pipeline.fence")

NEVER = float("-inf")  # the fence has never closed
TICK_SECONDS = 0.1  # how soon a hanging commit or a freeze is noticed
STALL_SECONDS = 5.0  # far above any event-loop hiccup, below every sane session timeout
HOLD_SECONDS = 8.0  # a heartbeat interval (5 s at most by default) and the poll after it
BLOCKED_REPORT_SECONDS = 30.0


class StallFence:
    def __init__(
        self,
        *,
        tick: float = TICK_SECONDS,
        stall: float = STALL_SECONDS,
        hold: float = HOLD_SECONDS,
        clock: Callable[[], float] | None = None,
        blocked: Callable[[], bool] | None = None,
    ) -> None:
        self.tick = tick
        self._blocked = blocked
        self._was_blocked = False
        self._reports = RepeatLimiter(BLOCKED_REPORT_SECONDS)
        self.blocks = 0
        self.stall = stall
        self.hold = hold
        self._clock = clock
        self._last: float | None = None
        self._open_at = NEVER
        self.stalls = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def now(self) -> float:
        if self._clock is not None:
            return self._clock()
        if self._loop is None:  # looked up once: get_running_loop() costs a getpid() each time
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    def observe(self, now: float) -> None:
        """One tick: a gap longer than `stall` since the last one closes the fence."""
        if self._last is not None and now - self._last > self.stall:
            self.stalls += 1
            self._open_at = now + self.hold
            log.warning(
                "the process was frozen for %.1fs; holding new Meisa calls for %.0fs while the "
                "group reports whether this member still owns its partitions",
                now - self._last,
                self.hold,
            )
        self._last = now
        self._check_blocked(now)

    def _check_blocked(self, now: float) -> None:
        blocked = self._blocked is not None and self._blocked()
        if blocked == self._was_blocked:
            return
        self._was_blocked = blocked
        if not blocked:
            log.debug("commits go through again; Meisa calls resume")
            return
        self.blocks += 1
        held = self._reports.allow("blocked")
        if held is not None:  # one line per 30 s: a brief hold under load is not news
            log.warning(
                "commits are refused or stuck; holding new Meisa calls until a commit goes "
                "through, so that nothing is done twice (%d more holds since the last report)",
                held,
            )

    def _blocked_now(self, now: float) -> bool:
        """Ask the `blocked` predicate at this call, not at the last tick: a call that starts
        a tick after commits began to hang must not go out."""
        if self._blocked is None:
            return False
        self._check_blocked(now)
        return self._was_blocked

    def holding(self, now: float) -> bool:
        return self._was_blocked or now < self._open_at

    async def step(self) -> None:
        """One tick (the pipeline runs it every `tick` seconds: bridge.pipeline.stage.Ticker)."""
        self.observe(self.now())

    async def wait(self) -> None:
        """Return at once, or when the fence opens again."""
        now = self.now()
        if self._last is not None and now - self._last > self.stall:
            # Woken from a freeze before the ticker was: overdue timers run in deadline order,
            # and a call's (a Retry-After's end, a back-off) may come first.
            self.observe(now)
        if self._open_at == NEVER and not self._blocked_now(now):  # the common case
            return
        # A loop, not an Event: the deadline moves if another freeze comes while we wait, and a
        # hold for commits ends when the predicate, asked again each tick, says they go through.
        while True:
            now = self.now()
            blocked = self._blocked_now(now)
            if not blocked and now >= self._open_at:
                return
            await asyncio.sleep(self.tick if blocked else self._open_at - now)
