"""The rate governor's pure core answering from scratch: every limit worked out, and every one of
them asked of its window, at each call (as it did before it kept them per AIMD factor and share).

`test_meisa_governor_model.py` runs this and bridge.meisa.schedule side by side: whatever the
faster core does, it must grant the same callers at the same times as this one. Only what the
faster core computes differently is redone here (the limits, the pace, `ready_at`); the queue,
the windows and AIMD are the core's own. A deliberate change of behaviour in the limits is made
here too.
"""

from __future__ import annotations

import math

from bridge.meisa import schedule
from bridge.meisa.schedule import _READY_SLACK, BACKLOG_SLACK_SECONDS, BURST_SECONDS, TRIGGER


class RateScheduler(schedule.RateScheduler):
    """The core, with its limits, pace and `ready_at` worked out from scratch at every call."""

    def _fresh_limit(self, window: schedule._Window) -> int:
        return max(1, math.floor(window.budget * self.factor))

    def allowances(self, priority: int) -> list[tuple[int, float]]:
        found = []
        for window in self.windows:
            limit = self._fresh_limit(window)
            if priority != TRIGGER and window.reserve:
                limit = max(1, math.floor(limit * (1.0 - window.reserve)))
            found.append((limit, window.length))
        return found

    def limits(self) -> tuple[int | None, int | None]:
        found = iter(self._fresh_limit(w) for w in self.windows)
        minute = next(found) if self._shape[0] else None
        hour = next(found) if self._shape[1] else None
        return minute, hour

    def pace(self) -> tuple[float, float] | None:
        if not self.windows:
            return None
        window = self.windows[0]  # the shortest window sets the pace
        rate = self._fresh_limit(window) / window.length
        return rate, max(1.0, rate * BURST_SECONDS)

    def _fresh_slack(self) -> int:
        pace = self.pace()
        return 1 if pace is None else max(1, math.floor(pace[0] * BACKLOG_SLACK_SECONDS))

    def ready_at(self, now: float, tokens: int, priority: int = TRIGGER) -> float:
        at = max(now, self.paused_until, self._fresh_paced_at(now, tokens, priority))
        for window in self.windows:
            limits = [self._fresh_limit(window)]
            if priority != TRIGGER and window.reserve:
                limits.append(max(1, math.floor(limits[0] * (1.0 - window.reserve))))
            if priority != TRIGGER and window is self.windows[0]:
                limits.append(max(1, limits[0] - self._fresh_slack() + 1))
            for limit in limits:
                at = max(at, window.free_at(now, limit, min(tokens, limit)))
        return at

    def _fresh_paced_at(self, now: float, tokens: int, priority: int) -> float:
        pace = self.pace()
        if pace is None:
            return now
        rate, capacity = pace
        self._settle(now, pace)
        if priority == TRIGGER:
            need = min(tokens, capacity)
        else:  # the top of the bucket: what one late wake-up earned goes at once
            need = capacity - self._fresh_slack() + 1.0
        short = need - self._level
        return now if short <= _READY_SLACK else now + short / rate
