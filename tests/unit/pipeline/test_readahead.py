"""Read-ahead accounting: the bytes each partition holds, and which partitions pause."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.events import Record
from bridge.pipeline.offsets import OffsetTracker
from bridge.pipeline.readahead import RESUME_AT, ReadAhead

A, B, C = ("big", 0), ("big", 1), ("otp", 0)
MIB = 1024 * 1024


def test_a_record_counts_its_key_value_and_headers() -> None:
    record = Record("t", 0, 7, b"key", b"value!", (("h", b"12"), ("empty", None)))
    assert record.size == 3 + 6 + 1 + 2 + 5


def test_the_tracker_holds_the_bytes_of_unfinished_messages_only() -> None:
    tracker = OffsetTracker()
    tracker.assign([A, C])
    for offset, size in ((0, 100), (1, 200), (2, 300)):
        tracker.track(A, offset, size)
    tracker.done(A, 1)
    assert tracker.held() == {A: (400, 2), C: (0, 0)}
    tracker.done(A, 0)
    tracker.done(A, 2)
    tracker.done(A, 2)  # twice: counted once
    assert tracker.held() == {A: (0, 0), C: (0, 0)}


def test_a_backlog_past_the_bound_pauses_while_a_quiet_partition_reads_on() -> None:
    policy = ReadAhead(bound=8 * MIB, max_messages=1_000_000)
    held = {A: (7 * MIB, 5000), C: (1000, 1)}
    assert policy.decide(held, set()) == ([A], [])
    assert policy.decide(held, {A}) == ([], [])  # still over: stays paused


def test_a_partition_within_its_reserve_is_never_paused_for_bytes() -> None:
    policy = ReadAhead(bound=8 * MIB, max_messages=1_000_000)
    reserve = 8 * MIB // (2 * 3)
    held = {A: (5 * MIB, 1), B: (4 * MIB, 1), C: (reserve, 1)}
    pause, _ = policy.decide(held, set())
    assert sorted(pause) == [A, B]


def test_a_paused_partition_resumes_once_a_quarter_of_the_bound_is_free() -> None:
    policy = ReadAhead(bound=8 * MIB, max_messages=1_000_000)
    reserve = 8 * MIB // 4
    assert policy.decide({A: (7 * MIB, 9), C: (0, 0)}, {A}) == ([], [])
    free = int(8 * MIB * RESUME_AT) - reserve
    assert policy.decide({A: (free, 9), C: (0, 0)}, {A}) == ([], [A])


def test_the_message_cap_pauses_a_partition_and_resumes_it_at_half() -> None:
    policy = ReadAhead(bound=1024 * MIB, max_messages=100)
    assert policy.decide({A: (1000, 100)}, set()) == ([A], [])
    assert policy.decide({A: (1000, 51)}, {A}) == ([], [])
    assert policy.decide({A: (1000, 50)}, {A}) == ([], [A])


@given(
    sizes=st.lists(st.integers(0, 4 * MIB), min_size=1, max_size=8),
    bound=st.integers(1 * MIB, 16 * MIB),
)
def test_a_partition_read_on_never_takes_the_total_past_the_bound_by_more_than_it_adds(
    sizes: list[int], bound: int
) -> None:
    """After the decision, a partition left reading either holds no more than its reserve
    (the reserves together are half the bound) or the bytes held, reserves counted full, are
    under the bound: a next fetch can only add to what is under the bound."""
    held = {("t", n): (size, 1) for n, size in enumerate(sizes)}
    policy = ReadAhead(bound=bound, max_messages=10**9)
    pause, resume = policy.decide(held, set())
    assert resume == []
    reserve = bound // (2 * len(held))
    used = sum(max(size, reserve) for size, _ in held.values())
    for tp, (size, _) in held.items():
        if tp not in pause:
            assert size <= reserve or used < bound
