"""OffsetTracker: the committed offset never passes an unfinished one and never goes backwards."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.pipeline.offsets import OffsetOrderError, OffsetTracker

TP = ("t", 0)


def test_commit_is_first_unfinished_offset() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.track(TP, offset)
    tracker.done(TP, 11)
    assert tracker.committable() == {TP: 10}
    tracker.done(TP, 10)
    assert tracker.committable() == {TP: 12}
    tracker.done(TP, 12)
    assert tracker.committable() == {TP: 13}


def test_gaps_in_offsets_commit_the_next_tracked_offset() -> None:
    tracker = OffsetTracker()
    for offset in (5, 9):  # 6..8 compacted away or transaction markers
        tracker.track(TP, offset)
    tracker.done(TP, 5)
    assert tracker.committable() == {TP: 9}


def test_refuses_offsets_that_go_backwards() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 7)
    with pytest.raises(OffsetOrderError):
        tracker.track(TP, 7)
    with pytest.raises(OffsetOrderError):
        tracker.track(TP, 3)


def test_committed_position_is_not_offered_again() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 0)
    tracker.done(TP, 0)
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == {}
    tracker.track(TP, 1)
    assert tracker.committable() == {}


def test_forgotten_partition_ignores_late_done_and_starts_fresh() -> None:
    tracker = OffsetTracker()
    tracker.track(TP, 4)
    tracker.forget([TP])
    tracker.done(TP, 4)
    assert tracker.committable() == {}
    tracker.assign([TP])
    tracker.track(TP, 2)  # a new owner may start lower: state was forgotten
    assert tracker.in_flight(TP) == 1


def test_in_flight_counts_unfinished_messages() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.track(TP, offset)
    tracker.done(TP, 3)
    assert tracker.in_flight() == 4


@given(
    n=st.integers(min_value=1, max_value=60),
    order=st.randoms(use_true_random=False),
    commit_points=st.lists(st.integers(min_value=0, max_value=120), max_size=10),
    steps=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=200),
)
def test_committed_offset_never_passes_unfinished_or_goes_back(
    n: int, order: object, commit_points: list[int], steps: list[int]
) -> None:
    import random

    assert isinstance(order, random.Random)
    offsets = sorted(order.sample(range(n * 3), n))
    finish_order = offsets[:]
    order.shuffle(finish_order)
    tracker = OffsetTracker()
    tracked: list[int] = []
    finished: set[int] = set()
    committed = -1
    ti = fi = 0
    for i, step in enumerate(steps * 3):
        if i % 2 == 0 and ti < len(offsets):
            for offset in offsets[ti : ti + step]:
                tracker.track(TP, offset)
                tracked.append(offset)
            ti += step
        elif fi < len(finish_order) and finish_order[fi] in tracked:
            tracker.done(TP, finish_order[fi])
            finished.add(finish_order[fi])
            fi += 1
        pos = tracker.committable().get(TP)
        if pos is None:
            continue
        unfinished = [o for o in tracked if o not in finished]
        assert all(pos <= o for o in unfinished), "passed an unfinished offset"
        assert pos > committed, "went backwards or repeated"
        if i in commit_points:
            tracker.mark_committed({TP: pos})
            committed = pos
    if set(tracked) == finished and tracked:
        assert tracker.committable().get(TP, committed) == max(tracked) + 1


def test_last_done_names_the_highest_finished_offset_past_a_gap() -> None:
    t = OffsetTracker()
    tp = ("t", 0)
    for offset in range(5):
        t.track(tp, offset)
    assert t.last_done(tp) is None
    t.done(tp, 0)
    assert t.last_done(tp) is None  # the finished prefix is no gap
    t.done(tp, 3)
    t.done(tp, 2)
    assert t.last_done(tp) == 3
    t.done(tp, 1)
    assert t.last_done(tp) is None
    assert t.last_done(("t", 9)) is None
