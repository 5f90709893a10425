"""Sandbox config loading, sliding-window rate limits and seeded faults, with an injected clock."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from bridge.errors import ConfigError
from bridge.sandbox.auth import KeyRing, KeyState, check_scope
from bridge.sandbox.config import DEMO_KEY, SCOPES, UNLIMITED_KEY, KeySpec, load_sandbox_config
from bridge.sandbox.faults import Faults
from bridge.sandbox.model import ApiError, Clock


class FakeClock(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def mono(self) -> float:
        return self.t


def test_default_config_has_demo_and_unlimited_keys() -> None:
    config = load_sandbox_config(None)
    keys = {k.key: k for k in config.keys}
    assert keys[DEMO_KEY].scopes == frozenset(SCOPES)
    assert (keys[DEMO_KEY].per_minute, keys[DEMO_KEY].per_hour) == (60, 1000)
    assert (keys[UNLIMITED_KEY].per_minute, keys[UNLIMITED_KEY].per_hour) == (None, None)
    assert DEMO_KEY not in repr(keys[DEMO_KEY])


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"keys": [{"key": "meisa_live_x", "environment": "test"}]}, "keys.key"),
        ({"keys": [{"key": "meisa_test_x", "scopes": ["contacts:delete"]}]}, "keys.scopes"),
        ({"keys": [{"key": "meisa_test_x", "rate_limit_per_minute": 0}]}, "rate_limit_per_minute"),
        ({"triggers": [{"key": "t", "conditions": [{"field": "x"}]}]}, "conditions"),
        ({"sequences": [{"slug": "s", "status": "running"}]}, "sequences"),
        ({"contacts": [{"status": "active"}]}, "contacts.email"),
        ({"automations": [{"name": "a", "when": {"type": "nope"}}]}, "when.type"),
        (
            {
                "automations": [
                    {
                        "name": "a",
                        "when": {"type": "contact_created"},
                        "actions": [{"set_field": "x"}],
                    }
                ]
            },
            "set_field",
        ),
    ],
)
def test_bad_config_names_the_problem(config: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_sandbox_config(config)


def _ring(clock: Clock, per_minute: int | None, per_hour: int | None) -> KeyRing:
    spec = KeySpec(
        key="meisa_test_k",
        name="k",
        environment="test",
        scopes=frozenset({"contacts:read"}),
        per_minute=per_minute,
        per_hour=per_hour,
    )
    return KeyRing((spec,), clock)


def test_sliding_window_refuses_then_admits_as_hits_age_out() -> None:
    clock = FakeClock()
    ring = _ring(clock, 2, None)
    state = ring.authenticate("meisa_test_k")
    ring.admit(state)
    clock.t += 20
    ring.admit(state)
    clock.t += 10
    with pytest.raises(ApiError) as info:
        ring.admit(state)
    assert info.value.status == 429
    assert info.value.body["retry_after"] == 30  # the first hit leaves the window at +60
    clock.t += 30
    ring.admit(state)  # refused requests did not count
    with pytest.raises(ApiError):
        ring.admit(state)


def _statuses(ring: KeyRing, state: KeyState, requests: int) -> Counter[int]:
    """The status of each of `requests` back-to-back requests: 200 admitted, else the refusal."""
    out: Counter[int] = Counter()
    for _ in range(requests):
        try:
            ring.admit(state)
        except ApiError as exc:
            out[exc.status] += 1
        else:
            out[200] += 1
    return out


def test_unlimited_key_is_never_refused() -> None:
    ring = _ring(FakeClock(), None, None)
    assert _statuses(ring, ring.authenticate("meisa_test_k"), 10_000) == {200: 10_000}
    limited = _ring(FakeClock(), 60, 1000)
    assert _statuses(limited, limited.authenticate("meisa_test_k"), 10_000) == {
        200: 60,
        429: 9_940,
    }


def test_auth_errors() -> None:
    ring = _ring(FakeClock(), 1, 1)
    with pytest.raises(ApiError, match="missing"):
        ring.authenticate(None)
    with pytest.raises(ApiError, match="invalid"):
        ring.authenticate("meisa_test_other")
    with pytest.raises(ApiError) as info:
        check_scope(ring.authenticate("meisa_test_k"), "contacts:write")
    assert (info.value.status, info.value.body["scope"]) == (403, "contacts:write")


def test_fault_rolls_repeat_for_a_seed() -> None:
    def rolls(seed: int) -> list[bool]:
        faults = Faults(FakeClock(), endpoints=("ping",))
        faults.add({"endpoint": "ping", "status": 503, "rate": 0.5, "seed": seed})
        return [faults.pick("ping", "/api/v1/ping/") is not None for _ in range(50)]

    assert rolls(3) == rolls(3)
    assert rolls(3) != rolls(4)
    assert 10 < sum(rolls(3)) < 40
