"""The key's rate limits, decided in one place for the governor that paces calls (run, replay,
redrive) and for replay's budget that estimates how long a run takes.

Configured overrides (`meisa.rate_limit_per_minute` / `_per_hour`) win, each on its own; then what
GET /ping/ says about the key; without a ping (a dry run with no key), the spec's defaults of 60
per minute and 1,000 per hour. None means unlimited. `meisa.rate_share` (this replica's part of a
key shared by several bridges) is applied by the users of these limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bridge.meisa.models import PingInfo
from bridge.settings import MeisaSettings

DEFAULT_PER_MINUTE = 60  # the spec's default key limits, used when nothing better is known
DEFAULT_PER_HOUR = 1000

Origin = Literal["ping", "config", "default"]


@dataclass(frozen=True, slots=True)
class KeyLimits:
    per_minute: int | None
    per_hour: int | None
    origin: Origin


def key_limits(settings: MeisaSettings, ping: PingInfo | None) -> KeyLimits:
    if ping is None:
        found = KeyLimits(DEFAULT_PER_MINUTE, DEFAULT_PER_HOUR, "default")
    else:
        found = KeyLimits(
            _limit(ping.rate_limit_per_minute), _limit(ping.rate_limit_per_hour), "ping"
        )
    minute, hour = settings.rate_limit_per_minute, settings.rate_limit_per_hour
    if minute is None and hour is None:
        return found
    return KeyLimits(
        found.per_minute if minute is None else minute,
        found.per_hour if hour is None else hour,
        "config",
    )


def _limit(value: int | None) -> int | None:
    """A limit /ping reports; zero or less says nothing usable, so it counts as no limit."""
    return value if value is not None and value > 0 else None
