"""OffsetTracker: the committed offset never passes an unfinished one and never goes backwards."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.kafka.protocols import OffsetAndMetadata
from bridge.pipeline import finished
from bridge.pipeline.finished import decode
from bridge.pipeline.offsets import OffsetOrderError, OffsetTracker, PartitionOffsets

TP = ("t", 0)


def positions(tracker: OffsetTracker) -> dict[tuple[str, int], int]:
    return {tp: c.offset for tp, c in tracker.committable().items()}


def test_commit_is_first_unfinished_offset() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.track(TP, offset)
    tracker.done(TP, 11)
    assert positions(tracker) == {TP: 10}
    tracker.done(TP, 10)
    assert positions(tracker) == {TP: 12}
    tracker.done(TP, 12)
    assert tracker.committable() == {TP: OffsetAndMetadata(13)}


def test_gaps_in_offsets_commit_the_next_tracked_offset() -> None:
    tracker = OffsetTracker()
    for offset in (5, 9):  # 6..8 compacted away or transaction markers
        tracker.track(TP, offset)
    tracker.done(TP, 5)
    assert tracker.committable() == {TP: OffsetAndMetadata(9)}


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


def test_last_commits_are_ours_or_the_one_each_partition_was_assigned_with() -> None:
    """What a commit proving the broker is back offers: changing nothing in the group."""
    tracker = OffsetTracker()
    was = OffsetAndMetadata(5, finished.encode(5, [(7, 8)], 1000))
    tracker.assign([TP, ("t", 1), ("t", 2)], {TP: was, ("t", 1): OffsetAndMetadata(3)})
    assert tracker.last_commits() == {TP: was, ("t", 1): OffsetAndMetadata(3)}
    tracker.track(TP, 5)
    tracker.done(TP, 5)
    ours = tracker.committable()
    tracker.mark_committed(ours)
    assert tracker.last_commits()[TP] == ours[TP] != was
    tracker.forget([TP])
    assert set(tracker.last_commits()) == {("t", 1)}


def test_a_partition_never_committed_offers_its_first_message_read() -> None:
    """A new group: the probe commits the first offset read, before which nothing is ours;
    finished work past it is offered by the commit itself, not the probe."""
    tracker = OffsetTracker()
    tracker.assign([TP, ("t", 1)])
    assert tracker.last_commits() == {}
    tracker.track(TP, 40)
    tracker.track(TP, 41)
    tracker.done(TP, 41)
    assert tracker.last_commits() == {TP: OffsetAndMetadata(40)}
    tracker.done(TP, 40)
    tracker.mark_committed(tracker.committable())
    assert tracker.last_commits() == {TP: OffsetAndMetadata(42)}


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
        now = tracker.committable().get(TP)
        if now is None:
            continue
        unfinished = [o for o in tracked if o not in finished]
        assert all(now.offset <= o for o in unfinished), "passed an unfinished offset"
        assert now.offset >= committed, "went backwards"
        skipped = {
            o for first, last in decode(now.offset, now.metadata) for o in range(first, last + 1)
        }
        assert not skipped & set(unfinished), "metadata names an unfinished offset"
        if i in commit_points:
            tracker.mark_committed({TP: now})
            committed = now.offset
    if set(tracked) == finished and tracked:
        final = tracker.committable().get(TP)
        assert (committed if final is None else final.offset) == max(tracked) + 1


@given(
    gaps=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=300),
    finished=st.lists(st.booleans(), min_size=1, max_size=300),
)
def test_finished_runs_are_the_maximal_runs_of_finished_messages_in_tracking_order(
    gaps: list[int], finished: list[bool]
) -> None:
    tracker = OffsetTracker()
    offsets, offset = [], 0
    for gap in gaps:
        offset += gap
        offsets.append(offset)
        tracker.track(TP, offset)
    finished = (finished * (len(offsets) // len(finished) + 1))[: len(offsets)]
    for offset, is_done in zip(offsets, finished, strict=True):
        if is_done:
            tracker.done(TP, offset)
    # The reference: walk the tracked offsets past the first unfinished one.
    head = next((i for i, d in enumerate(finished) if not d), len(offsets))
    runs: list[tuple[int, int]] = []
    for offset, is_done in zip(offsets[head:], finished[head:], strict=True):
        if not is_done:
            continue
        before = offsets[offsets.index(offset) - 1]
        if runs and runs[-1][1] == before:
            runs[-1] = (runs[-1][0], offset)
        else:
            runs.append((offset, offset))
    now = tracker.committable()[TP]
    assert now.offset == (offsets[head] if head < len(offsets) else offsets[-1] + 1)
    assert decode(now.offset, now.metadata) == runs


Runs = list[tuple[int, int]]


def reference_runs(tracked: list[int], finished: set[int]) -> tuple[int | None, Runs]:
    """The head (first unfinished offset) and the maximal runs of finished offsets past it, in
    tracking order, computed from scratch."""
    head = next((i for i, o in enumerate(tracked) if o not in finished), len(tracked))
    runs: Runs = []
    for i in range(head + 1, len(tracked)):
        if tracked[i] not in finished:
            continue
        if runs and runs[-1][1] == tracked[i - 1]:
            runs[-1] = (runs[-1][0], tracked[i])
        else:
            runs.append((tracked[i], tracked[i]))
    return (tracked[head] if head < len(tracked) else None), runs


@given(seed=st.integers(min_value=0, max_value=2**32), n=st.integers(min_value=1, max_value=400))
def test_runs_kept_as_messages_finish_match_a_recount_at_every_step(seed: int, n: int) -> None:
    import random

    rng = random.Random(seed)
    tracker = OffsetTracker(metadata_max_bytes=10**9)
    tracked: list[int] = []
    finished: set[int] = set()
    offset = 0
    while len(tracked) < n or len(finished) < len(tracked):
        unfinished = [o for o in tracked if o not in finished]
        if len(tracked) < n and (not unfinished or rng.random() < 0.5):
            offset += rng.choice((1, 1, 1, 2, 5))
            tracker.track(TP, offset)
            tracked.append(offset)
        else:
            done = rng.choice(unfinished[:8] if rng.random() < 0.5 else unfinished)
            tracker.done(TP, done)
            finished.add(done)
        head, runs = reference_runs(tracked, finished)
        now = tracker.committable().get(TP)
        expected = head if head is not None else tracked[-1] + 1
        assert now is None or now.offset == expected
        if now is not None:
            assert decode(now.offset, now.metadata) == runs
            tracker.mark_committed({TP: now})
        assert tracker.last_done(TP) == (runs[-1][1] if runs else None)


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    n=st.integers(min_value=1, max_value=300),
    cap=st.integers(min_value=0, max_value=160),
)
def test_metadata_kept_as_runs_change_is_what_encoding_the_runs_anew_gives(
    seed: int, n: int, cap: int
) -> None:
    # Each run's text is kept as messages finish (new runs, runs growing either way, two runs
    # joining, the head taking the first run); a commit only joins them. It must read exactly as
    # the runs encoded from scratch, the cut to the size cap included.
    import random

    rng = random.Random(seed)
    state = PartitionOffsets()
    tracked: list[int] = []
    unfinished: list[int] = []
    offset = 0
    while len(tracked) < n or unfinished:
        if len(tracked) < n and (not unfinished or rng.random() < 0.5):
            offset += rng.choice((1, 1, 2, 40, 2000))  # gaps of one, two and three digits
            state.track(offset)
            tracked.append(offset)
            unfinished.append(offset)
        else:
            done = unfinished.pop(rng.randrange(min(len(unfinished), rng.choice((2, 8, 10**6)))))
            state.finish(done)
        now = state.commit(cap)
        pos = state.position()
        assert pos is not None
        assert now == OffsetAndMetadata(pos, finished.encode(pos, state.finished_runs(), cap))


def test_runs_hold_across_a_long_read_ahead_whose_finished_prefix_is_dropped() -> None:
    import random

    rng = random.Random(7)
    tracker = OffsetTracker(metadata_max_bytes=10**9)
    tracked = list(range(0, 30_000, 2))
    for offset in tracked:
        tracker.track(TP, offset)
    order = tracked[:]  # mostly in order, with stragglers held back
    held = set(rng.sample(tracked, 300))
    finished: set[int] = set()
    for step, offset in enumerate(o for o in order if o not in held):
        tracker.done(TP, offset)
        finished.add(offset)
        if step % 997 == 0:
            held_now = sorted(held)
            for o in held_now[: len(held_now) // 3]:
                tracker.done(TP, o)
                finished.add(o)
                held.discard(o)
            head, runs = reference_runs(tracked, finished)
            now = tracker.committable()[TP]
            assert (now.offset, decode(now.offset, now.metadata)) == (head, runs)
    for o in sorted(held):
        tracker.done(TP, o)
    assert tracker.committable()[TP].offset == tracked[-1] + 1


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


def test_finished_offsets_past_a_held_head_go_into_the_metadata() -> None:
    tracker = OffsetTracker()
    for offset in range(10):
        tracker.track(TP, offset)
    for offset in (1, 2, 3, 7):
        tracker.done(TP, offset)
    now = tracker.committable()[TP]
    assert now.offset == 0
    assert decode(0, now.metadata) == [(1, 3), (7, 7)]


def test_a_partition_is_committed_again_when_only_its_finished_offsets_change() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.track(TP, offset)
    tracker.done(TP, 2)
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == {}
    tracker.done(TP, 3)
    now = tracker.committable()[TP]
    assert (now.offset, decode(0, now.metadata)) == (0, [(2, 3)])


def test_runs_join_across_offsets_that_hold_no_message() -> None:
    tracker = OffsetTracker()
    for offset in (0, 4, 5, 9):  # 1..3 and 6..8: transaction markers or compacted away
        tracker.track(TP, offset)
    for offset in (4, 5, 9):
        tracker.done(TP, offset)
    assert decode(0, tracker.committable()[TP].metadata) == [(4, 9)]


def test_offsets_an_earlier_owner_finished_are_done_when_read_again() -> None:
    was = OffsetTracker()
    for offset in range(6):
        was.track(TP, offset)
    for offset in (2, 3, 5):
        was.done(TP, offset)
    committed = was.committable()
    tracker = OffsetTracker()
    tracker.assign([TP], committed)
    fresh = {offset: tracker.track(TP, offset) for offset in range(6)}
    assert fresh == {0: True, 1: True, 2: False, 3: False, 4: True, 5: False}
    assert tracker.in_flight(TP) == 3
    assert tracker.committable() == committed  # what the earlier owner committed, again
    tracker.done(TP, 0)
    tracker.done(TP, 1)
    now = tracker.committable()[TP]
    assert (now.offset, decode(4, now.metadata)) == (4, [(5, 5)])
    tracker.done(TP, 4)
    assert tracker.committable()[TP] == OffsetAndMetadata(6)


def test_carried_offsets_not_read_yet_stay_in_the_metadata() -> None:
    was = OffsetTracker()
    for offset in range(8):
        was.track(TP, offset)
    for offset in (1, 5, 6):
        was.done(TP, offset)
    tracker = OffsetTracker()
    tracker.assign([TP], was.committable())
    tracker.track(TP, 0)
    tracker.done(TP, 0)
    assert tracker.track(TP, 1) is False
    tracker.track(TP, 2)  # 3.. not read yet (paused): 5 and 6 must not be forgotten
    now = tracker.committable()[TP]
    assert (now.offset, decode(2, now.metadata)) == (2, [(5, 6)])


def test_metadata_of_another_committed_offset_is_ignored() -> None:
    tracker = OffsetTracker()
    tracker.assign([TP], {TP: OffsetAndMetadata(3, "mb1:0:1.4")})  # reset by a tool to 3
    assert [tracker.track(TP, offset) for offset in range(3, 6)] == [True, True, True]


def test_no_metadata_when_it_is_turned_off() -> None:
    tracker = OffsetTracker(metadata_max_bytes=0)
    for offset in range(3):
        tracker.track(TP, offset)
    tracker.done(TP, 2)
    assert tracker.committable() == {TP: OffsetAndMetadata(0)}


def test_partitions_are_offered_for_a_commit_once_a_message_finishes() -> None:
    other = ("t", 1)
    tracker = OffsetTracker()
    tracker.assign([TP, other])
    tracker.track(TP, 0)
    tracker.track(other, 0)
    assert tracker.take_changed() == set()
    tracker.done(TP, 0)
    assert tracker.take_changed() == {TP}
    assert tracker.take_changed() == set()
    tracker.mark_changed([TP, ("gone", 0)])  # a failed commit hands them back; unknown ones drop
    assert tracker.take_changed() == {TP}


async def test_a_failed_or_dropped_commit_is_offered_again() -> None:
    from bridge.errors import BrokerError
    from bridge.pipeline.commit import Committer

    other = ("t", 1)
    tracker = OffsetTracker()
    tracker.assign([TP, other])
    for tp in (TP, other):
        tracker.track(tp, 0)
        tracker.done(tp, 0)
    answers: list[object] = [BrokerError("coordinator moved"), {TP: OffsetAndMetadata(1)}]

    async def commit(offsets: object) -> dict[tuple[str, int], OffsetAndMetadata]:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]

    committer = Committer(tracker, commit)
    assert await committer.commit() == {}
    assert await committer.commit() == {TP: OffsetAndMetadata(1)}  # `other` was dropped
    assert tracker.take_changed() == {other}


async def test_finished_work_waiting_on_failing_commits_counts_as_stalled_until_one_succeeds() -> (
    None
):
    from bridge.errors import BrokerError
    from bridge.pipeline.commit import Committer

    now = [0.0]
    tracker = OffsetTracker()
    tracker.assign([TP])
    tracker.track(TP, 0)
    tracker.done(TP, 0)
    broker_up = [False]

    async def commit(offsets: object) -> None:
        if not broker_up[0]:
            raise BrokerError("Local: Waiting for coordinator")

    committer = Committer(tracker, commit, clock=lambda: now[0])
    assert committer.stalled_for() == 0.0
    assert not committer.refused
    await committer.commit()
    assert committer.refused  # at once: the fence need not wait a second to hold new calls
    now[0] = 4.0
    await committer.commit()
    assert committer.stalled_for() == 4.0
    broker_up[0] = True
    assert await committer.commit() == {TP: OffsetAndMetadata(1)}
    assert committer.stalled_for() == 0.0
    assert not committer.refused


async def test_a_commit_counts_as_stalled_past_four_deviations_of_its_usual_round_trip() -> None:
    from bridge.pipeline.commit import STALL_MAX_SECONDS, STALL_MIN_SECONDS, Committer

    now = [0.0]
    took = [0.01]
    gate = asyncio.Event()

    async def commit(offsets: object) -> None:
        if took[0] is None:
            await gate.wait()  # hangs until the test lets it through
        else:
            now[0] += took[0]

    tracker = OffsetTracker()
    committer = Committer(tracker, commit, clock=lambda: now[0])
    assert committer.stall_limit() == STALL_MAX_SECONDS  # nothing measured yet
    for offset in range(20):  # commits of 10 ms each
        tracker.track(TP, offset)
        tracker.done(TP, offset)
        await committer.commit()
    assert committer.stall_limit() == STALL_MIN_SECONDS  # 10 ms and no deviation: the floor
    for offset in range(20, 40):  # under load: 10 ms and 190 ms in turn
        took[0] = 0.01 if offset % 2 else 0.19
        tracker.track(TP, offset)
        tracker.done(TP, offset)
        await committer.commit()
    assert committer.stall_limit() == STALL_MAX_SECONDS  # the ceiling
    tracker.track(TP, 40)
    tracker.done(TP, 40)
    took[0] = None
    hung = asyncio.create_task(committer.commit())
    await asyncio.sleep(0)
    now[0] += STALL_MAX_SECONDS - 0.01
    assert not committer.stalled()
    now[0] += 0.02
    assert committer.stalled()
    gate.set()
    await hung
    assert not committer.stalled()


@pytest.mark.parametrize(
    ("unreachable", "deadline", "tries", "committed"),
    [
        (True, 10.0, 3, True),  # a broker restart under a SIGTERM: committed once it is back
        (True, 1.5, 2, False),  # the shutdown grace runs out first
        (False, 10.0, 1, False),  # the broker answered no (a new generation): no retry
    ],
)
async def test_the_final_commit_retries_only_while_the_broker_is_out_of_reach(
    monkeypatch: pytest.MonkeyPatch, unreachable: bool, deadline: float, tries: int, committed: bool
) -> None:
    from bridge.errors import BrokerError
    from bridge.pipeline import commit as commit_module

    monkeypatch.setattr(commit_module, "FINAL_RETRY_SECONDS", 0.0)
    now = [0.0]
    calls = [0]
    tracker = OffsetTracker()
    tracker.assign([TP])
    tracker.track(TP, 0)
    tracker.done(TP, 0)

    async def commit(offsets: object) -> None:
        calls[0] += 1
        now[0] += 1.0  # each try takes a second
        if calls[0] < 3:
            raise BrokerError("Local: Broker transport failure", unreachable=unreachable)

    committer = commit_module.Committer(tracker, commit, clock=lambda: now[0])
    done = await committer.commit_final(committer.deadline(deadline))
    assert calls[0] == tries
    assert (done == {TP: OffsetAndMetadata(1)}) is committed


def test_on_waiting_is_called_when_finished_work_starts_to_wait_for_a_commit() -> None:
    calls: list[str] = []
    tracker = OffsetTracker()
    tracker.on_waiting = lambda: calls.append("waiting")
    for offset in range(4):
        tracker.track(TP, offset)
    assert calls == [], "work in flight waits for nothing yet"
    tracker.done(TP, 0)
    tracker.done(TP, 1)
    tracker.done(("t", 1), 0)  # unknown partition: nothing waits
    assert calls == ["waiting"], "once, however much finishes before the commit takes it"
    assert tracker.take_changed() == {TP}
    tracker.done(TP, 2)
    assert calls == ["waiting"] * 2
    tracker.take_changed()
    tracker.mark_changed([("gone", 0)])
    assert calls == ["waiting"] * 2, "a partition no longer held brings no commit"
    tracker.mark_changed([TP])  # a failed commit hands it back
    assert calls == ["waiting"] * 3
    tracker.take_changed()
    finished_before = OffsetTracker()
    finished_before.on_waiting = lambda: calls.append("carried over")
    finished_before.assign([TP], {TP: OffsetAndMetadata(5, finished.encode(5, [(6, 6)], 4096))})
    assert not finished_before.track(TP, 6)
    assert calls[-1] == "carried over", "an offset an earlier owner finished waits for a commit"
