"""Fault injection: per endpoint, an error status at a rate, added latency, dropped connections.

Each fault owns a `random.Random(seed)`, rolled once per matching request, so a chaos test that
sends the same requests sees the same faults every run.
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from bridge.sandbox.model import ApiError, Clock

API_PREFIX = "/api/v1"
DROP_MODES = ("close", "reset")


@dataclass(slots=True)
class Fault:
    id: int
    match: str
    rng: random.Random = field(repr=False)
    spec: dict[str, Any]
    status: int | None = None
    rate: float = 1.0
    latency: float = 0.0
    drop: str | None = None
    retry_after: float | str | None = None
    retry_after_format: str = "delta"
    body: dict[str, Any] | None = None
    remaining: int | None = None
    expires_at: float | None = None
    seen: int = 0
    fired: int = 0

    def applies(self, endpoint: str, path: str) -> bool:
        if self.match in ("*", endpoint):
            return True
        return fnmatch.fnmatchcase(path, self.match) or fnmatch.fnmatchcase(
            path.removeprefix(API_PREFIX), self.match
        )

    def retry_after_header(self, now: float) -> str | None:
        if self.retry_after is None:
            return None
        if isinstance(self.retry_after, str):
            return self.retry_after  # verbatim, to test odd values
        if self.retry_after_format == "http-date":
            return formatdate(now + self.retry_after, usegmt=True)
        return str(max(0, round(self.retry_after)))

    def to_json(self) -> dict[str, Any]:
        return {
            **self.spec,
            "id": self.id,
            "seen": self.seen,
            "fired": self.fired,
            "remaining": self.remaining,
        }


class Faults:
    def __init__(self, clock: Clock, seed: int = 0, endpoints: tuple[str, ...] = ()) -> None:
        self._clock = clock
        self._endpoints = endpoints
        self._seed = seed
        self._next_id = 1
        self.active: list[Fault] = []

    def clear(self, fault_id: int | None = None) -> int:
        before = len(self.active)
        self.active = [f for f in self.active if fault_id is not None and f.id != fault_id]
        return before - len(self.active)

    def add(self, spec: dict[str, Any]) -> Fault:
        fault = _build(spec, self._next_id, self._seed, self._clock.mono())
        if fault.match not in ("*", *self._endpoints) and not fault.match.startswith("/"):
            raise _bad(
                f"endpoint: {fault.match!r} is neither '*', a path pattern starting with '/', "
                f"nor one of {', '.join(self._endpoints)}"
            )
        self._next_id += 1
        self.active.append(fault)
        return fault

    def pick(self, endpoint: str, path: str) -> Fault | None:
        """The first matching fault whose roll hits; rolls only faults that match."""
        if not self.active:
            return None
        now = self._clock.mono()
        self.active = [f for f in self.active if f.expires_at is None or f.expires_at > now]
        for fault in self.active:
            if not fault.applies(endpoint, path):
                continue
            fault.seen += 1
            if fault.rng.random() >= fault.rate:
                continue
            fault.fired += 1
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.active.remove(fault)
            return fault
        return None


def _bad(message: str) -> ApiError:
    return ApiError(400, message, "invalid_fault")


def _number(spec: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise _bad(f"{name}: must be a number in [{lo}, {hi}]")
    return float(value)


def _build(spec: dict[str, Any], fault_id: int, seed: int, now: float) -> Fault:
    match = spec.get("endpoint") or spec.get("path") or spec.get("match") or "*"
    status = _number(spec, "status", 100, 599)
    drop = spec.get("drop")
    drop_mode = "close" if drop is True else (drop or None)
    if drop_mode is not None and drop_mode not in DROP_MODES:
        raise _bad("drop: true, 'close' or 'reset'")
    latency = _number(spec, "latency_ms", 0, 600_000) or 0.0
    if status is None and drop_mode is None and not latency:
        raise _bad("a fault needs status, latency_ms or drop")
    retry_after = spec.get("retry_after")
    if retry_after is not None and not isinstance(retry_after, str):
        retry_after = _number(spec, "retry_after", 0, 86_400)
    fmt = str(spec.get("retry_after_format", "delta"))
    if fmt not in ("delta", "http-date"):
        raise _bad("retry_after_format: delta or http-date")
    count, duration = _number(spec, "count", 1, 1e12), _number(spec, "duration", 0, 1e9)
    body = spec.get("body")
    if body is not None and not isinstance(body, dict):
        raise _bad("body: must be a JSON object")
    rate = _number(spec, "rate", 0, 1)
    seed_value = spec.get("seed", seed)
    if isinstance(seed_value, bool) or not isinstance(seed_value, int | str):
        raise _bad("seed: an integer or a string")
    return Fault(
        id=fault_id,
        match=str(match),
        rng=random.Random(seed_value),
        spec={**spec, "match": str(match)},
        status=int(status) if status is not None else None,
        rate=1.0 if rate is None else rate,
        latency=latency / 1000.0,
        drop=drop_mode,
        retry_after=retry_after,
        retry_after_format=fmt,
        body=body,
        remaining=int(count) if count is not None else None,
        expires_at=now + duration if duration is not None else None,
    )
