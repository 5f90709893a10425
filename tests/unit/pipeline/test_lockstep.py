"""Event-time lockstep: partitions are merged by event time; nobody waits forever."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.pipeline.lockstep import Lockstep

A, B, C = ("users", 0), ("product", 0), ("auth", 0)


def test_buffered_partitions_are_merged_by_event_time() -> None:
    ls: Lockstep[str] = Lockstep()
    ls.assign([A, B], now=0.0)
    for t, name in [(1.0, "a1"), (5.0, "a5")]:
        ls.push(A, t, name)
    for t, name in [(2.0, "b2"), (3.0, "b3")]:
        ls.push(B, t, name)
    ls.at_end(A)
    ls.at_end(B)
    assert ls.admit(now=0.0) == ["a1", "b2", "b3", "a5"]


def test_a_partition_that_is_still_being_read_holds_newer_events_back() -> None:
    ls: Lockstep[str] = Lockstep(max_idle=2.0)
    ls.assign([A, B], now=0.0)
    ls.push(A, 10.0, "a10")
    assert ls.admit(now=0.5) == []  # B has not answered its first fetch yet
    assert ls.held_back == 1
    ls.push(B, 4.0, "b4")
    assert ls.admit(now=0.6) == ["b4"]  # B is empty again after b4: A's a10 waits for B
    ls.at_end(B)
    assert ls.admit(now=0.7) == ["a10"]


def test_an_idle_partition_is_not_waited_for_past_max_idle() -> None:
    ls: Lockstep[str] = Lockstep(max_idle=2.0)
    ls.assign([A, B], now=0.0)
    ls.push(A, 10.0, "a10")
    assert ls.admit(now=1.9) == []
    assert ls.admit(now=2.0) == ["a10"]


def test_a_paused_empty_partition_is_waited_for_however_long() -> None:
    ls: Lockstep[str] = Lockstep(max_idle=2.0)
    ls.assign([A, B], now=0.0)
    ls.push(B, 1.0, "b1")
    ls.set_paused(B, True)
    ls.at_end(A)
    assert ls.admit(now=0.0) == ["b1"]
    ls.push(A, 9.0, "a9")
    assert ls.admit(now=100.0) == []  # B is behind (backpressure), not idle
    ls.set_paused(B, False)
    assert ls.admit(now=200.0) == ["a9"]  # resumed and then idle for long enough


def test_skew_lets_a_partition_run_ahead_of_an_empty_one_by_that_much() -> None:
    ls: Lockstep[str] = Lockstep(max_skew=5.0, max_idle=60.0)
    ls.assign([A, B], now=0.0)
    ls.push(B, 10.0, "b10")
    ls.at_end(A)
    assert ls.admit(now=0.0) == ["b10"]
    ls.push(A, 14.0, "a14")
    ls.push(A, 16.0, "a16")
    assert ls.admit(now=1.0) == ["a14"]


def test_removed_partitions_return_their_buffer_and_stop_holding_others_back() -> None:
    ls: Lockstep[str] = Lockstep(max_idle=60.0)
    ls.assign([A, B], now=0.0)
    ls.push(A, 3.0, "a3")
    ls.push(B, 1.0, "b1")
    ls.push(B, 2.0, "b2")
    assert ls.admit(now=0.0) == ["b1", "b2"]  # A's a3 waits for B, which may have more
    assert ls.remove([B]) == []
    assert ls.admit(now=0.0) == ["a3"]
    assert ls.buffered() == 0


@given(
    st.lists(st.tuples(st.sampled_from([A, B, C]), st.integers(0, 1000)), min_size=1, max_size=60),
    st.integers(1, 10),
)
def test_admission_never_overtakes_an_older_buffered_event(
    pushes: list[tuple[tuple[str, int], int]], rounds: int
) -> None:
    ls: Lockstep[int] = Lockstep(max_idle=1e9)
    ls.assign([A, B, C], now=0.0)
    per_tp: dict[tuple[str, int], list[int]] = {A: [], B: [], C: []}
    admitted: list[int] = []
    chunk = max(1, len(pushes) // rounds)
    for start in range(0, len(pushes), chunk):
        for tp, raw in pushes[start : start + chunk]:
            last = per_tp[tp][-1] if per_tp[tp] else 0
            t = max(raw, last)  # a partition's event times do not go backwards in this check
            per_tp[tp].append(t)
            ls.push(tp, float(t), t)
        admitted.extend(ls.admit(now=0.0))
    for tp in (A, B, C):
        ls.at_end(tp)
    admitted.extend(ls.admit(now=0.0))
    assert admitted == sorted(admitted)  # every partition was waited for: a total time order
    assert sorted(admitted) == sorted(t for ts in per_tp.values() for t in ts)


def test_a_partition_with_data_on_its_way_is_waited_for_past_max_idle() -> None:
    ls: Lockstep[str] = Lockstep(max_idle=2.0)
    ls.assign([A, B], now=0.0)
    ls.push(A, 10.0, "a10")
    ls.set_lag(B, 500)  # B's position is 500 below its high watermark
    assert ls.admit(now=10.0) == []
    ls.set_lag(B, 0)  # caught up: nothing more to wait for
    assert ls.admit(now=10.0) == ["a10"]


def test_data_on_its_way_is_not_waited_for_forever() -> None:
    ls: Lockstep[str] = Lockstep(max_idle=2.0)
    ls.assign([A, B], now=0.0)
    ls.push(A, 10.0, "a10")
    ls.set_lag(B, 1)  # e.g. an open transaction past the last stable offset
    assert ls.admit(now=23.9) == []
    assert ls.admit(now=24.0) == ["a10"]


def test_a_paused_partition_is_not_waited_for_when_the_caller_says_its_work_waits_on_others() -> (
    None
):
    ls: Lockstep[str] = Lockstep(max_idle=2.0)
    ls.assign([A, B], now=0.0)
    ls.push(B, 1.0, "b1")
    ls.at_end(A)
    assert ls.admit(now=0.0) == ["b1"]
    ls.set_paused(B, True)  # B's calls are stuck (parked on contacts A has not created yet)
    ls.push(A, 9.0, "a9")
    assert ls.blocked_by_paused()
    assert ls.admit(now=10.0) == []
    assert ls.admit(now=10.0, ignore_paused=True) == ["a9"]


def test_a_co_partition_still_on_its_way_is_waited_for_at_most_max_idle() -> None:
    ls: Lockstep[str] = Lockstep(max_idle=2.0)
    ls.assign([B], now=0.0)  # product/0 came first in an incremental rebalance ...
    ls.expect([A], now=0.0)  # ... users/0 should follow
    ls.push(B, 9.0, "b9")
    assert ls.admit(now=1.0) == []
    ls.assign([A], now=1.5)
    ls.push(A, 3.0, "a3")
    ls.at_end(A)
    assert ls.admit(now=1.6) == ["a3", "b9"]


def test_an_expected_partition_that_never_comes_stops_holding_others() -> None:
    ls: Lockstep[str] = Lockstep(max_idle=2.0)
    ls.assign([B], now=0.0)
    ls.at_end(B)
    ls.expect([A], now=0.0)
    ls.push(B, 9.0, "b9")
    assert ls.admit(now=1.0) == []
    assert ls.admit(now=2.0) == ["b9"]


def test_a_message_that_needs_no_admission_moves_its_partition_on_in_time() -> None:
    ls: Lockstep[str] = Lockstep(max_idle=60.0)
    ls.assign([A, B], now=0.0)
    ls.push(A, 10.0, "a10")
    ls.advance(B, 5.0)  # B read an event no rule maps, of 00:05: it may still bring 00:07
    assert ls.admit(now=1.0) == []
    ls.advance(B, 20.0)
    assert ls.admit(now=1.0) == ["a10"]
    ls.advance(B, 3.0)  # an older one later does not move B back
    ls.push(A, 15.0, "a15")
    assert ls.admit(now=1.0) == ["a15"]
