"""API keys, scopes and rate limits.

Limits are sliding-window logs (as Django REST framework's throttles do): a request is allowed
when fewer than `limit` requests were accepted in the last 60 s (or 3600 s). Refused requests do
not count. Retry-After is the whole seconds until the oldest counted request leaves the window.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from bridge.sandbox.config import KeySpec
from bridge.sandbox.model import ApiError, Clock


@dataclass(slots=True)
class Window:
    limit: int
    seconds: float
    hits: deque[float] = field(default_factory=deque)

    def wait(self, now: float) -> float:
        """Seconds until one more request fits; 0 when it fits now."""
        hits, start = self.hits, now - self.seconds
        while hits and hits[0] <= start:
            hits.popleft()
        return 0.0 if len(hits) < self.limit else hits[0] - start


@dataclass(slots=True)
class KeyState:
    spec: KeySpec
    windows: tuple[Window, ...]


class KeyRing:
    def __init__(self, keys: tuple[KeySpec, ...], clock: Clock) -> None:
        self._clock = clock
        self._keys = {k.key: k for k in keys}
        self.reset()

    def reset(self) -> None:
        self._state = {key: KeyState(spec, _windows(spec)) for key, spec in self._keys.items()}

    def authenticate(self, presented: str | None) -> KeyState:
        if not presented:
            raise ApiError(401, "missing API key: send it in the X-API-Key header", "missing_key")
        state = self._state.get(presented)
        if state is None:
            raise ApiError(401, "invalid API key", "invalid_key")
        return state

    def admit(self, state: KeyState) -> None:
        """Count the request or raise 429 with the delta-seconds to wait."""
        if not state.windows:
            return
        now = self._clock.mono()
        wait = max(w.wait(now) for w in state.windows)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(
                429,
                f"rate limit exceeded for key {state.spec.name}; retry in {seconds} s",
                "rate_limited",
                retry_after=seconds,
            )
        for w in state.windows:
            w.hits.append(now)


def check_scope(state: KeyState, scope: str | None) -> None:
    if scope is not None and scope not in state.spec.scopes:
        raise ApiError(
            403,
            f"API key {state.spec.name!r} lacks the scope {scope!r}",
            "missing_scope",
            scope=scope,
        )


def _windows(spec: KeySpec) -> tuple[Window, ...]:
    out = []
    if spec.per_minute is not None:
        out.append(Window(spec.per_minute, 60.0))
    if spec.per_hour is not None:
        out.append(Window(spec.per_hour, 3600.0))
    return tuple(out)
