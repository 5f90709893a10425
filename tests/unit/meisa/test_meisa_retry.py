"""Retry policy and Deliverer on a fake clock: what is retried, how long it waits, what escapes."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import (
    BridgeError,
    ContactNotFound,
    Forbidden,
    RateLimited,
    RejectedCall,
    ServerError,
    TransportError,
    Unauthorized,
    Unsubscribed,
)
from bridge.meisa import retry
from bridge.meisa.calls import CallKind, MeisaCall, contact_key
from bridge.meisa.delivery import Attempt, Deliverer
from bridge.meisa.models import CallResult
from bridge.meisa.retry import ContactWait, RetryPolicy

OK = CallResult(200, {"status": "ok"})
POLICY = RetryPolicy(
    base_seconds=0.5, cap_seconds=30.0, warn_after_attempts=10, not_found_retries=3
)


class FakeClient:
    """Answers each send with the next scripted outcome (an exception class/instance or OK)."""

    def __init__(self, script: Iterable[Any]) -> None:
        self.script = list(script)
        self.sent = 0

    async def send(self, call: MeisaCall) -> CallResult:
        self.sent += 1
        outcome = self.script.pop(0) if self.script else OK
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[no-any-return]

    def requests_for(self, call: MeisaCall) -> int:
        return 1


class FakeGovernor:
    def __init__(self) -> None:
        self.acquired: list[int] = []
        self.limited: list[float | None] = []
        self.successes = 0

    async def acquire(self, priority: int, tokens: int = 1) -> float:
        self.acquired.append(priority)
        return 0.0

    def on_success(self) -> None:
        self.successes += 1

    def on_rate_limited(self, retry_after: float | None) -> None:
        self.limited.append(retry_after)


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_call(kind: CallKind = "upsert", email: str = "sarah@example.com") -> MeisaCall:
    body = {"email": email, "event_name": "x"} if kind == "track" else {"email": email}
    return MeisaCall(kind=kind, body=body, contact_key=contact_key(body), rule="r1")


def deliverer(client: FakeClient, **kw: Any) -> tuple[Deliverer, FakeGovernor, FakeSleep]:
    governor, sleep = FakeGovernor(), FakeSleep()
    return (
        Deliverer(client, governor, POLICY, sleep=sleep, rng=random.Random(7), **kw),
        governor,
        sleep,
    )


def server_error() -> ServerError:
    return ServerError("503")


async def test_transient_errors_retry_past_the_warning_threshold_until_success() -> None:
    script = [server_error() for _ in range(15)] + [TransportError("reset"), OK]
    client = FakeClient(script)
    d, governor, sleep = deliverer(client)
    assert await d.deliver(make_call()) == OK
    assert client.sent == 17
    assert len(sleep.waits) == 16
    assert len(governor.acquired) == 17, "every attempt goes through the governor"


async def test_backoff_is_full_jitter_within_exponential_cap() -> None:
    client = FakeClient([server_error() for _ in range(12)])
    d, _, sleep = deliverer(client)
    await d.deliver(make_call())
    for n, wait in enumerate(sleep.waits, start=1):
        assert 0.0 <= wait <= min(30.0, 0.5 * 2 ** (n - 1))
    assert len(set(sleep.waits)) > 1, "jittered, not constant"


async def test_retry_after_is_honoured_and_pauses_the_governor() -> None:
    client = FakeClient([RateLimited("429", retry_after=42.0), OK])
    d, governor, sleep = deliverer(client)
    await d.deliver(make_call())
    assert 42.0 <= sleep.waits[0] <= 42.0 + POLICY.base_seconds
    assert governor.limited == [42.0]


async def test_a_retry_after_sets_the_wait_however_many_attempts_came_before() -> None:
    """The server said when: refused ten times in a row, the call still comes back after about
    the Retry-After, not after an exponential back-off (which reaches 30 s by then)."""
    script = [server_error() for _ in range(8)] + [RateLimited("429", retry_after=1.0)] * 2
    d, _, sleep = deliverer(FakeClient([*script, OK]))
    await d.deliver(make_call())
    assert all(1.0 <= wait <= 1.0 + POLICY.base_seconds for wait in sleep.waits[8:])
    assert len(sleep.waits) == 10


async def test_track_404_is_retried_then_poison() -> None:
    not_found = [ContactNotFound("no contact", status=404, endpoint="track") for _ in range(10)]
    client = FakeClient(not_found)
    d, _, sleep = deliverer(client)
    with pytest.raises(ContactNotFound):
        await d.deliver(make_call("track"))
    assert client.sent == 1 + POLICY.not_found_retries
    assert len(sleep.waits) == POLICY.not_found_retries


async def test_poison_carries_the_number_of_attempts_for_the_dlq_header() -> None:
    not_found = [ContactNotFound("no contact", status=404, endpoint="track") for _ in range(10)]
    d, _, _ = deliverer(FakeClient(not_found))
    with pytest.raises(ContactNotFound) as caught:
        await d.deliver(make_call("track"))
    assert caught.value.attempts == 1 + POLICY.not_found_retries
    d, _, _ = deliverer(FakeClient([server_error(), RejectedCall("bad", status=400, endpoint="x")]))
    with pytest.raises(RejectedCall) as rejected:
        await d.deliver(make_call("upsert"))
    assert rejected.value.attempts == 2


async def test_track_404_then_contact_appears_succeeds() -> None:
    client = FakeClient([ContactNotFound("no", status=404, endpoint="track"), OK])
    d, _, _ = deliverer(client)
    assert await d.deliver(make_call("track")) == OK


async def test_upsert_404_is_poison_at_once() -> None:
    client = FakeClient([ContactNotFound("no", status=404, endpoint="upsert")])
    d, _, sleep = deliverer(client)
    with pytest.raises(ContactNotFound):
        await d.deliver(make_call("upsert"))
    assert (client.sent, sleep.waits) == (1, [])


@pytest.mark.parametrize(
    "error",
    [
        RejectedCall("bad", status=400, endpoint="x"),
        Unsubscribed("422"),
        Unauthorized("401"),
        Forbidden("403"),
    ],
)
async def test_final_outcomes_are_never_retried(error: BridgeError) -> None:
    client = FakeClient([error])
    d, _, sleep = deliverer(client)
    with pytest.raises(type(error)):
        await d.deliver(make_call("trigger"))
    assert (client.sent, sleep.waits) == (1, [])


@given(
    st.lists(
        st.sampled_from(["429", "5xx", "transport", "404"]),
        max_size=12,
    ),
    st.sampled_from(["upsert", "track", "trigger"]),
)
async def test_only_retryable_errors_and_early_404s_are_retried(
    failures: list[str], kind: CallKind
) -> None:
    errors = {
        "429": lambda: RateLimited("429", retry_after=1.0),
        "5xx": server_error,
        "transport": lambda: TransportError("reset"),
        "404": lambda: ContactNotFound("no", status=404, endpoint="x"),
    }
    client = FakeClient([errors[f]() for f in failures])
    d, _, _ = deliverer(client)
    not_founds = 0
    stop = None
    for i, f in enumerate(failures):
        if f == "404":
            not_founds += 1
            if kind != "track" or not_founds > POLICY.not_found_retries:
                stop = i
                break
    if stop is None:
        assert await d.deliver(make_call(kind)) == OK
        assert client.sent == len(failures) + 1
    else:
        with pytest.raises(ContactNotFound):
            await d.deliver(make_call(kind))
        assert client.sent == stop + 1


async def test_on_attempt_reports_each_attempt() -> None:
    seen: list[Attempt] = []
    client = FakeClient([server_error(), OK])
    d, _, _ = deliverer(client, on_attempt=seen.append)
    await d.deliver(make_call())
    assert [a.number for a in seen] == [1, 2]
    assert isinstance(seen[0].error, ServerError)
    assert seen[1].result == OK


async def test_retry_log_masks_the_email(caplog: pytest.LogCaptureFixture) -> None:
    client = FakeClient([server_error(), OK])
    d, _, _ = deliverer(client)
    with caplog.at_level(logging.INFO, logger="bridge.meisa.retry"):
        await d.deliver(make_call(email="sarah@example.com"))
    text = caplog.text
    assert "retrying upsert" in text
    assert "sarah@example.com" not in text
    assert "s***@example.com" in text


class CountingRetrying(retry.AsyncRetrying):
    built = 0

    def __init__(self, **kw: Any) -> None:
        CountingRetrying.built += 1
        super().__init__(**kw)


async def test_only_a_failed_first_attempt_enters_tenacity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "AsyncRetrying", CountingRetrying)
    d, _, _ = deliverer(FakeClient([OK, OK, OK]))
    for _ in range(3):
        await d.deliver(make_call())
    assert CountingRetrying.built == 0, "no controller for a call that succeeds at once"
    d, _, _ = deliverer(FakeClient([RejectedCall("bad", status=400, endpoint="x")]))
    with pytest.raises(RejectedCall):
        await d.deliver(make_call())
    assert CountingRetrying.built == 0, "nor for one that is poison at once"
    d, _, sleep = deliverer(FakeClient([server_error(), server_error(), OK]))
    assert await d.deliver(make_call()) == OK
    assert (CountingRetrying.built, len(sleep.waits)) == (1, 2)


async def test_a_404_waits_as_the_one_contact_wait_says() -> None:
    not_found = [ContactNotFound("no contact", status=404, endpoint="track") for _ in range(3)]
    d, _, sleep = deliverer(FakeClient([*not_found, OK]))
    assert await d.deliver(make_call("track")) == OK
    wait = POLICY.contact_wait
    for n, slept in enumerate(sleep.waits, start=1):
        ceiling = min(wait.cap_seconds, wait.base_seconds * 2 ** (n - 1))
        assert ceiling / 2 <= slept <= ceiling
    assert len(sleep.waits) == 3


async def test_404s_count_toward_their_limit_across_other_retries() -> None:
    not_found = ContactNotFound("no contact", status=404, endpoint="track")
    script = [not_found, server_error(), not_found, server_error(), not_found, not_found]
    client = FakeClient([*script, OK])
    d, _, _ = deliverer(client)
    with pytest.raises(ContactNotFound) as caught:
        await d.deliver(make_call("track"))
    assert client.sent == 6, "the fourth 404 is one past not_found_retries (3)"
    assert caught.value.attempts == 6


@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=0, max_value=2**32))
def test_the_contact_wait_never_hammers_and_never_passes_its_cap(attempt: int, seed: int) -> None:
    wait = ContactWait(seconds=300.0)
    delay = wait.delay(attempt, random.Random(seed))
    ceiling = min(wait.cap_seconds, wait.base_seconds * 2 ** min(attempt - 1, 62))
    assert ceiling / 2 <= delay <= ceiling <= wait.cap_seconds


def test_the_contact_wait_is_over_by_time_or_by_count() -> None:
    by_time, by_count = ContactWait(seconds=300.0), ContactWait(attempts=3)
    assert not by_time.over(1_000, 299.9)
    assert by_time.over(1, 300.0)
    assert not by_count.over(3, 10_000.0)
    assert by_count.over(4, 0.0)
