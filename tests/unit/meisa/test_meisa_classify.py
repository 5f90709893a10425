"""Outcome classification (docs/architecture.md, Outcomes) and Retry-After parsing."""

from __future__ import annotations

import email.utils
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import (
    AlreadyEnrolled,
    BridgeError,
    ContactNotFound,
    Forbidden,
    PoisonError,
    RateLimited,
    RejectedCall,
    ServerError,
    Unauthorized,
    Unsubscribed,
    WrongBaseUrl,
)
from bridge.meisa.classify import classify, parse_retry_after

NOW = 1_780_000_000.0
TRIGGER = "POST /emails/trigger/"
CAP = 300.0


def run(status: int, body: Any = None, retry_after: str | None = None) -> Any:
    return classify(
        status,
        body,
        endpoint="POST /emails/trigger/",
        retry_after_header=retry_after,
        now=NOW,
        retry_after_cap=CAP,
    )


@pytest.mark.parametrize("status", [200, 201, 204])
def test_2xx_is_ok(status: int) -> None:
    result = run(status, {"status": "sent"})
    assert (result.status, result.outcome, result.reason) == (status, "ok", None)


def test_200_skipped_is_ok_with_reason_recorded() -> None:
    result = run(200, {"status": "skipped", "reason": "conditions_not_met"})
    assert (result.outcome, result.reason) == ("skipped", "conditions_not_met")


def test_202_scheduled_is_ok_with_reason_recorded() -> None:
    result = run(202, {"status": "scheduled", "email_send_id": "s1"})
    assert (result.outcome, result.reason) == ("ok", "scheduled")
    assert result.body["email_send_id"] == "s1"


@pytest.mark.parametrize(
    "message",
    ["Recipient is unsubscribed", "contact status: bounced", "recipient complained"],
)
def test_422_do_not_email_is_a_skip(message: str) -> None:
    with pytest.raises(Unsubscribed):
        run(422, {"error": message})


def test_422_no_sender_is_rejected_not_skipped() -> None:
    with pytest.raises(RejectedCall) as info:
        run(422, {"error": "no sender configured"})
    assert not isinstance(info.value, Unsubscribed)
    assert info.value.status == 422
    assert "no sender configured" in str(info.value)


def test_400_is_rejected_with_the_server_message() -> None:
    with pytest.raises(RejectedCall, match="unknown trigger_key") as info:
        run(400, {"error": "unknown trigger_key 'nope'"})
    assert not isinstance(info.value, ContactNotFound)


def test_404_is_contact_not_found() -> None:
    with pytest.raises(ContactNotFound):
        run(404, {"error": "contact not found"})


def refuse(status: int, body: Any, endpoint: str) -> BridgeError:
    with pytest.raises(BridgeError) as info:
        classify(status, body, endpoint=endpoint, now=NOW, retry_after_cap=CAP)
    return info.value


ENROLL = "POST /sequences/enroll/"
ADD_TAG = "POST /contacts/c_1/add_tag/"


@pytest.mark.parametrize(
    "body",
    [
        # The sandbox's answer.
        {"error": "contact is already active in sequence 'onboarding'", "code": "already_enrolled"},
        {"error": "cannot enroll", "reason": "already_enrolled"},
        # Meisa's own body shape is not in the spec: its wording alone is enough on enroll.
        {"error": "Contact is already enrolled in this sequence"},
        {"detail": "already paused in sequence onboarding", "code": "bad_request"},
        "contact already active in sequence",
    ],
)
@pytest.mark.parametrize("status", [400, 409, 422])
def test_enroll_refused_as_already_enrolled_is_a_skip_not_poison(status: int, body: Any) -> None:
    # At-least-once delivery re-sends enrolls (crash, rebalance, redrive): the second is no error.
    error = refuse(status, body, ENROLL)
    assert isinstance(error, AlreadyEnrolled)
    assert error.reason == "already_enrolled"
    assert not isinstance(error, PoisonError)


def test_already_wording_counts_only_on_the_enroll_endpoint() -> None:
    error = refuse(400, {"error": "idempotency key already used for another body"}, TRIGGER)
    assert type(error) is RejectedCall
    assert type(refuse(400, {"error": "bad", "code": "already_enrolled"}, ADD_TAG)) is (
        AlreadyEnrolled
    )


def test_other_enroll_refusals_stay_poison() -> None:
    error = refuse(400, {"error": "sequence 'nope' is not active", "code": "invalid"}, ENROLL)
    assert type(error) is RejectedCall
    assert type(refuse(422, {"error": "recipient unsubscribed"}, ENROLL)) is Unsubscribed


@pytest.mark.parametrize(
    "body",
    [
        {"error": "tag_id: no tag with id t_9", "code": "tag_not_found", "field": "tag_id"},
        {"error": "not found", "code": "not_found", "field": "tag_id"},
        {"error": "no such tag", "reason": "tag_not_found"},
    ],
)
def test_404_for_an_unknown_tag_is_rejected_without_retries(body: Any) -> None:
    error = refuse(404, body, ADD_TAG)
    assert type(error) is RejectedCall  # not ContactNotFound: retrying cannot create the tag
    assert error.status == 404


def test_404_for_an_unknown_contact_on_a_tag_call_is_contact_not_found() -> None:
    body = {"error": "no contact with id c_1", "code": "contact_not_found"}
    assert type(refuse(404, body, ADD_TAG)) is ContactNotFound
    assert type(refuse(404, {"error": "not found"}, ADD_TAG)) is ContactNotFound


def test_401_halts() -> None:
    with pytest.raises(Unauthorized):
        run(401, {"error": "invalid API key"})


def test_403_names_the_missing_scope() -> None:
    with pytest.raises(Forbidden, match="emails:trigger"):
        run(403, {"error": "API key lacks required scope: emails:trigger"})


def test_403_without_scope_in_body_still_halts() -> None:
    with pytest.raises(Forbidden, match="lacks a scope"):
        run(403, {"error": "forbidden"})


def test_429_carries_retry_after() -> None:
    with pytest.raises(RateLimited) as info:
        run(429, {"error": "rate limited"}, retry_after="7")
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_server_error_with_optional_retry_after(status: int) -> None:
    with pytest.raises(ServerError) as info:
        run(status, "<html>bad gateway</html>", retry_after="3")
    assert info.value.retry_after == 3.0
    with pytest.raises(ServerError) as info:
        run(status, None)
    assert info.value.retry_after is None


def test_retry_after_delta_seconds_and_http_date() -> None:
    assert parse_retry_after("120", now=NOW, cap=CAP) == 120.0
    date = email.utils.formatdate(NOW + 45, usegmt=True)
    assert parse_retry_after(date, now=NOW, cap=CAP) == pytest.approx(45.0)


def test_retry_after_is_clamped_to_zero_and_cap() -> None:
    assert parse_retry_after("100000", now=NOW, cap=CAP) == CAP
    past = email.utils.formatdate(NOW - 600, usegmt=True)
    assert parse_retry_after(past, now=NOW, cap=CAP) == 0.0


@pytest.mark.parametrize("garbage", ["", "soon", "-5", "1e9", "NaN", "Fri, 99 Foo 2026", "12 s"])
def test_retry_after_garbage_is_ignored(garbage: str) -> None:
    assert parse_retry_after(garbage, now=NOW, cap=CAP) is None


@given(st.integers(min_value=0, max_value=10**12))
def test_retry_after_delta_is_min_of_value_and_cap(seconds: int) -> None:
    assert parse_retry_after(str(seconds), now=NOW, cap=CAP) == min(float(seconds), CAP)


@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_retry_after_date_is_clamped_delta(delta: int) -> None:
    header = email.utils.formatdate(NOW + delta, usegmt=True)
    assert parse_retry_after(header, now=NOW, cap=CAP) == pytest.approx(
        min(max(float(delta), 0.0), CAP)
    )


@given(st.text(max_size=40), st.floats(min_value=0, max_value=10**4))
def test_retry_after_never_escapes_zero_to_cap(header: str, cap: float) -> None:
    value = parse_retry_after(header, now=NOW, cap=cap)
    assert value is None or 0.0 <= value <= cap


def expected(status: int, body: dict[str, str]) -> type[BridgeError] | None:
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return WrongBaseUrl
    if status == 429:
        return RateLimited
    if status >= 500 or status == 408:
        return ServerError
    table: dict[int, type[BridgeError]] = {
        401: Unauthorized,
        403: Forbidden,
        404: ContactNotFound,
    }
    if status == 422 and "unsubscribed" in body["error"]:
        return Unsubscribed
    return table.get(status, RejectedCall)


@given(
    st.integers(min_value=200, max_value=599),
    st.sampled_from(["recipient unsubscribed", "no sender configured", "bad to_email", ""]),
)
def test_every_status_lands_in_exactly_its_class(status: int, message: str) -> None:
    body = {"error": message}
    want = expected(status, body)
    if want is None:
        assert run(status, body).status == status
        return
    with pytest.raises(BridgeError) as info:
        run(status, body)
    assert type(info.value) is want


def test_422_machine_readable_code_decides_over_message_words() -> None:
    body = {"error": "trigger 'complaint_followup' has no sender", "code": "no_sender"}
    with pytest.raises(RejectedCall) as info:
        run(422, body)
    assert not isinstance(info.value, Unsubscribed)
    with pytest.raises(Unsubscribed):
        run(422, {"error": "cannot send", "code": "unsubscribed"})


def test_a_redirect_halts_naming_where_it_points() -> None:
    with pytest.raises(WrongBaseUrl, match=re.escape("https://api.meisa.io/api/v1/ping/")):
        classify(
            301,
            None,
            endpoint="GET /ping/",
            location="https://api.meisa.io/api/v1/ping/",
            now=NOW,
            retry_after_cap=CAP,
        )
