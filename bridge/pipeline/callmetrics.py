"""What `run` records about Meisa calls: per delivery attempt (status, outcome, latency, waits,
retries) and per rate-governor change. The status label and the outcome come from typed errors.
"""

from __future__ import annotations

from collections.abc import Callable

from bridge.errors import Forbidden, RejectedCall, RetryableError, SkipOutcome
from bridge.meisa.delivery import Attempt
from bridge.meisa.schedule import GovernorState
from bridge.observability import Metrics
from bridge.outcome import outcome_of
from bridge.pipeline.inflight import InFlightLimit


def governor_metrics(metrics: Metrics) -> Callable[[GovernorState], None]:
    """The rate governor's observer: why it throttles and the rate it allows."""

    def record(state: GovernorState) -> None:
        metrics.governor_throttled(state.reason)
        metrics.governor_rate(state.per_minute)

    return record


def attempt_metrics(
    metrics: Metrics, in_flight: InFlightLimit | None = None
) -> Callable[[Attempt], None]:
    """The deliverer's observer: one record per attempt, labelled by status and outcome; an
    answer's time also tells `in_flight` how many calls Meisa needs on the wire."""
    sample = None if in_flight is None or not in_flight.adaptive else in_flight.sample

    def record(attempt: Attempt) -> None:
        call, error, result = attempt.call, attempt.error, attempt.result
        kind = call.kind
        if result is not None:  # answered: what nearly every attempt records
            metrics.attempt(kind, result.status, "ok", attempt.duration, attempt.waited)
            if sample is not None:
                sample(attempt.duration)
        else:
            status = _status(attempt)
            metrics.attempt(kind, status, outcome_of(error), attempt.duration, attempt.waited)
        if call.traits.trigger:
            metrics.trigger_wait(attempt.waited)
        if error is None:
            return
        if isinstance(error, RetryableError):
            metrics.retries(kind, type(error).__name__)
        if isinstance(error, Forbidden):  # the key lost a scope while running
            metrics.scope_missing(call.scope, True)

    return record


def _status(attempt: Attempt) -> int | str:
    if attempt.result is not None:
        return attempt.result.status
    error = attempt.error
    if isinstance(error, RejectedCall):  # the one error that carries Meisa's status
        return error.status
    if isinstance(error, SkipOutcome):
        return "skipped"
    return type(error).__name__
