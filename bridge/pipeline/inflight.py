"""How many calls may be on the wire at once: as many as Meisa's answer times show it needs.

A crash re-sends every call that was on the wire (Meisa may have acted on it, the commit never
said so). Past what the server answers in parallel, more calls in flight only wait in its queue
(or in the bridge's own event loop): each answer takes longer and none comes sooner, yet a kill
then re-sends all of them. So the limit follows the answers, as TCP Vegas sizes a congestion
window:

- Every `value` answers (about one round trip's worth), the window's average answer time is
  compared with the base: the shortest window average since the last probe, the answer time
  with nothing queued. `value * (1 - base / average)` estimates the calls that only queued.
- Nothing queued: `beta` more calls may go (a slow start, so a key with a slow Meisa reaches its
  need in a few round trips); fewer than `alpha`: one more; more than `beta`: one fewer. `alpha`
  and `beta` grow with the limit's digits (3 and 6 below 10 calls, 6 and 12 below 100).
- The base is measured again every `PROBE_ANSWERS` answers, from half the limit: a base taken
  while calls queued (a start at a busy time) would otherwise hold the limit high for good.
- Between `minimum` and `maximum` (`pipeline.max_in_flight`), starting at `minimum`, which
  measures the first base with as little queued as possible.

Only answered attempts count, by their HTTP exchange alone: a call waiting for the rate budget
holds a slot but is not on the wire, and a paced backlog keeps the whole `maximum` waiting.
"""

from __future__ import annotations

import math
from collections.abc import Callable

MINIMUM = 4
PROBE_ANSWERS = 5_000  # answers between two measurements of the base (seconds at full speed)


class InFlightLimit:
    """The number of calls that may be on the wire; `sample()` each answer's seconds."""

    __slots__ = (
        "_answers",
        "_base",
        "_count",
        "_on_change",
        "_sum",
        "adaptive",
        "maximum",
        "minimum",
        "value",
    )

    def __init__(
        self,
        maximum: int,
        *,
        adaptive: bool = True,
        minimum: int = MINIMUM,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self._on_change = on_change  # told every new value (the gauge), and the first one
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.adaptive = adaptive
        self.value = self.minimum if adaptive else self.maximum
        self._sum = 0.0
        self._count = 0
        self._answers = 0
        self._base: float | None = None
        if on_change is not None:
            on_change(self.value)

    def sample(self, seconds: float) -> None:
        if not self.adaptive:
            return
        self._sum += seconds
        self._count += 1
        if self._count >= self.value:
            average = self._sum / self._count
            self._answers += self._count
            self._sum, self._count = 0.0, 0
            self._adjust(average)

    def _adjust(self, average: float) -> None:
        before = self.value
        if self._base is None or average < self._base:
            self._base = average
        queued = self.value * (1.0 - self._base / average) if average > 0 else 0.0
        step = max(1, int(math.log10(self.value)))
        alpha, beta = 3 * step, 6 * step
        if queued < step:
            self.value = min(self.maximum, self.value + beta)
        elif queued < alpha:
            self.value = min(self.maximum, self.value + step)
        elif queued > beta:
            self.value = max(self.minimum, self.value - step)
        if self._answers >= PROBE_ANSWERS:
            self._answers = 0
            self._base = None
            self.value = max(self.minimum, self.value // 2)
        if self.value != before and self._on_change is not None:
            self._on_change(self.value)
