"""The key's rate budget and how long a number of calls takes on it.

Meisa limits a key per minute and per hour (default 60 and 1,000). The bridge's governor (see
bridge.meisa.governor) paces calls other than triggers evenly over the minute window, with no
burst, and lets them use at most `1 - TRIGGER_HOUR_RESERVE` of the hourly budget per rolling hour.
A replay sends upserts and tag changes, so N calls take N paced intervals, or, once N passes the
hourly share, that share per hour; the slower of the two decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bridge.meisa.limits import key_limits
from bridge.meisa.models import PingInfo
from bridge.meisa.schedule import GUARD_SECONDS, TRIGGER_HOUR_RESERVE
from bridge.settings import MeisaSettings

MINUTE, HOUR = 60.0, 3600.0


@dataclass(frozen=True, slots=True)
class Budget:
    """Requests per minute and per hour for this replica (None: unlimited), and where from."""

    per_minute: float | None
    per_hour: float | None
    origin: str  # "ping", "config" or "default"

    def _limits(self) -> list[tuple[float, float]]:
        """(calls a non-trigger may make, per seconds) for each limit that applies."""
        minute = (self.per_minute, MINUTE + GUARD_SECONDS, 1.0)
        hour = (self.per_hour, HOUR, 1.0 - TRIGGER_HOUR_RESERVE)
        return [
            (limit * usable, window)
            for limit, window, usable in (minute, hour)
            if limit is not None and limit > 0 and not math.isinf(limit)
        ]

    def seconds_for(self, calls: int, *, full: bool = True) -> float:
        """Time to send `calls` paced, with an hour window that starts empty (`full`: nothing
        spent yet) or already used up (`full` False)."""
        worst = 0.0
        for allowed, window in self._limits():
            if window == HOUR:
                head = allowed if full else 0.0
                worst = max(worst, max(0.0, calls - head) * window / allowed)
            else:
                worst = max(worst, calls * window / allowed)
        return worst

    @property
    def rate(self) -> float:
        """Sustained calls per second (inf when unlimited)."""
        rates = [allowed / window for allowed, window in self._limits()]
        return min(rates) if rates else math.inf

    def describe(self) -> str:
        def one(v: float | None) -> str:
            return "unlimited" if v is None else f"{v:g}"

        return f"{one(self.per_minute)}/min, {one(self.per_hour)}/h ({self.origin})"


def budget_from(settings: MeisaSettings, ping: PingInfo | None) -> Budget:
    """The governor's limits (bridge.meisa.limits) times this replica's share."""
    limits = key_limits(settings, ping)
    share = 1.0 if settings.rate_share is None else settings.rate_share
    return Budget(
        per_minute=None if limits.per_minute is None else limits.per_minute * share,
        per_hour=None if limits.per_hour is None else limits.per_hour * share,
        origin=limits.origin,
    )


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
