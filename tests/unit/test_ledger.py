"""The sent-email ledger's index and its hook in the Deliverer, on an injected clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import AlreadySent, ServerError
from bridge.ledger import LedgerIndex, MemoryLedger, ledger_key
from bridge.meisa.calls import MeisaCall, contact_key
from bridge.meisa.delivery import Deliverer
from bridge.meisa.models import CallResult
from bridge.meisa.retry import RetryPolicy

DAY = 86_400.0
POLICY = RetryPolicy(
    base_seconds=0.5, cap_seconds=30.0, warn_after_attempts=10, not_found_retries=3
)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def trigger(key: str = "otp-1") -> MeisaCall:
    body = {"trigger_key": "verification_code", "to_email": "a@example.com", "idempotency_key": key}
    return MeisaCall(kind="trigger", body=body, contact_key=contact_key(body), rule="otp")


def index(clock: Clock, *, days: float = 7, max_keys: int = 1000) -> LedgerIndex:
    return LedgerIndex(retention_seconds=days * DAY, max_keys=max_keys, clock=clock)


def test_a_key_is_known_until_the_retention_has_passed() -> None:
    clock = Clock()
    idx = index(clock)
    idx.add("otp-1", clock.now)
    clock.now += 7 * DAY - 1
    assert "otp-1" in idx
    clock.now += 2
    assert "otp-1" not in idx


def test_records_older_than_the_retention_are_not_loaded() -> None:
    clock = Clock()
    idx = index(clock)
    idx.add("old", clock.now - 8 * DAY)
    assert "old" not in idx
    assert len(idx) == 0


def test_past_max_keys_the_oldest_key_is_forgotten_first() -> None:
    clock = Clock()
    idx = index(clock, max_keys=3)
    for n in range(5):
        idx.add(f"k{n}", clock.now + n)
    assert [f"k{n}" in idx for n in range(5)] == [False, False, True, True, True]
    assert idx.evicted_for_space == 2


@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=200, unique=True))
def test_every_added_key_is_found_and_no_other(keys: list[str]) -> None:
    clock = Clock()
    idx = index(clock, max_keys=len(keys))
    for key in keys:
        idx.add(key, clock.now)
    assert all(key in idx for key in keys)
    assert "never-added-\x00" not in idx


def test_only_triggers_have_a_ledger_key() -> None:
    body = {"email": "a@example.com", "event_name": "x"}
    assert ledger_key(trigger("k")) == "k"
    assert ledger_key(MeisaCall(kind="track", body=body, contact_key="a@example.com")) is None


class Client:
    def __init__(self, *outcomes: BaseException) -> None:
        self.outcomes = list(outcomes)
        self.sent = 0

    async def send(self, call: MeisaCall) -> CallResult:
        self.sent += 1
        if self.outcomes:
            raise self.outcomes.pop(0)
        return CallResult(200, {"status": "sent"})

    def requests_for(self, call: MeisaCall) -> int:
        return 1


class Governor:
    async def acquire(self, priority: int, tokens: int = 1) -> float:
        return 0.0

    def on_success(self) -> None:
        return None

    def on_rate_limited(self, retry_after: float | None) -> None:
        return None


async def _no_sleep(seconds: float) -> None:
    return None


def _deliverer(client: Client, ledger: MemoryLedger) -> Deliverer:
    return Deliverer(
        client, Governor(), POLICY, sleep=_no_sleep, rng=random.Random(1), ledger=ledger
    )


async def test_a_trigger_meisa_accepted_is_not_sent_again() -> None:
    clock = Clock()
    client, ledger = Client(), MemoryLedger(index(clock))
    deliverer = _deliverer(client, ledger)
    await deliverer.deliver(trigger())
    clock.now += 2 * 3600  # past Meisa's own one-hour idempotency window
    with pytest.raises(AlreadySent):
        await deliverer.deliver(trigger())
    assert client.sent == 1


async def test_a_trigger_is_recorded_only_once_meisa_accepted_it() -> None:
    client, ledger = Client(ServerError("503")), MemoryLedger(index(Clock()))
    deliverer = _deliverer(client, ledger)
    assert "otp-1" not in ledger.index
    await deliverer.deliver(trigger())
    assert client.sent == 2
    assert "otp-1" in ledger.index
