"""Retry policy: small predicates and waits, and tenacity to apply them after a failure.

* What is retried: every RetryableError (429, 5xx, timeouts, connection resets), without an
  attempt limit (see bridge.meisa.delivery for why), and ContactNotFound for calls whose contact
  may simply not be there yet (track; tag calls whose cached contact id went stale), for as long
  as the one 404 wait allows (`ContactWait`, below); after that the 404 is poison.
* How long: full-jitter exponential backoff, `uniform(0, min(cap, base * 2**(n-1)))`; when the
  server sent a Retry-After (already parsed and clamped by the classifier), that instead, plus up
  to `base` of jitter so calls told the same second do not all come back in the same
  millisecond. The server said when: a call refused several times in a row by a proxy's random
  429s does not also back off exponentially (minutes of wait that hold its person's later calls).
  A 404 waits as `ContactWait.delay` says.
* Time is injected: `sleep` (async) and `rng` (for the jitter), so tests run on a fake clock.

The first attempt runs bare: nearly every call succeeds on it, and a retry controller built per
call (tenacity's AsyncRetrying: its state, statistics and action chain) cost about a tenth of
the bridge's CPU per call for that first attempt alone. A first attempt that failed with what is
retried enters tenacity's AsyncRetrying, which sees that failure as its own first attempt and
applies our predicate (`retry`), our wait and our stop (never for a RetryableError; the 404 wait's
limit for a ContactNotFound), and logs each retry before it sleeps (bench/retry_cost.py measures
the clean path).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from bridge.errors import ContactNotFound, RetryableError
from bridge.meisa.calls import KINDS, MeisaCall
from bridge.observability import mask_email
from bridge.settings import MeisaSettings

log = logging.getLogger("bridge.meisa.retry")

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
_MAX_EXPONENT = 62  # 2**62 * base is past any cap; keeps the float finite on endless retries
CONTACT_WAIT_BASE_SECONDS = 1.0  # first wait after a 404; doubles up to the cap
CONTACT_WAIT_CAP_SECONDS = 30.0  # an upsert that arrives meanwhile wakes a parked call at once


def is_retryable(error: BaseException) -> bool:
    """429 / 5xx / transport errors: always worth another attempt."""
    return isinstance(error, RetryableError)


def may_wait_for_contact(error: BaseException, call: MeisaCall) -> bool:
    """A 404 for a call whose contact may still be on its way (KINDS' `waits_on_404`)."""
    return isinstance(error, ContactNotFound) and KINDS[call.kind].waits_on_404


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """uniform(0, min(cap, base * 2**(attempt-1))): the AWS "full jitter" backoff."""
    exponent = min(attempt - 1, _MAX_EXPONENT)
    return rng.uniform(0.0, min(cap, base * 2.0**exponent))


def retry_after(error: BaseException) -> float | None:
    """The server's Retry-After for this error, in seconds (None: it sent none)."""
    return error.retry_after if isinstance(error, RetryableError) else None


@dataclass(frozen=True, kw_only=True)
class ContactWait:
    """The one 404 wait: how a call whose contact Meisa does not know (yet) waits for it.

    Another replica, or a later message, may be creating the contact, so a 404 for a track or a
    tag is a bounded wait before it is poison. Its two holders share this policy: the live
    pipeline parks the call in its person's lane (bridge.pipeline.dispatcher: it holds no slot,
    an upsert of the person goes first and wakes it), and the one-shot commands (replay, redrive),
    which have no lanes, wait in the call's retry. The wait after the n-th 404 is between half
    and all of `min(cap, base * 2**(n-1))`; the call is poison once `seconds` have passed since
    its first 404 or after `attempts` 404s (None: no such limit).
    """

    seconds: float | None = None
    attempts: int | None = None
    base_seconds: float = CONTACT_WAIT_BASE_SECONDS
    cap_seconds: float = CONTACT_WAIT_CAP_SECONDS

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after the `attempt`-th 404; never zero, so a 404 is not hammered."""
        exponent = min(attempt - 1, _MAX_EXPONENT)
        ceiling = min(self.cap_seconds, self.base_seconds * 2.0**exponent)
        return rng.uniform(ceiling / 2, ceiling)

    def over(self, attempts: int, waited: float) -> bool:
        """Whether a call answered 404 `attempts` times over `waited` seconds is poison now."""
        if self.attempts is not None and attempts > self.attempts:
            return True
        return self.seconds is not None and waited >= self.seconds


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    # After this many failed attempts a call is "stuck": logged at WARNING on every retry.
    warn_after_attempts: int = 10
    not_found_retries: int = 3
    contact_wait: ContactWait = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "contact_wait", ContactWait(attempts=self.not_found_retries))

    @classmethod
    def from_settings(cls, settings: MeisaSettings) -> RetryPolicy:
        return cls(
            base_seconds=settings.retry_base_seconds,
            cap_seconds=settings.retry_cap_seconds,
            warn_after_attempts=settings.retry_max_attempts,
            not_found_retries=settings.not_found_retries,
        )

    async def run(
        self,
        call: MeisaCall,
        attempt: Callable[[int], Awaitable[T]],
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        not_found: bool = True,
    ) -> T:
        """`await attempt(n)` for n = 1, 2, ... until it returns or raises what is not retried
        (that error propagates). `not_found=False` raises a 404 at once (the caller waits for
        the contact its own way)."""
        try:
            return await attempt(1)  # bare: no controller for the call that succeeds
        except Exception as error:
            if not self._retried(error, call, not_found):
                raise
            failed = error
        retrying = _Retrying(self, call, failed, rng or random.Random())
        controller = AsyncRetrying(
            sleep=sleep,
            retry=retry_if_exception(lambda e: self._retried(e, call, not_found)),
            wait=retrying.wait,
            stop=retrying.stop,
            before_sleep=retrying.log,
            reraise=True,
        )
        result: T = await controller(retrying.attempts(attempt))
        return result

    def _retried(self, error: BaseException, call: MeisaCall, not_found: bool) -> bool:
        return is_retryable(error) or (not_found and may_wait_for_contact(error, call))

    def wait(self, attempt: int, error: BaseException, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (a 404 aside)."""
        rng = rng or random.Random()
        hint = retry_after(error)
        if hint is not None:
            return hint + rng.uniform(0.0, self.base_seconds)
        return full_jitter(attempt, self.base_seconds, self.cap_seconds, rng)

    def log_retry(self, call: MeisaCall, attempt: int, error: BaseException, wait: float) -> None:
        """One line per retry; no secrets, the contact masked."""
        stuck = attempt >= self.warn_after_attempts
        log.log(
            logging.WARNING if stuck else logging.INFO,
            "retrying %s (rule %s, contact %s) after attempt %d: %s; waiting %.2fs",
            call.kind,
            call.rule or "-",
            mask_email(call.contact_key),
            attempt,
            type(error).__name__,
            wait,
        )


class _Retrying:
    """The hooks one call's AsyncRetrying runs: the first (bare) attempt's failure replayed as
    its attempt 1, our wait, our stop and the retry log line."""

    def __init__(
        self,
        policy: RetryPolicy,
        call: MeisaCall,
        failed: Exception,
        rng: random.Random,
    ) -> None:
        self._policy = policy
        self._call = call
        self._failed: Exception | None = failed
        self._rng = rng
        self._not_founds = 0  # 404s so far
        self._waited_for_contact = 0.0  # seconds slept after them

    def attempts(self, attempt: Callable[[int], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
        """What AsyncRetrying calls: first the failure the bare attempt had, then attempt 2..."""
        number = 0

        async def next_attempt() -> T:
            nonlocal number
            number += 1
            failed, self._failed = self._failed, None
            try:
                if failed is not None:
                    raise failed
                return await attempt(number)
            except ContactNotFound:
                self._not_founds += 1
                raise

        return next_attempt

    def wait(self, state: RetryCallState) -> float:
        error = _error(state)
        if isinstance(error, ContactNotFound):
            return self._policy.contact_wait.delay(self._not_founds, self._rng)
        return self._policy.wait(state.attempt_number, error, self._rng)

    def stop(self, state: RetryCallState) -> bool:
        """Never for a retryable error; a 404 once the contact wait is over."""
        if not isinstance(_error(state), ContactNotFound):
            return False
        return self._policy.contact_wait.over(self._not_founds, self._waited_for_contact)

    def log(self, state: RetryCallState) -> None:
        """Before each sleep (tenacity's `before_sleep`): the retry's log line."""
        error = _error(state)
        if isinstance(error, ContactNotFound):
            self._waited_for_contact += state.upcoming_sleep
        self._policy.log_retry(self._call, state.attempt_number, error, state.upcoming_sleep)


def _error(state: RetryCallState) -> BaseException:
    # The hooks run only after a failed attempt: there is an outcome, and it is an exception.
    outcome = state.outcome
    assert outcome is not None
    error = outcome.exception()
    assert error is not None
    return error
