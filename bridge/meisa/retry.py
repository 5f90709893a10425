"""Retry policy: small predicates and waits, and the loop that applies them.

* What is retried: every RetryableError (429, 5xx, timeouts, connection resets), without an
  attempt limit (see bridge.meisa.delivery for why), and ContactNotFound for calls whose contact
  may simply not be there yet (track; tag calls whose cached contact id went stale) up to
  `not_found_retries` times; after that the 404 is poison.
* How long: full-jitter exponential backoff, `uniform(0, min(cap, base * 2**(n-1)))`; when the
  server sent a Retry-After (already parsed and clamped by the classifier), that instead, plus up
  to `base` of jitter so calls told the same second do not all come back in the same
  millisecond. The server said when: a call refused several times in a row by a proxy's random
  429s does not also back off exponentially (minutes of wait that hold its person's later calls).
* Time is injected: `sleep` (async) and `rng` (for the jitter), so tests run on a fake clock.

The loop is written out (`RetryPolicy.run`) rather than driven by a retry library: nearly every
call succeeds on its first attempt, and a generic retry controller built per call (tenacity's
AsyncRetrying: its state, statistics and action chain) cost about a tenth of the bridge's CPU
per call for that first attempt alone.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bridge.errors import ContactNotFound, RetryableError
from bridge.meisa.calls import KINDS, CallKind, MeisaCall
from bridge.observability import mask_email
from bridge.settings import MeisaSettings

log = logging.getLogger("bridge.meisa.retry")

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
_MAX_EXPONENT = 62  # 2**62 * base is past any cap; keeps the float finite on endless retries


def is_retryable(error: BaseException) -> bool:
    """429 / 5xx / transport errors: always worth another attempt."""
    return isinstance(error, RetryableError)


def is_early_not_found(error: BaseException, kind: CallKind, seen: int, limit: int) -> bool:
    """A 404 while the contact may still be on its way: at most `limit` of them per call
    (`seen` counts this one)."""
    return KINDS[kind].waits_on_404 and isinstance(error, ContactNotFound) and seen <= limit


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """uniform(0, min(cap, base * 2**(attempt-1))): the AWS "full jitter" backoff."""
    exponent = min(attempt - 1, _MAX_EXPONENT)
    return rng.uniform(0.0, min(cap, base * 2.0**exponent))


def retry_after(error: BaseException) -> float | None:
    """The server's Retry-After for this error, in seconds (None: it sent none)."""
    return error.retry_after if isinstance(error, RetryableError) else None


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    # After this many failed attempts a call is "stuck": logged at WARNING on every retry.
    warn_after_attempts: int = 10
    not_found_retries: int = 3

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
        limit = self.not_found_retries if not_found else 0
        not_found_seen = 0
        number = 1
        while True:
            try:
                return await attempt(number)
            except Exception as error:
                not_found_seen += isinstance(error, ContactNotFound)
                if not (
                    is_retryable(error)
                    or is_early_not_found(error, call.kind, not_found_seen, limit)
                ):
                    raise
                wait = self.wait(number, error, rng)
                self.log_retry(call, number, error, wait)
            await sleep(wait)
            number += 1

    def wait(self, attempt: int, error: BaseException, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt`."""
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
