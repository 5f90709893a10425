"""Retry policy on tenacity, composed from small predicates and waits.

* What is retried: every RetryableError (429, 5xx, timeouts, connection resets), without an
  attempt limit (see bridge.meisa.delivery for why), and ContactNotFound for calls whose contact
  may simply not be there yet (track; tag calls whose cached contact id went stale) up to
  `not_found_retries` times; after that the 404 is poison.
* How long: full-jitter exponential backoff, `uniform(0, min(cap, base * 2**(n-1)))`, and never
  less than the server's Retry-After (already parsed and clamped by the classifier).
* Time is injected: `sleep` (async) and `rng` (for the jitter), so tests run on a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, stop_never
from tenacity.retry import retry_base
from tenacity.wait import wait_base

from bridge.errors import ContactNotFound, RetryableError
from bridge.meisa.calls import CallKind, MeisaCall
from bridge.observability import mask_email
from bridge.settings import MeisaSettings

log = logging.getLogger("bridge.meisa.retry")

Sleep = Callable[[float], Awaitable[None]]
_MAX_EXPONENT = 62  # 2**62 * base is past any cap; keeps the float finite on endless retries
NOT_FOUND_KINDS: frozenset[CallKind] = frozenset({"track", "add_tag", "remove_tag"})


def _error(state: RetryCallState) -> BaseException | None:
    outcome = state.outcome
    if outcome is None or not outcome.failed:
        return None
    return outcome.exception()


class retry_if_retryable(retry_base):  # lower-case, like tenacity's own
    """Retry 429 / 5xx / transport errors."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        return isinstance(_error(retry_state), RetryableError)


class retry_if_not_found(retry_base):
    """Retry a 404 while the contact may still be on its way, at most `limit` times per call."""

    def __init__(self, kind: CallKind, limit: int) -> None:
        self.kind = kind
        self.limit = limit
        self.seen = 0

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self.kind not in NOT_FOUND_KINDS or not isinstance(_error(retry_state), ContactNotFound):
            return False
        self.seen += 1
        return self.seen <= self.limit


class wait_full_jitter(wait_base):
    """uniform(0, min(cap, base * 2**(attempt-1))): the AWS "full jitter" backoff."""

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        self.base = base
        self.cap = cap
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        exponent = min(retry_state.attempt_number - 1, _MAX_EXPONENT)
        return self.rng.uniform(0.0, min(self.cap, self.base * 2.0**exponent))


class wait_at_least_retry_after(wait_base):
    """The inner wait, but never shorter than the server's Retry-After."""

    def __init__(self, inner: wait_base) -> None:
        self.inner = inner

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = self.inner(retry_state)
        error = _error(retry_state)
        hint = error.retry_after if isinstance(error, RetryableError) else None
        return max(wait, hint) if hint is not None else wait


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

    def retrying(
        self,
        call: MeisaCall,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        not_found: bool = True,
    ) -> AsyncRetrying:
        """A fresh AsyncRetrying for one call (the 404 counter is per call); `not_found=False`
        raises a 404 at once (the caller waits for the contact its own way)."""
        limit = self.not_found_retries if not_found else 0
        return AsyncRetrying(
            sleep=sleep,
            stop=stop_never,
            wait=wait_at_least_retry_after(
                wait_full_jitter(self.base_seconds, self.cap_seconds, rng or random.Random())
            ),
            retry=retry_if_retryable() | retry_if_not_found(call.kind, limit),
            before_sleep=self.log_before_sleep(call),
            reraise=True,
        )

    def log_before_sleep(self, call: MeisaCall) -> Callable[[RetryCallState], None]:
        """tenacity before_sleep hook: one line per retry; no secrets, the contact masked."""

        def hook(state: RetryCallState) -> None:
            error = _error(state)
            stuck = state.attempt_number >= self.warn_after_attempts
            log.log(
                logging.WARNING if stuck else logging.INFO,
                "retrying %s (rule %s, contact %s) after attempt %d: %s; waiting %.2fs",
                call.kind,
                call.rule or "-",
                mask_email(call.contact_key),
                state.attempt_number,
                type(error).__name__ if error else "-",
                state.upcoming_sleep,
            )

        return hook
