"""InFlightLimit (bridge.pipeline.inflight): the calls on the wire follow Meisa's answer times."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.pipeline.inflight import MINIMUM, PROBE_ANSWERS, InFlightLimit


def _settle(limit: InFlightLimit, parallel: int, windows: int = 2000, seed: int = 1) -> list[int]:
    """Drive `limit` against a server that answers `parallel` calls at once in 5 ms (more queue
    in front of it), with 20% noise; the limit after each of `windows` windows."""
    rng = random.Random(seed)
    seen = []
    for _ in range(windows):
        value = limit.value
        for _ in range(value):
            limit.sample(0.005 * max(1.0, value / parallel) * rng.uniform(0.8, 1.2))
        seen.append(limit.value)
    return seen


def test_a_fixed_limit_ignores_answer_times() -> None:
    limit = InFlightLimit(64, adaptive=False)
    assert _settle(limit, parallel=1, windows=50)[-1] == 64


def test_it_starts_at_the_minimum() -> None:
    assert InFlightLimit(64).value == MINIMUM
    assert InFlightLimit(2).value == 2  # never above the maximum


def test_a_server_that_queues_gets_a_few_calls_beyond_what_it_serves_at_once() -> None:
    for parallel in (1, 10, 30):
        tail = _settle(InFlightLimit(64), parallel)[500:]
        mean = sum(tail) / len(tail)
        assert parallel <= mean <= parallel + 12, (parallel, mean)


def test_a_server_that_does_not_queue_gets_the_maximum() -> None:
    seen = _settle(InFlightLimit(64), parallel=10_000, windows=300)
    assert seen[30] == 64  # there within a few dozen round trips
    assert sum(seen[100:]) / len(seen[100:]) > 56  # the probes halve it now and then


def test_answers_slowing_down_bring_the_limit_down() -> None:
    limit = InFlightLimit(64)
    _settle(limit, parallel=10_000, windows=50)
    assert limit.value == 64
    _settle(limit, parallel=4, windows=PROBE_ANSWERS // 8)
    assert limit.value <= 4 + 12


@settings(max_examples=200, deadline=None)
@given(
    maximum=st.integers(1, 300),
    minimum=st.integers(1, 20),
    answers=st.lists(st.floats(0.0, 10.0, allow_nan=False), max_size=400),
)
def test_the_limit_stays_between_its_bounds(
    maximum: int, minimum: int, answers: list[float]
) -> None:
    limit = InFlightLimit(maximum, minimum=minimum)
    for seconds in answers:
        limit.sample(seconds)
        assert min(minimum, maximum) <= limit.value <= maximum


def test_every_new_value_is_told_the_first_one_included() -> None:
    told: list[int] = []
    limit = InFlightLimit(64, on_change=told.append)
    assert told == [MINIMUM]
    _settle(limit, parallel=10_000, windows=40)
    assert told[-1] == limit.value == 64
    assert all(a != b for a, b in itertools.pairwise(told))  # changes only
