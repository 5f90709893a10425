"""Replay progress: a redrawn bar on a terminal, a plain log line every few seconds otherwise."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from bridge.replay.budget import Budget, format_duration

log = logging.getLogger("bridge.replay")

BAR_WIDTH = 24
TTY_INTERVAL = 0.2  # redraw often enough to look alive, rarely enough to cost nothing
LOG_INTERVAL = 10.0  # log lines are for humans reading a CI or pod log


@dataclass(slots=True)
class Snapshot:
    events_read: int = 0
    events_total: int = 0
    calls_sent: int = 0
    calls_left: int = 0
    phase: str = "read"


class Progress:
    """Call `update` as often as you like; it draws only every `interval` seconds."""

    def __init__(
        self,
        *,
        stream: TextIO,
        clock: Callable[[], float],
        budget: Budget,
        tty: bool | None = None,
        interval: float | None = None,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._budget = budget
        self._tty = stream.isatty() if tty is None else tty
        self._interval = interval or (TTY_INTERVAL if self._tty else LOG_INTERVAL)
        self._last_draw = -math.inf
        self._send_started: float | None = None
        self._sent_at_start = 0
        self.state = Snapshot()

    def update(self, *, force: bool = False, **fields: int | str) -> None:
        for name, value in fields.items():
            setattr(self.state, name, value)
        if self.state.phase == "send" and self._send_started is None:
            self._send_started = self._clock()
            self._sent_at_start = self.state.calls_sent
        now = self._clock()
        if force or now - self._last_draw >= self._interval:
            self._last_draw = now
            self._draw()

    def eta(self) -> float:
        """Seconds left: the calls left over the slower of the key's budget and the pace so far."""
        left = self.state.calls_left
        rate = self._budget.rate
        if self._send_started is not None:
            elapsed = self._clock() - self._send_started
            sent = self.state.calls_sent - self._sent_at_start
            if elapsed > 0 and sent > 0:
                rate = min(rate, sent / elapsed)
        if left == 0:
            return 0.0
        return left / rate if rate > 0 and not math.isinf(rate) else math.inf

    def line(self) -> str:
        s = self.state
        read = f"events {s.events_read:,}/{s.events_total:,}"
        sent = f"calls sent {s.calls_sent:,}, left {s.calls_left:,}"
        eta = "" if s.phase == "read" else f", ETA {format_duration(self.eta())}"
        return f"{s.phase}: {read}, {sent}{eta}"

    def _draw(self) -> None:
        if not self._tty:
            log.info("replay %s", self.line())
            return
        s = self.state
        done, total = (
            (s.events_read, s.events_total)
            if s.phase == "read"
            else (s.calls_sent, s.calls_sent + s.calls_left)
        )
        filled = BAR_WIDTH if total == 0 else min(BAR_WIDTH, BAR_WIDTH * done // total)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self._stream.write(f"\r[{bar}] {self.line()}\x1b[K")
        self._stream.flush()

    def finish(self) -> None:
        self.update(force=True)
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()
