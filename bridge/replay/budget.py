"""The key's rate budget and how long a number of calls takes on it.

Meisa limits a key per minute and per hour (default 60 and 1,000). The bridge's governor holds one
token bucket per limit, sized to the limit times this replica's share, starting full. Sending N
calls therefore takes, per bucket, (N - capacity) / refill rate once the burst is spent; the
slower bucket decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bridge.config import MeisaSettings

DEFAULT_PER_MINUTE = 60  # the spec's default key limits, used when nothing better is known
DEFAULT_PER_HOUR = 1000


@dataclass(frozen=True, slots=True)
class Budget:
    """Requests per minute and per hour for this replica (None: unlimited), and where from."""

    per_minute: float | None
    per_hour: float | None
    origin: str  # "ping", "config" or "default"

    def seconds_for(self, calls: int, *, full: bool = True) -> float:
        """Time to send `calls` starting with full buckets (or empty ones when `full` is False)."""
        worst = 0.0
        for limit, window in ((self.per_minute, 60.0), (self.per_hour, 3600.0)):
            if limit is None or limit <= 0 or math.isinf(limit):
                continue
            burst = limit if full else 0.0
            worst = max(worst, max(0.0, calls - burst) * window / limit)
        return worst

    @property
    def rate(self) -> float:
        """Sustained calls per second (inf when unlimited)."""
        rates = [
            limit / window
            for limit, window in ((self.per_minute, 60.0), (self.per_hour, 3600.0))
            if limit is not None and limit > 0
        ]
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
    share = settings.rate_share
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
