"""Rate governor: spend one API key's budget well, triggers first.

The core, `RateScheduler`, is pure and synchronous (`now` is passed in); `RateGovernor` is the
thin async wrapper the deliverer awaits.

Budget. Meisa limits a key per minute and per hour. Each limit is a sliding-window log: a spent
token comes back exactly one window after it was spent, so no window ever holds more than the
limit (a bucket that refills continuously could allow a full burst at the end of one minute and
another at the start of the next, twice the limit inside one 60 s window, and a sliding-window
server would answer 429). `guard_seconds` widens each window a little so network jitter cannot
squeeze two requests sent 60 s apart into one server-side window. Each limit is multiplied by
`share` (this replica's part of a key shared by several bridges).

Pacing. The windows alone would let a backlog spend a whole minute's budget in a burst and then
hold everything, a waiting trigger too, until the window turns over. So grants are also paced by
a token bucket refilled continuously at the shortest window's effective rate (limit / window
length, so pacing alone never overfills a window and no budget is wasted). Only triggers may
spend the bucket's burst (`BURST_SECONDS` of tokens); other calls go only when it is full, so a
trigger arriving behind any backlog finds a token at once or within one token interval, and a
backlog never runs ahead of the windows (which would stall everyone at the window's end).

Hour reserve. Calls other than triggers may fill the hourly window only to
`1 - TRIGGER_HOUR_RESERVE` of its limit, so a backlog that exhausts the hour still leaves room
for triggers.

AIMD. A 429 means someone else spends the same key, or the limit is lower than /ping said: the
effective limits (and the pace) are halved, never below one request per window. Each success
adds back `1/20` of the budget per window's worth of successes, never above the budget.

Pause. `on_rate_limited(retry_after)` stops every grant until the Retry-After has run.

Priority. Waiting callers are served strictly by priority (0 = trigger, 1 = track/enroll,
2 = upsert/tags), then in arrival order: a waiting OTP overtakes a backlog of upserts.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.meisa.models import PingInfo
from bridge.settings import MeisaSettings

MINUTE, HOUR = 60.0, 3600.0
_DECREASE = 0.5  # multiplicative decrease on 429
_INCREASE_PER_WINDOW = 0.05  # additive increase: +5% of the budget per window of successes
GUARD_SECONDS = 0.5  # client/server clock and latency slack added to each window
TRIGGER = 0  # the priority of triggers, which may use the burst and the hour reserve
# Burst for triggers: a few OTPs at once go without waiting, yet a full bucket is small enough
# that spending it costs at most a short stall when the minute window catches up.
BURST_SECONDS = 2.0
# Share of the hourly budget only triggers may use: after a backlog has spent the rest of the
# hour, 10% (100 of Meisa's default 1,000/h) is still there for OTPs and password resets.
TRIGGER_HOUR_RESERVE = 0.1
_READY_SLACK = 1e-9  # tokens: float rounding must not make a due grant wait another wake-up


class _Window:
    """Grants in the last `length` seconds; `limit` of them at most."""

    def __init__(self, budget: int, length: float, reserve: float = 0.0) -> None:
        self.budget = budget
        self.length = length
        self.reserve = reserve  # share of the limit kept for triggers
        self.grants: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self.grants and self.grants[0] <= now - self.length:
            self.grants.popleft()

    def free_at(self, now: float, limit: int, tokens: int) -> float:
        """Earliest time (>= now) at which `tokens` more grants fit under `limit`."""
        self._expire(now)
        excess = len(self.grants) + tokens - limit
        if excess <= 0:
            return now
        if excess > len(self.grants):  # more tokens than the limit: never fits whole
            return math.inf
        return self.grants[excess - 1] + self.length

    def spend(self, now: float, tokens: int) -> None:
        self.grants.extend([now] * tokens)


@dataclass(frozen=True, slots=True)
class Waiter:
    priority: int
    seq: int
    tokens: int


class RateScheduler:
    """Pure core: `request` queues, `grant(now)` returns who may go now."""

    def __init__(
        self,
        *,
        per_minute: int | None,
        per_hour: int | None,
        share: float = 1.0,
        guard_seconds: float = GUARD_SECONDS,
    ) -> None:
        # None: the key reports no such limit (the sandbox's unlimited key); no window for it.
        self.windows = [
            _Window(max(1, math.floor(limit * share)), length + guard_seconds, reserve)
            for limit, length, reserve in (
                (per_minute, MINUTE, 0.0),
                (per_hour, HOUR, TRIGGER_HOUR_RESERVE),
            )
            if limit is not None
        ]
        self._shape = (per_minute is not None, per_hour is not None)
        self.factor = 1.0  # AIMD multiplier on both budgets
        self.paused_until = -math.inf
        self._level = math.inf  # pacing bucket tokens (clipped to its capacity; full at start)
        self._level_at = -math.inf
        self._queue: list[tuple[int, int]] = []
        self._waiters: dict[int, Waiter] = {}
        self._seq = itertools.count()

    # -- limits ------------------------------------------------------------------------------

    def _limit(self, window: _Window) -> int:
        return max(1, math.floor(window.budget * self.factor))

    def limits(self) -> tuple[int | None, int | None]:
        """Effective (per-minute, per-hour) limits after AIMD; None where there is no limit."""
        found = iter(self._limit(w) for w in self.windows)
        minute = next(found) if self._shape[0] else None
        hour = next(found) if self._shape[1] else None
        return minute, hour

    def pace(self) -> tuple[float, float] | None:
        """(tokens per second, burst capacity) of the pacing bucket; None without limits."""
        if not self.windows:
            return None
        window = self.windows[0]  # the shortest window sets the pace
        rate = self._limit(window) / window.length
        return rate, max(1.0, rate * BURST_SECONDS)

    def _settle(self, now: float) -> None:
        """Refill the bucket up to `now` at the current pace."""
        pace = self.pace()
        if pace is None:
            return
        rate, capacity = pace
        elapsed = now - self._level_at if now > self._level_at else 0.0
        self._level = min(capacity, self._level + rate * elapsed)  # clipped if the pace fell
        self._level_at = max(self._level_at, now)

    def on_rate_limited(self, now: float, retry_after: float | None) -> None:
        self._settle(now)  # tokens earned so far at the old pace
        smallest = min((w.budget for w in self.windows), default=1)
        self.factor = max(self.factor * _DECREASE, 1.0 / smallest)
        if retry_after is not None and retry_after > 0:
            self.paused_until = max(self.paused_until, now + retry_after)

    def on_success(self) -> None:
        smallest = min((w.budget for w in self.windows), default=1)
        per_window = max(1.0, smallest * self.factor)
        self.factor = min(1.0, self.factor + _INCREASE_PER_WINDOW / per_window)

    def record(self, now: float, tokens: int = 1) -> None:
        """Count requests made without a grant (the start-up ping) against the budget."""
        self._spend(now, tokens)

    def _spend(self, now: float, tokens: int) -> None:
        self._settle(now)
        if self.windows:
            self._level -= tokens  # may go negative: a 2-request call pays back its debt
        for window in self.windows:
            window.spend(now, tokens)

    # -- queue -------------------------------------------------------------------------------

    def request(self, priority: int, tokens: int = 1) -> int:
        seq = next(self._seq)
        self._waiters[seq] = Waiter(priority, seq, max(1, tokens))
        heapq.heappush(self._queue, (priority, seq))
        return seq

    def cancel(self, seq: int) -> None:
        self._waiters.pop(seq, None)  # its heap entry is skipped lazily

    def waiting(self) -> int:
        return len(self._waiters)

    def _head(self) -> Waiter | None:
        while self._queue:
            waiter = self._waiters.get(self._queue[0][1])
            if waiter is not None:
                return waiter
            heapq.heappop(self._queue)
        return None

    def ready_at(self, now: float, tokens: int, priority: int = TRIGGER) -> float:
        at = max(now, self.paused_until, self._paced_at(now, tokens, priority))
        for window in self.windows:
            limits = [self._limit(window)]
            if priority != TRIGGER and window.reserve:
                limits.append(max(1, math.floor(limits[0] * (1.0 - window.reserve))))
            for limit in limits:
                # A request bigger than the limit (a 2-request tag call under AIMD) waits for an
                # empty window instead of never.
                at = max(at, window.free_at(now, limit, min(tokens, limit)))
        return at

    def _paced_at(self, now: float, tokens: int, priority: int) -> float:
        """When the bucket holds enough: triggers may spend the burst, others need it full."""
        pace = self.pace()
        if pace is None:
            return now
        rate, capacity = pace
        self._settle(now)
        need = min(tokens, capacity) if priority == TRIGGER else capacity
        short = need - self._level
        return now if short <= _READY_SLACK else now + short / rate

    def grant(self, now: float) -> tuple[list[int], float | None]:
        """Grant the head of the queue while the budget allows.

        Returns (granted seqs in order, time to call again or None when nobody waits).
        """
        granted: list[int] = []
        while (head := self._head()) is not None:
            at = self.ready_at(now, head.tokens, head.priority)
            if at > now:
                return granted, at
            heapq.heappop(self._queue)
            del self._waiters[head.seq]
            # Record what is really sent, even past an AIMD-lowered limit: later grants wait.
            self._spend(now, head.tokens)
            granted.append(head.seq)
        return granted, None


Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateGovernor:
    """Async wrapper: `await acquire(priority)` returns the seconds the caller waited."""

    def __init__(
        self,
        *,
        per_minute: int | None,
        per_hour: int | None,
        share: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        guard_seconds: float = GUARD_SECONDS,
    ) -> None:
        self.core = RateScheduler(
            per_minute=per_minute, per_hour=per_hour, share=share, guard_seconds=guard_seconds
        )
        self._clock = clock
        self._sleep = sleep
        self._futures: dict[int, asyncio.Future[None]] = {}
        self._pump: asyncio.Task[None] | None = None

    @classmethod
    def from_ping(
        cls,
        info: PingInfo,
        settings: MeisaSettings,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> RateGovernor:
        """Limits from GET /ping/, overridden by settings, times this replica's share.

        The ping itself counted against the key's budget: it is recorded as just spent.
        """
        governor = cls(
            per_minute=settings.rate_limit_per_minute or info.rate_limit_per_minute,
            per_hour=settings.rate_limit_per_hour or info.rate_limit_per_hour,
            share=settings.rate_share,
            clock=clock,
            sleep=sleep,
        )
        governor.record(1)
        return governor

    @property
    def per_minute(self) -> int | None:
        """The effective per-minute rate right now (for the governor_rate metric)."""
        return self.core.limits()[0]

    async def acquire(self, priority: int, tokens: int = 1) -> float:
        start = self._clock()
        seq = self.core.request(priority, tokens)
        granted, _ = self.core.grant(start)
        self._resolve(granted)
        if seq in granted:
            return 0.0
        future = asyncio.get_running_loop().create_future()
        self._futures[seq] = future
        self._ensure_pump()
        try:
            await future
        except asyncio.CancelledError:
            self.core.cancel(seq)
            self._futures.pop(seq, None)
            raise
        return self._clock() - start

    def record(self, tokens: int = 1) -> None:
        """Count a request made outside `acquire` (every other caller must acquire first)."""
        self.core.record(self._clock(), tokens)

    def on_success(self) -> None:
        self.core.on_success()

    def on_rate_limited(self, retry_after: float | None) -> None:
        self.core.on_rate_limited(self._clock(), retry_after)

    async def aclose(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)

    def _resolve(self, granted: list[int]) -> None:
        for seq in granted:
            future = self._futures.pop(seq, None)
            if future is not None and not future.done():
                future.set_result(None)

    def _ensure_pump(self) -> None:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        # One sleeper for all waiters: it wakes when the head of the queue can go.
        while True:
            granted, at = self.core.grant(self._clock())
            self._resolve(granted)
            if at is None:
                return
            await self._sleep(max(0.0, at - self._clock()))
