"""Last checks before a call is sent: max_age (stale events) and the suppression list.

`CallGuard` raises a SkipOutcome; the dispatcher runs it before a call takes a delivery slot, and
the Deliverer (its `guard`) runs it again right before every HTTP attempt, because a trigger that
waited behind a Retry-After can turn stale while it waits. The event time is the newest
`event_epoch()` of the messages a call serves (CloudEvents `time`, a configured time field, else
the Kafka timestamp): bridge.pipeline.message.Sending, passed along with the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from bridge.errors import Forbidden, HaltError, RetryableError, StaleEvent, Suppressed
from bridge.meisa.calls import MeisaCall, is_stale

log = logging.getLogger("bridge.pipeline.guards")


class SuppressionList:
    """The unsubscribed/bounced/complained addresses, refreshed from Meisa on an interval.

    Without the contacts:read scope the list cannot be read: a warning is logged once and the
    bridge relies on Meisa's 422-unsubscribed answer instead.
    """

    def __init__(self, fetch: Callable[[], Awaitable[Iterable[str]]], *, interval: float) -> None:
        self._fetch = fetch
        self.interval = interval
        self.emails: frozenset[str] = frozenset()
        self.available = True

    def __contains__(self, email: object) -> bool:
        return isinstance(email, str) and email.strip().lower() in self.emails

    async def refresh(self) -> None:
        try:
            emails = await self._fetch()
        except Forbidden:
            self.available = False
            log.warning(
                "the API key lacks contacts:read: the unsubscribed list is not polled; "
                "triggers to unsubscribed addresses are skipped when Meisa answers 422"
            )
            return
        except (RetryableError, HaltError) as exc:
            log.warning("could not refresh the unsubscribed list: %s", exc)
            return
        self.emails = frozenset(str(e).strip().lower() for e in emails)

    async def run(self) -> None:
        """Refresh forever (cancel to stop); the first refresh happens at once."""
        while self.available:
            await self.refresh()
            if not self.available:
                return
            await asyncio.sleep(self.interval)


class CallGuard:
    """StaleEvent past the call's max_age; Suppressed for a trigger to a suppressed address."""

    def __init__(
        self,
        *,
        suppressed: Callable[[str], bool] = lambda email: False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._suppressed = suppressed
        self._clock = clock

    def __call__(self, call: MeisaCall, event_time: float | None) -> None:
        now = self._clock()
        if event_time is not None and is_stale(call, event_time, now):
            age = now - event_time
            raise StaleEvent(f"{call.rule}: event is {age:.0f}s old (max_age {call.max_age}s)")
        if call.traits.trigger and self._suppressed(str(call.body.get("to_email", ""))):
            raise Suppressed(f"{call.rule}: recipient is on the unsubscribed list")
