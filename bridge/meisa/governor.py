"""Rate governor: spend one API key's budget well, triggers first (see bridge.meisa.schedule).

`RateGovernor` is the async wrapper the deliverer awaits around the pure `RateScheduler`: one
sleeper task wakes waiters when the budget allows, in priority order. It also makes throttling
visible: a pause (429 with Retry-After) or a lowered budget (repeated 429s without one) logs one
WARNING saying why and until when (repeats within 30 s are counted into the next line), and each
change of `GovernorState` goes to the `observer` (the metrics), including the return to the full
budget.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bridge.meisa.limits import key_limits
from bridge.meisa.models import PingInfo
from bridge.meisa.schedule import (
    GUARD_SECONDS,
    TICK_SECONDS,
    TRIGGER,
    GovernorState,
    RateScheduler,
)
from bridge.observability.logs import RepeatLimiter
from bridge.settings import MeisaSettings

log = logging.getLogger("bridge.meisa.governor")

WARN_EVERY_SECONDS = 30.0  # one WARNING per reason per 30 s; the rest are counted into it
_STATUS_STEP_SECONDS = 10.0  # how often the metrics follow the climb back to the full budget
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Observer = Callable[[GovernorState], None]


class RateGovernor:
    """Async wrapper: `await acquire(priority)` returns the seconds the caller waited."""

    def __init__(
        self,
        *,
        per_minute: int | None,
        per_hour: int | None,
        share: float = 1.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        guard_seconds: float = GUARD_SECONDS,
        observer: Observer | None = None,
    ) -> None:
        self.core = RateScheduler(
            per_minute=per_minute, per_hour=per_hour, share=share, guard_seconds=guard_seconds
        )
        self._clock = clock
        self._sleep = sleep
        self._observer = observer
        self._futures: dict[int, asyncio.Future[None]] = {}
        self._pump: asyncio.Task[None] | None = None
        self._wake_at: float | None = None  # when the pump grants next (its clock)
        self._warned = RepeatLimiter(WARN_EVERY_SECONDS, clock=clock)
        self._status_check: asyncio.TimerHandle | None = None
        self._shown: tuple[str | None, int | None] = (None, None)  # last (reason, per_minute)

    @classmethod
    def from_ping(
        cls,
        info: PingInfo,
        settings: MeisaSettings,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        observer: Observer | None = None,
    ) -> RateGovernor:
        """Limits from GET /ping/, overridden by settings (bridge.meisa.limits), times this
        replica's share.

        The ping itself counted against the key's budget: it is recorded as just spent.
        """
        limits = key_limits(settings, info)
        governor = cls(
            per_minute=limits.per_minute,
            per_hour=limits.per_hour,
            share=1.0 if settings.rate_share is None else settings.rate_share,
            clock=clock,
            sleep=sleep,
            observer=observer,
        )
        governor.record(1)
        return governor

    @property
    def per_minute(self) -> int | None:
        """The effective per-minute rate right now (for the governor_rate metric)."""
        return self.core.limits()[0]

    async def acquire(self, priority: int, tokens: int = 1) -> float:
        start = self._clock()
        if self.core.take(start, priority, tokens):  # the usual case: nobody waits
            return 0.0
        seq = self.core.request(priority, tokens)
        # While others wait, only a trigger is granted between two of the pump's wake-ups; the
        # rest go with the next one (bridge.meisa.schedule, "Tokens per tick").
        if priority == TRIGGER or self._pump is None or self._pump.done():
            granted, _ = self.core.grant(start)
            self._resolve(granted)
            if seq in granted:
                return 0.0
        future = asyncio.get_running_loop().create_future()
        self._futures[seq] = future
        self._ensure_pump()
        try:
            await future
        except asyncio.CancelledError:
            self.core.cancel(seq)
            self._futures.pop(seq, None)
            raise
        return self._clock() - start

    def waiting(self) -> int:
        """Callers waiting for a grant."""
        return len(self._futures)

    def next_grant_in(self) -> float | None:
        """Seconds until the waiters' next wake-up (None: nobody waits, or none is planned)."""
        if not self._futures or self._wake_at is None:
            return None
        return max(0.0, self._wake_at - self._clock())

    def set_share(self, share: float) -> None:
        """Spend `share` of the key's budget from now on; waiters are re-planned at once."""
        if share == self.core.share:
            return
        self.core.set_share(share)
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
            self._pump = None
        if self._futures:
            self._ensure_pump()
        self._publish(self.state())

    def record(self, tokens: int = 1) -> None:
        """Count a request made outside `acquire` (every other caller must acquire first)."""
        self.core.record(self._clock(), tokens)

    def on_success(self) -> None:
        self.core.on_success()

    def on_rate_limited(self, retry_after: float | None) -> None:
        now = self._clock()
        reason = self.core.on_rate_limited(now, retry_after)
        if reason is not None:
            state = self.core.state(now)
            self._warn(state, now, retry_after)
            self._publish(state)

    def state(self) -> GovernorState:
        return self.core.state(self._clock())

    def _warn(self, state: GovernorState, now: float, retry_after: float | None) -> None:
        held = self._warned.allow(state.reason)
        if held is None:
            return
        until = datetime.now(UTC).timestamp() + (state.until - now)
        when = datetime.fromtimestamp(until, UTC).strftime("%H:%M:%S UTC")
        more = f" ({held} more since the last report)" if held else ""
        if state.reason == "retry_after":
            log.warning(
                "Meisa answered 429 with Retry-After: %gs: every call waits until %s%s",
                retry_after,
                when,
                more,
            )
            return
        why = (
            "429s without Retry-After repeat"
            if state.reason == "repeated_429"
            else ("a 429 came below the limit /ping reported (another client spends this key?)")
        )
        log.warning(
            "%s: budget lowered to %s/min, back to the full budget by %s if no 429 follows%s",
            why,
            state.per_minute if state.per_minute is not None else "-",
            when,
            more,
        )

    def _publish(self, state: GovernorState) -> None:
        """Tell the observer, and look again when the pause or the climb back moves on."""
        shown = (state.reason, state.per_minute)
        if shown != self._shown:  # a timer that fires a little early changes nothing
            if self._shown[0] is not None and state.reason is None:
                log.info("rate budget back to the full %s/min", state.per_minute or "unlimited")
            self._shown = shown
            if self._observer is not None:
                self._observer(state)
        if self._status_check is not None:
            self._status_check.cancel()
            self._status_check = None
        if state.throttled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a synchronous caller): the next 429 reports again
                return
            delay = min(max(0.0, state.until - self._clock()), _STATUS_STEP_SECONDS)
            self._status_check = loop.call_later(delay, self._recheck)

    def _recheck(self) -> None:
        self._status_check = None
        self._publish(self.state())

    async def aclose(self) -> None:
        if self._status_check is not None:
            self._status_check.cancel()
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)

    def _resolve(self, granted: list[int]) -> None:
        for seq in granted:
            future = self._futures.pop(seq, None)
            if future is not None and not future.done():
                future.set_result(None)

    def _ensure_pump(self) -> None:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        # One sleeper for all waiters: it wakes when the head of the queue can go, a tick at
        # least after its last wake-up, and grants every token earned meanwhile (bridge.meisa
        # .schedule, "Tokens per tick").
        while True:
            now = self._clock()
            granted, at = self.core.grant(now)
            self._resolve(granted)
            if at is None:
                self._wake_at = None
                return
            delay = max(TICK_SECONDS, at - now) if granted else max(0.0, at - now)
            self._wake_at = now + delay
            await self._sleep(delay)
