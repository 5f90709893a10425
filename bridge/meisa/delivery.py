"""Deliver one MeisaCall: rate governor, one attempt, feed the governor, retry per policy.

`Deliverer.deliver(call)` returns a CallResult or raises exactly one of PoisonError (DLQ),
SkipOutcome (drop, offset done) or HaltError (stop the bridge).

Transient errors never give up. A RetryableError (429, 5xx, timeout, reset) is retried without
an attempt limit, with capped full-jitter backoff: Meisa being down for an hour must delay
messages, never lose them or dead-letter them, and at-least-once delivery forbids committing past
them. Only the pipeline knows what to do while a call is stuck: its poll loop keeps running (this
coroutine only sleeps), it pauses partitions whose buffers fill, and on shutdown or revoke it
cancels `deliver`, which leaves the offset uncommitted so the message is consumed again.
`retry_max_attempts` is therefore a warning threshold (a stuck call is logged at WARNING on
every retry after it), not a limit. A 404 (ContactNotFound) for a track or tag call waits for
its contact as the one 404 wait says (bridge.meisa.retry.ContactWait, up to `not_found_retries`
404s), then it is poison; the live pipeline passes `not_found=False` and parks the call itself
under the same wait (bridge.pipeline.dispatcher), holding no slot and letting upserts pass.

Slots. `deliver(call, slot)` enters `slot` (a `Slot`, the pipeline's concurrency limit) around
each attempt only, the rate governor's wait and the HTTP exchange; a back-off sleep between
attempts holds no slot. After a wait at the governor, `slot.granted()` is awaited before the
exchange: the process may have been frozen while it waited, and its partitions moved to another
member.

Guard. `guard(call, event_time)` runs right before every HTTP attempt (after the governor's
wait): a trigger that waited behind a Retry-After can turn stale meanwhile. It raises a SkipOutcome.

A trigger is first looked up in the sent-email ledger (`bridge.ledger`; AlreadySent when Meisa
accepted its key before) and recorded there once Meisa accepted it.

Trace. `deliver(call, ..., trace=...)` takes the call's trace (bridge.observability.tracing): each
attempt is a span, from before the rate governor to the answer, and its id goes to Meisa in
`traceparent`. Off, it is a no-op.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.errors import PoisonError, RateLimited, RetryableError
from bridge.ledger import NO_LEDGER, SentLedger
from bridge.meisa.calls import MeisaCall
from bridge.meisa.client import MeisaClient
from bridge.meisa.governor import RateGovernor
from bridge.meisa.models import CallResult
from bridge.meisa.retry import RetryPolicy, Sleep
from bridge.observability.tracing import NO_CALL_TRACE, AttemptTrace, CallTrace
from bridge.settings import MeisaSettings


class Sender(Protocol):
    async def send(self, call: MeisaCall) -> CallResult: ...

    def requests_for(self, call: MeisaCall) -> int: ...


# Raises a SkipOutcome when the call must not be sent now (stale, suppressed).
Guard = Callable[[MeisaCall, float | None], None]


class Governor(Protocol):
    async def acquire(self, priority: int, tokens: int = 1) -> float: ...

    def on_success(self) -> None: ...

    def on_rate_limited(self, retry_after: float | None) -> None: ...


class Slot(Protocol):
    """Held around each attempt (the pipeline's StartSlot): entered before the rate governor's
    wait, left after the answer; `granted()` runs after a wait at the governor, before the
    exchange, and may wait (a fence) or raise (the call has no one left to serve)."""

    async def __aenter__(self) -> object: ...

    async def __aexit__(self, *exc: Any) -> bool | None: ...

    async def granted(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt did, for metrics: `error` is None when `result` is set."""

    call: MeisaCall
    number: int
    waited: float  # seconds at the rate governor
    duration: float  # seconds of the HTTP exchange
    result: CallResult | None = None
    error: BaseException | None = None


class Deliverer:
    def __init__(
        self,
        client: Sender,
        governor: Governor,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        settings: MeisaSettings | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
        ledger: SentLedger = NO_LEDGER,
        guard: Guard | None = None,
    ) -> None:
        if policy is None:
            policy = RetryPolicy.from_settings(settings or MeisaSettings())
        self.client = client
        self.governor = governor
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._on_attempt = on_attempt
        self._ledger = ledger
        self._guard = guard

    async def deliver(
        self,
        call: MeisaCall,
        slot: Slot | None = None,
        *,
        not_found: bool = True,
        event_time: float | None = None,
        trace: CallTrace = NO_CALL_TRACE,
    ) -> CallResult:
        """`event_time` (epoch seconds) is what the guard measures max_age from."""
        with trace:
            self._ledger.check(call)
            result = await self._deliver(call, slot, not_found, event_time, trace)
            await self._ledger.record(call)
        return result

    async def _deliver(
        self,
        call: MeisaCall,
        slot: Slot | None,
        not_found: bool,
        event_time: float | None,
        trace: CallTrace,
    ) -> CallResult:
        number = 0

        async def attempt(n: int) -> CallResult:
            nonlocal number
            number = n
            if slot is None:
                return await self._attempt(call, n, event_time, trace.attempt(call, n))
            async with slot:
                return await self._attempt(call, n, event_time, trace.attempt(call, n), slot)

        try:
            return await self.policy.run(
                call, attempt, sleep=self._sleep, rng=self._rng, not_found=not_found
            )
        except PoisonError as error:
            if number == error.attempts:
                raise
            raise error.after_attempts(number) from error  # 404s retried before giving up count

    async def _attempt(
        self,
        call: MeisaCall,
        number: int,
        event_time: float | None,
        traced: AttemptTrace,
        slot: Slot | None = None,
    ) -> CallResult:
        waited = await self.governor.acquire(call.priority, self.client.requests_for(call))
        if waited and slot is not None:
            await slot.granted()  # the slot's checks again: a freeze may have come meanwhile
        traced.acquired()
        start = self._clock()
        try:
            if self._guard is not None:
                self._guard(call, event_time)
            result = await self.client.send(call)
        except RateLimited as error:
            self.governor.on_rate_limited(error.retry_after)
            self._report(Attempt(call, number, waited, self._clock() - start, error=error), traced)
            raise
        except Exception as error:
            if not isinstance(error, RetryableError):
                self.governor.on_success()  # answered without a rate limit: budget is fine
            self._report(Attempt(call, number, waited, self._clock() - start, error=error), traced)
            raise
        self.governor.on_success()
        self._report(Attempt(call, number, waited, self._clock() - start, result=result), traced)
        return result

    def _report(self, attempt: Attempt, traced: AttemptTrace) -> None:
        traced.ended(attempt.result.status if attempt.result else None, attempt.error)
        if self._on_attempt is not None:
            self._on_attempt(attempt)


@asynccontextmanager
async def open_deliverer(
    settings: MeisaSettings, ledger: SentLedger = NO_LEDGER
) -> AsyncIterator[Deliverer]:
    """A Deliverer on its own client, with a governor sized by GET /ping/ (one-shot commands)."""
    async with MeisaClient(settings) as client:
        governor = RateGovernor.from_ping(await client.ping(), settings)
        try:
            yield Deliverer(client, governor, settings=settings, ledger=ledger)
        finally:
            await governor.aclose()
