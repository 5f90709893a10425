"""What `run` records per delivery attempt: the status label and the outcome, from typed errors."""

from __future__ import annotations

from bridge.errors import Forbidden, RateLimited, RejectedCall, StaleEvent
from bridge.meisa.calls import MeisaCall
from bridge.meisa.delivery import Attempt
from bridge.meisa.models import CallResult
from bridge.observability import Metrics
from bridge.pipeline.callmetrics import attempt_metrics
from bridge.pipeline.inflight import InFlightLimit

CALL = MeisaCall(kind="upsert", body={"email": "a@x.io"}, contact_key="a@x.io", rule="r")


def test_each_attempt_is_labelled_by_status_or_error_and_by_outcome() -> None:
    metrics = Metrics()
    record = attempt_metrics(metrics)
    answers = [
        Attempt(CALL, 1, 0.0, 0.1, result=CallResult(status=200, body={})),
        Attempt(CALL, 2, 0.0, 0.1, error=RejectedCall("bad", status=422, endpoint="x")),
        Attempt(CALL, 3, 0.0, 0.1, error=RateLimited("slow down")),
        Attempt(CALL, 4, 0.0, 0.1, error=StaleEvent("old")),
        Attempt(CALL, 5, 0.0, 0.1, error=Forbidden("scope")),
    ]
    for attempt in answers:
        record(attempt)
    text = metrics.render().decode()
    for status in ("200", "422", "RateLimited", "skipped", "Forbidden"):
        assert f'meisa_bridge_calls_total{{endpoint="upsert",status="{status}"}} 1.0' in text
    for outcome in ("ok", "poison", "retry", "skipped", "halt"):
        assert f'meisa_bridge_call_outcomes_total{{kind="upsert",outcome="{outcome}"}} 1.0' in text


def test_answered_attempts_alone_size_the_calls_on_the_wire() -> None:
    in_flight = InFlightLimit(64)
    record = attempt_metrics(Metrics(), in_flight)
    start = in_flight.value
    for _ in range(start):  # one window of errors: they tell nothing about Meisa's queue
        record(Attempt(CALL, 1, 0.0, 0.005, error=RateLimited("slow down")))
    assert in_flight.value == start
    for _ in range(start):  # one window of answers with nothing queued: the limit grows
        record(Attempt(CALL, 1, 2.0, 0.005, result=CallResult(status=200, body={})))
    assert in_flight.value > start
