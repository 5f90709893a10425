"""Lag, pace and time-to-catch-up arithmetic of `meisa-bridge status` (bridge.status.model)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.kafka.protocols import GroupMember, GroupState
from bridge.status.model import Budget, Sample, eta, lag_of, pace_between, partition_lags

offsets = st.integers(min_value=0, max_value=10**12)


def test_lag_counts_from_the_committed_offset_to_the_end() -> None:
    assert lag_of(start=0, end=100, committed=40) == 60


def test_a_partition_without_a_commit_lags_by_everything_the_reset_policy_reads() -> None:
    assert lag_of(start=10, end=100, committed=None) == 90
    assert lag_of(start=10, end=100, committed=None, reset="latest") == 0


def test_a_commit_below_the_start_counts_from_the_start() -> None:
    # retention deleted what was committed: the consumer resets to the start
    assert lag_of(start=50, end=100, committed=20) == 50


@given(offsets, offsets, st.one_of(st.none(), offsets))
def test_lag_is_never_negative_nor_more_than_the_partition_holds(
    a: int, b: int, committed: int | None
) -> None:
    start, end = min(a, b), max(a, b)
    assert 0 <= lag_of(start, end, committed) <= end - start


def test_partition_lags_name_the_member_that_owns_each_partition() -> None:
    group = GroupState(
        "g", "consumer", "stable", "range", (GroupMember("m1", "c", "h", (("t", 1),)),)
    )
    rows = partition_lags({("t", 0): (0, 5), ("t", 1): (0, 9)}, {("t", 1): 4}, group)
    assert [(r.partition, r.committed, r.lag, r.owner) for r in rows] == [
        (0, None, 5, None),
        (1, 4, 5, "m1"),
    ]


def test_pace_is_committed_progress_per_second_and_the_eta_nets_out_arrivals() -> None:
    tp0, tp1 = ("t", 0), ("t", 1)
    first = Sample(10.0, {tp0: 100, tp1: 50}, {tp0: 1000, tp1: 500})
    second = Sample(15.0, {tp0: 150, tp1: 100}, {tp0: 1010, tp1: 515})
    pace = pace_between(first, second, lag=1275)
    assert pace.seconds == 5.0
    assert pace.committed_per_second == 20.0  # 100 messages in 5 s
    assert pace.arriving_per_second == 5.0  # 25 new messages in 5 s
    assert pace.eta_seconds == pytest.approx(1275 / 15)


def test_a_first_commit_between_the_samples_does_not_count_as_progress() -> None:
    first = Sample(0.0, {}, {("t", 0): 10})
    second = Sample(2.0, {("t", 0): 10}, {("t", 0): 10})
    assert pace_between(first, second, lag=0).committed_per_second == 0.0


def test_eta_is_none_when_the_lag_does_not_shrink_and_zero_without_lag() -> None:
    assert eta(100, 0.0) is None
    assert eta(100, -3.0) is None
    assert eta(0, 0.0) == 0.0
    assert eta(100, 4.0) == 25.0


def test_the_budget_eta_uses_the_tighter_of_the_keys_minute_and_hour_limits() -> None:
    # 60/min would be 1/s, but 1000/h is 0.28/s over a long backlog
    budget = Budget(key_per_minute=60, key_per_hour=1000, requests_per_event=2.0)
    assert budget.key_requests_per_second() == pytest.approx(1000 / 3600)
    assert budget.eta_at_budget(100) == pytest.approx(100 * 2.0 / (1000 / 3600))


def test_the_budget_eta_is_unknown_without_limits_or_a_request_ratio() -> None:
    assert Budget(requests_per_event=1.0).eta_at_budget(10) is None
    assert Budget(key_per_minute=60).eta_at_budget(10) is None
    assert Budget(key_per_minute=60, requests_per_event=0.0).eta_at_budget(10) == 0.0
