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
from typing import Any

from bridge.meisa.schedule import GUARD_SECONDS, TRIGGER_HOUR_RESERVE
from bridge.settings import MeisaSettings

DEFAULT_PER_MINUTE = 60  # the spec's default key limits, used when nothing better is known
DEFAULT_PER_HOUR = 1000
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


def budget_from(settings: MeisaSettings, ping: Any | None) -> Budget:
    """Configured overrides win, then the limits GET /ping reports, then the spec's defaults."""
    per_minute, per_hour, origin = _ping_limits(ping)
    if origin == "default":  # no ping: a limit the config leaves out is the spec's default
        per_minute, per_hour = DEFAULT_PER_MINUTE, DEFAULT_PER_HOUR
    if settings.rate_limit_per_minute is not None or settings.rate_limit_per_hour is not None:
        origin = "config"
        per_minute = _or(settings.rate_limit_per_minute, per_minute)
        per_hour = _or(settings.rate_limit_per_hour, per_hour)
    share = 1.0 if settings.rate_share is None else settings.rate_share
    return Budget(
        per_minute=None if per_minute is None else per_minute * share,
        per_hour=None if per_hour is None else per_hour * share,
        origin=origin,
    )


def _ping_limits(ping: Any | None) -> tuple[float | None, float | None, str]:
    if ping is None:
        return None, None, "default"
    source = getattr(ping, "api_key", ping)
    if isinstance(source, dict):
        per_minute, per_hour = (
            source.get("rate_limit_per_minute"),
            source.get("rate_limit_per_hour"),
        )
    else:
        per_minute = getattr(ping, "rate_limit_per_minute", None)
        per_hour = getattr(ping, "rate_limit_per_hour", None)
    return _num(per_minute), _num(per_hour), "ping"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _or(value: int | None, fallback: float | None) -> float | None:
    return float(value) if value is not None else fallback


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
