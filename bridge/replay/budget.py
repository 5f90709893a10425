"""The key's rate budget and how long a number of calls takes on it.

The numbers are the governor's own (bridge.meisa.schedule.RateScheduler.allowances): the key's
limits times this replica's share, at least one request per window as the governor floors them,
each window as long as the governor's, and for calls other than triggers the hourly budget less
the triggers' reserve. The governor paces such calls evenly over the shortest window, with no
burst. A replay sends upserts and tag changes, so N calls take N paced intervals, or, once N
passes what a longer window allows, that allowance per window; the slower of the two decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bridge.meisa.calls import KINDS
from bridge.meisa.limits import key_limits
from bridge.meisa.models import PingInfo
from bridge.meisa.schedule import RateScheduler
from bridge.settings import MeisaSettings

REPLAYED = KINDS["upsert"].priority  # what a replay sends: upserts and tag changes


@dataclass(frozen=True, slots=True)
class Budget:
    """The key's requests per minute and per hour (None: unlimited), where they came from, and
    this replica's share of them."""

    per_minute: int | None
    per_hour: int | None
    origin: str  # "ping", "config" or "default"
    share: float = 1.0

    def _windows(self) -> list[tuple[int, float]]:
        """(calls a replayed call may make, per seconds) per window, the pacing one first."""
        core = RateScheduler(per_minute=self.per_minute, per_hour=self.per_hour, share=self.share)
        return core.allowances(REPLAYED)

    def seconds_for(self, calls: int, *, full: bool = True) -> float:
        """Time to send `calls` paced, with the longer windows starting empty (`full`: nothing
        spent yet) or already used up (`full` False)."""
        windows = self._windows()
        if not windows:
            return 0.0
        (paced, length), longer = windows[0], windows[1:]
        worst = calls * length / paced
        for allowed, window in longer:
            head = allowed if full else 0
            worst = max(worst, max(0, calls - head) * window / allowed)
        return worst

    @property
    def rate(self) -> float:
        """Sustained calls per second (inf when unlimited)."""
        rates = [allowed / length for allowed, length in self._windows()]
        return min(rates) if rates else math.inf

    def describe(self) -> str:
        def one(v: int | None) -> str:
            return "unlimited" if v is None else f"{v:g}"

        share = "" if self.share == 1.0 else f", this replica's share {self.share:g}"
        return f"{one(self.per_minute)}/min, {one(self.per_hour)}/h ({self.origin}{share})"


def budget_from(settings: MeisaSettings, ping: PingInfo | None) -> Budget:
    """The governor's limits (bridge.meisa.limits) and this replica's share of them."""
    limits = key_limits(settings, ping)
    share = 1.0 if settings.rate_share is None else settings.rate_share
    return Budget(limits.per_minute, limits.per_hour, limits.origin, share)


def format_duration(seconds: float) -> str:
    if math.isinf(seconds):
        return "unknown"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
