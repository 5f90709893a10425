"""Outcome classification of a Meisa response into bridge.errors (docs/architecture.md, Outcomes).

    2xx                          -> CallResult(outcome="ok")
    200 {"status": "skipped"}    -> CallResult(outcome="skipped", reason=...)
    202                          -> CallResult(outcome="ok", reason="scheduled")
    422 unsubscribed/bounced/... -> Unsubscribed        (skip, never DLQ)
    4xx already enrolled         -> AlreadyEnrolled     (skip: a re-delivered enroll is done)
    429                          -> RateLimited(retry_after)
    5xx, 408                     -> ServerError(retry_after if given)
    3xx                          -> WrongBaseUrl        (halt: every call would be redirected)
    401                          -> Unauthorized        (halt)
    403                          -> Forbidden, naming the missing scope when the body does
    404 of a tag id              -> RejectedCall        (poison, no retries)
    404                          -> ContactNotFound     (poison; track retried first)
    400, other 4xx, other 422    -> RejectedCall        (poison)

Pure functions: no I/O, `now` is passed in, so they are cheap to property-test.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping
from typing import Any

from bridge.errors import (
    AlreadyEnrolled,
    BridgeError,
    ContactNotFound,
    Forbidden,
    RateLimited,
    RejectedCall,
    ServerError,
    Unauthorized,
    Unsubscribed,
    WrongBaseUrl,
)
from bridge.meisa.models import CallResult

_DELTA = re.compile(r"\s*(\d+(?:\.\d+)?)\s*")
_SCOPE = re.compile(
    r"\b(contacts:read|contacts:write|events:track|sequences:read|sequences:enroll|"
    r"emails:trigger|tags:write)\b"
)
# Words Meisa uses for "this person must not be emailed" (spec: unsubscribed, bounced, complained).
_DO_NOT_EMAIL = re.compile(r"unsubscri|bounced|complain", re.IGNORECASE)
# The spec says enroll "rejects if the contact is already active/paused in that sequence" but not
# how: the code/reason field decides when it says so; on enroll, the message's wording also does.
_ALREADY_ENROLLED_CODE = "already_enrolled"
_ALREADY = re.compile(r"\balready\b", re.IGNORECASE)
_ENROLL_PATH = "/sequences/enroll/"
_TAG_NOT_FOUND_CODE = "tag_not_found"
_MESSAGE_MAX = 300  # enough to explain, short enough for a Kafka header


def parse_retry_after(value: str | None, *, now: float, cap: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), in [0, cap].

    `now` is the wall clock (epoch seconds) an HTTP-date is measured against. Anything that is
    neither form is ignored (None): a bad header must not stall or crash delivery.
    """
    if value is None:
        return None
    match = _DELTA.fullmatch(value)
    if match:
        seconds = float(match.group(1))
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means it said so
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), max(cap, 0.0))


def error_message(body: Any) -> str:
    """The server's explanation, short; never more than the body said."""
    if isinstance(body, Mapping):
        for key in ("error", "message", "detail", "reason"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:_MESSAGE_MAX]
    text = body if isinstance(body, str) else repr(body)
    return text[:_MESSAGE_MAX]


def _text(body: Any) -> str:
    if isinstance(body, Mapping):
        return " ".join(str(v) for v in body.values())
    return str(body)


def _do_not_email(body: Any) -> bool:
    """422 because of the person's status. Machine-readable fields (code, reason) decide when
    present, so a trigger named e.g. "complaint_followup" without a sender is not taken for one."""
    if isinstance(body, Mapping):
        codes = [c for k in ("code", "reason", "status") if isinstance(c := body.get(k), str)]
        if codes:
            return any(_DO_NOT_EMAIL.search(c) for c in codes)
    return bool(_DO_NOT_EMAIL.search(error_message(body)))


def _codes(body: Any) -> list[str]:
    """The body's machine-readable fields (code, reason), lower-cased."""
    if not isinstance(body, Mapping):
        return []
    return [c.lower() for k in ("code", "reason") if isinstance(c := body.get(k), str)]


def _already_enrolled(body: Any, endpoint: str) -> bool:
    """An enroll refused because the contact is already in the sequence (a re-delivery)."""
    if _ALREADY_ENROLLED_CODE in _codes(body):
        return True
    return endpoint.endswith(_ENROLL_PATH) and bool(_ALREADY.search(error_message(body)))


def _tag_not_found(body: Any) -> bool:
    """A 404 that names the tag (code, or the field at fault) rather than the contact."""
    if _TAG_NOT_FOUND_CODE in _codes(body):
        return True
    return isinstance(body, Mapping) and body.get("field") == "tag_id"


def _success(status: int, body: Any) -> CallResult:
    state = body.get("status") if isinstance(body, Mapping) else None
    if state == "skipped":
        reason = body.get("reason") if isinstance(body, Mapping) else None
        return CallResult(status, body, "skipped", str(reason or "skipped"))
    if status == 202:
        return CallResult(status, body, "ok", str(state or "accepted"))
    return CallResult(status, body, "ok", None)


def _forbidden(endpoint: str, body: Any) -> Forbidden:
    scopes = sorted(set(_SCOPE.findall(_text(body))))
    named = (
        f"the API key lacks scope {', '.join(scopes)}" if scopes else "the API key lacks a scope"
    )
    return Forbidden(f"{endpoint} -> 403: {named} ({error_message(body)})")


def _retryable(status: int, message: str, endpoint: str, retry_after: float | None) -> BridgeError:
    if status == 429:
        return RateLimited(f"{endpoint} -> 429: {message}", retry_after=retry_after)
    return ServerError(f"{endpoint} -> {status}: {message}", retry_after=retry_after)


def _not_found(body: Any, message: str, endpoint: str) -> RejectedCall:
    if _tag_not_found(body):  # retrying cannot create the tag: poison at once
        return RejectedCall(message, status=404, endpoint=endpoint)
    return ContactNotFound(message, status=404, endpoint=endpoint)


def _refused(status: int, body: Any, message: str, endpoint: str) -> BridgeError:
    if status == 401:
        return Unauthorized(f"{endpoint} -> 401: the API key is missing or invalid ({message})")
    if status == 403:
        return _forbidden(endpoint, body)
    if status == 404:
        return _not_found(body, message, endpoint)
    if status == 422 and _do_not_email(body):
        return Unsubscribed(f"{endpoint} -> 422: {message}")
    if _already_enrolled(body, endpoint):
        return AlreadyEnrolled(f"{endpoint} -> {status}: {message}")
    return RejectedCall(message, status=status, endpoint=endpoint)


def to_error(
    status: int,
    body: Any,
    *,
    endpoint: str,
    retry_after: float | None,
    location: str | None = None,
) -> BridgeError | None:
    """The error a non-2xx response stands for (None for 2xx)."""
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return WrongBaseUrl(
            f"{endpoint} -> {status}: redirected to {location or '(no Location)'}; "
            "check meisa.base_url (the client follows no redirects)"
        )
    message = error_message(body)
    if status in (408, 429) or status >= 500:
        return _retryable(status, message, endpoint, retry_after)
    return _refused(status, body, message, endpoint)


def classify(
    status: int,
    body: Any,
    *,
    endpoint: str,
    retry_after_header: str | None = None,
    location: str | None = None,
    now: float,
    retry_after_cap: float,
) -> CallResult:
    """CallResult for a 2xx, otherwise raise the error the status stands for."""
    retry_after = parse_retry_after(retry_after_header, now=now, cap=retry_after_cap)
    error = to_error(status, body, endpoint=endpoint, retry_after=retry_after, location=location)
    if error is not None:
        raise error
    return _success(status, body)
