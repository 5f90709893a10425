"""What `run` records per delivery attempt: the status label and the outcome, from typed errors."""

from __future__ import annotations

from bridge.errors import Forbidden, RateLimited, RejectedCall, StaleEvent
from bridge.meisa.calls import MeisaCall
from bridge.meisa.delivery import Attempt
from bridge.meisa.models import CallResult
from bridge.observability import Metrics
from bridge.pipeline.callmetrics import attempt_metrics

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
