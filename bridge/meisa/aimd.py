"""How far below the key's budget the governor runs after 429s, and for how long.

A 429 with a Retry-After is the server's exact instruction: the governor pauses until then and
this module is not involved (lowering the budget as well would punish one event twice). A 429
without one is a `strike`. The budget shrinks (halves) only when

* strikes repeat: a second one within one window (`window`, the minute), or
* one strike proves the key's limit lower than /ping said: fewer requests than this replica's
  limit went out in the last window, yet the server refused (another client spends the key, or
  its limit was lowered),

and at most once per window, like TCP's one decrease per round trip: the 429s answering requests
that were already in flight describe the same overload and must not shrink it again.

Recovery is bounded in time, not in successes: `HOLD_SECONDS` after the last strike the factor
climbs linearly back to 1 over `RECOVERY_SECONDS`, whatever the key's limit. A governor throttled
by a burst is back at its full budget `HOLD_SECONDS + RECOVERY_SECONDS` after the last 429.
"""

from __future__ import annotations

import math
from typing import Literal

DECREASE = 0.5  # multiplicative decrease, once per window at most
HOLD_SECONDS = 30.0  # no climbing while 429s without Retry-After keep arriving
RECOVERY_SECONDS = 60.0  # then a linear climb to the full budget: back within 90 s

Shrink = Literal["repeated_429", "limit_lower"]


class Aimd:
    """The budget factor (0 < factor <= 1) as a function of time, lowered by strikes."""

    def __init__(self, *, floor: float, window: float) -> None:
        self.floor = min(1.0, floor)  # one request per window at least
        self.window = window
        self._low = 1.0  # factor at the last strike; 1.0 while not throttled
        self._calm_from = -math.inf  # the climb back starts here
        self._last_strike = -math.inf
        self._last_decrease = -math.inf

    def factor(self, now: float) -> float:
        if self._low >= 1.0:
            return 1.0
        progress = (now - self._calm_from) / RECOVERY_SECONDS
        if progress >= 1.0:
            self._low = 1.0
            return 1.0
        if progress <= 0.0:
            return self._low
        return self._low + (1.0 - self._low) * progress

    def recovered_at(self) -> float:
        """When the factor is back at 1 unless another strike comes (-inf: not throttled)."""
        return -math.inf if self._low >= 1.0 else self._calm_from + RECOVERY_SECONDS

    def strike(self, now: float, *, under_limit: bool) -> Shrink | None:
        """A 429 without Retry-After at `now`; the reason when it lowered the budget."""
        repeated = now - self._last_strike < self.window
        current = self.factor(now)
        self._last_strike = now
        self._low, self._calm_from = current, now + HOLD_SECONDS  # hold where it is
        if now - self._last_decrease < self.window or not (repeated or under_limit):
            return None
        lowered = max(self.floor, current * DECREASE)
        if lowered >= current:  # already at the floor
            return None
        self._low, self._last_decrease = lowered, now
        return "repeated_429" if repeated else "limit_lower"
