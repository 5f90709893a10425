"""The rate governor's pure core as it was before its hot path was made cheaper: every limit
worked out, and every one of them asked of its window, at each `ready_at`.

`test_meisa_governor_model.py` runs this and bridge.meisa.schedule side by side: whatever the
faster core does, it must grant the same callers at the same times as this one. A deliberate
change of behaviour in bridge.meisa.schedule is made here too.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque

from bridge.meisa.aimd import Aimd
from bridge.meisa.schedule import (
    _READY_SLACK,
    _SAME_PAUSE_SECONDS,
    BACKLOG_SLACK_SECONDS,
    BUCKETS_PER_WINDOW,
    BURST_SECONDS,
    GUARD_SECONDS,
    HOUR,
    MINUTE,
    PAUSE_ANSWERS,
    PAUSE_MIN,
    PAUSE_SHARE,
    PROOF_SHARE,
    TRIGGER,
    TRIGGER_HOUR_RESERVE,
    GovernorState,
    Reason,
    Waiter,
)


class _Window:
    """Grants in the last `length` seconds; `limit` of them at most.

    A sliding-window log of buckets: each [time of its last grant, grants], a new bucket every
    `length / BUCKETS_PER_WINDOW` seconds.
    """

    def __init__(self, budget: int, length: float, reserve: float = 0.0) -> None:
        self.budget = budget
        self.length = length
        self.reserve = reserve  # share of the limit kept for triggers
        self.buckets: deque[list[float]] = deque()  # [last grant time, grants]
        self._bucket_seconds = length / BUCKETS_PER_WINDOW
        self._opened = -math.inf  # when the newest bucket was opened
        self._used = 0

    def _expire(self, now: float) -> None:
        while self.buckets and self.buckets[0][0] <= now - self.length:
            self._used -= int(self.buckets.popleft()[1])

    def free_at(self, now: float, limit: int, tokens: int) -> float:
        """Earliest time (>= now) at which `tokens` more grants fit under `limit`."""
        self._expire(now)
        excess = self._used + tokens - limit
        if excess <= 0:
            return now
        if excess > self._used:  # more tokens than the limit: never fits whole
            return math.inf
        for at, count in self.buckets:
            excess -= int(count)
            if excess <= 0:
                return at + self.length
        return math.inf  # unreachable: the buckets hold `_used` grants

    def used(self, now: float) -> int:
        self._expire(now)
        return self._used

    def spend(self, now: float, tokens: int) -> None:
        self._used += tokens
        if self.buckets and now - self._opened < self._bucket_seconds:
            newest = self.buckets[-1]
            newest[0] = max(newest[0], now)
            newest[1] += tokens
            return
        self._opened = now
        self.buckets.append([now, float(tokens)])


class RateScheduler:
    """The governor's pure core as it was before its limits were worked out once per factor."""

    def __init__(
        self,
        *,
        per_minute: int | None,
        per_hour: int | None,
        share: float = 1.0,
        guard_seconds: float = GUARD_SECONDS,
    ) -> None:
        # None: the key reports no such limit (the sandbox's unlimited key); no window for it.
        self._key_limits = [limit for limit in (per_minute, per_hour) if limit is not None]
        self.share = share
        self.windows = [
            _Window(max(1, math.floor(limit * share)), length + guard_seconds, reserve)
            for limit, length, reserve in (
                (per_minute, MINUTE, 0.0),
                (per_hour, HOUR, TRIGGER_HOUR_RESERVE),
            )
            if limit is not None
        ]
        self._shape = (per_minute is not None, per_hour is not None)
        smallest = min((w.budget for w in self.windows), default=1)
        self._aimd = Aimd(floor=1.0 / smallest, window=MINUTE + guard_seconds)
        self.factor = 1.0  # AIMD multiplier on both budgets, as of the last `_refresh`
        self._shrink: Reason | None = None  # why the factor was last lowered
        self.paused_until = -math.inf
        self._answers: deque[bool] = deque(maxlen=PAUSE_ANSWERS)  # True: a 429
        self._refused = 0  # 429s among `_answers`
        self._paced_limit, self._pace = 0, (0.0, 0.0)  # the limit `_pace` was computed for
        self._level = math.inf  # pacing bucket tokens (clipped to its capacity; full at start)
        self._level_at = -math.inf
        self._queue: list[tuple[int, int]] = []
        self._waiters: dict[int, Waiter] = {}
        self._seq = itertools.count()

    # -- limits ------------------------------------------------------------------------------

    def set_share(self, share: float) -> None:
        """This replica's part of the key's budget changed (its partitions did)."""
        self.share = share
        for window, limit in zip(self.windows, self._key_limits, strict=True):
            window.budget = max(1, math.floor(limit * share))

    def _limit(self, window: _Window) -> int:
        return max(1, math.floor(window.budget * self.factor))

    def allowances(self, priority: int) -> list[tuple[int, float]]:
        """(requests a caller of `priority` may make, per seconds) for each window, the shortest
        first: the key's limit times the share (one at least), after AIMD, less the hour's
        trigger reserve for other callers. Replay estimates a run's length from these."""
        found = []
        for window in self.windows:
            limit = self._limit(window)
            if priority != TRIGGER and window.reserve:
                limit = max(1, math.floor(limit * (1.0 - window.reserve)))
            found.append((limit, window.length))
        return found

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
        limit = self._limit(window)
        if limit != self._paced_limit:  # asked several times per grant: computed once a limit
            rate = limit / window.length
            self._paced_limit, self._pace = limit, (rate, max(1.0, rate * BURST_SECONDS))
        return self._pace

    def _backlog_slack(self) -> int:
        """Tokens of the bucket's top a backlog may spend: what BACKLOG_SLACK_SECONDS earn,
        whole, one at least (a key earning less than 4 a second: one, as a plain bucket)."""
        pace = self.pace()
        return 1 if pace is None else max(1, math.floor(pace[0] * BACKLOG_SLACK_SECONDS))

    def _settle(self, now: float) -> None:
        """Refill the bucket up to `now` at the current pace."""
        pace = self.pace()
        if pace is None:
            return
        rate, capacity = pace
        elapsed = now - self._level_at if now > self._level_at else 0.0
        self._level = min(capacity, self._level + rate * elapsed)  # clipped if the pace fell
        self._level_at = max(self._level_at, now)

    def _refresh(self, now: float) -> None:
        """Follow the AIMD climb back to the full budget up to `now`."""
        if self.factor < 1.0:
            self._settle(now)  # tokens earned so far at the old pace
            self.factor = self._aimd.factor(now)

    def on_rate_limited(self, now: float, retry_after: float | None) -> Reason | None:
        """A 429 at `now`; the reason when it paused or lowered the budget anew."""
        self._answer(refused=True)
        self._settle(now)
        if retry_after is not None:  # the server said how long: exactly that, nothing more
            return self._pause(now, retry_after) if self._key_refused() else None
        self._refresh(now)
        shrink = self._aimd.strike(now, under_limit=self._under_limit(now))
        self.factor = self._aimd.factor(now)
        if shrink is not None:
            self._shrink = shrink
        return shrink

    def _answer(self, *, refused: bool) -> None:
        if len(self._answers) == PAUSE_ANSWERS:
            self._refused -= self._answers[0]
        self._answers.append(refused)
        self._refused += refused

    def _key_refused(self) -> bool:
        return self._refused >= max(PAUSE_MIN, PAUSE_SHARE * len(self._answers))

    def _pause(self, now: float, retry_after: float) -> Reason | None:
        until = now + retry_after
        fresh = now >= self.paused_until or until - self.paused_until > _SAME_PAUSE_SECONDS
        self.paused_until = max(self.paused_until, until)
        return "retry_after" if retry_after > 0 and fresh else None

    def _under_limit(self, now: float) -> bool:
        """Clearly fewer requests than the limit went out in the last (shortest) window."""
        if not self.windows:
            return False
        window = self.windows[0]
        return window.used(now) < PROOF_SHARE * self._limit(window)

    def on_success(self) -> None:
        """An answer that was not a 429 (recovery itself follows the clock, not successes)."""
        self._answer(refused=False)

    def state(self, now: float) -> GovernorState:
        self._refresh(now)
        if self.paused_until > now:
            reason: Reason | None = "retry_after"
        else:
            reason = self._shrink if self.factor < 1.0 else None
        until = max(self.paused_until, self._aimd.recovered_at())
        return GovernorState(reason, until, self.limits()[0])

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

    def take(self, now: float, priority: int, tokens: int = 1) -> bool:
        """Grant at once when nobody waits and the budget allows (what `request` + `grant`
        would do for a lone caller, without queueing it); False: the caller must queue."""
        if self._waiters:
            return False
        tokens = max(1, tokens)
        self._refresh(now)
        if self.ready_at(now, tokens, priority) > now:
            return False
        self._spend(now, tokens)
        return True

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
            if priority != TRIGGER and window is self.windows[0]:
                # What the backlog took of the bucket's top beyond one token, it leaves free in
                # the pacing window: a trigger never waits for that window to turn.
                limits.append(max(1, limits[0] - self._backlog_slack() + 1))
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
        if priority == TRIGGER:
            need = min(tokens, capacity)
        else:  # the top of the bucket: what one late wake-up earned goes at once
            need = capacity - self._backlog_slack() + 1.0
        short = need - self._level
        return now if short <= _READY_SLACK else now + short / rate

    def grant(self, now: float) -> tuple[list[int], float | None]:
        """Grant the head of the queue while the budget allows.

        Returns (granted seqs in order, time to call again or None when nobody waits).
        """
        granted: list[int] = []
        self._refresh(now)
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
