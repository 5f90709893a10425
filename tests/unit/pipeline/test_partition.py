"""One object per assigned partition: assign, pause, revoke, lose and release keep the offset
tracker's and the lockstep's entries in step with it."""

from __future__ import annotations

from bridge.events import Record
from bridge.kafka.protocols import OffsetAndMetadata
from bridge.pipeline.lockstep import Lockstep
from bridge.pipeline.message import InFlight, MessageState
from bridge.pipeline.offsets import OffsetTracker
from bridge.pipeline.partition import Buffered, Partitions, PartitionState

TP = ("users", 0)


def setup() -> tuple[Partitions, OffsetTracker, Lockstep[Buffered]]:
    tracker = OffsetTracker()
    lockstep: Lockstep[Buffered] = Lockstep(max_idle=5.0)
    return Partitions(tracker, lockstep), tracker, lockstep


def live(parts: Partitions, tracker: OffsetTracker, offset: int) -> InFlight:
    message = InFlight(Record(*TP, offset, b"k", b"v"))
    tracker.track(TP, offset, 10)
    part = parts.reading(TP)
    assert part is not None
    part.add(message)
    return message


def test_assign_creates_a_reading_partition_with_its_tracker_entry() -> None:
    parts, tracker, _ = setup()
    parts.assign([TP], {TP: OffsetAndMetadata(5, "")}, now=0.0)
    part = parts.reading(TP)
    assert part is not None
    assert part.state is PartitionState.READING
    assert parts.assigned() == [TP]
    tracker.track(TP, 5, 100)
    assert part.offsets.bytes == 100  # the tracker's entry is the partition's
    assert tracker.committable()[TP].offset == 5


def test_pausing_marks_the_partition_and_its_lockstep_input() -> None:
    parts, _, lockstep = setup()
    parts.assign([TP], {}, now=0.0)
    parts.set_paused([TP], True)
    assert parts.paused() == {TP}
    assert lockstep.blocked_by_paused()  # a paused, empty input holds admission back
    parts.set_paused([TP], False)
    assert parts.paused() == set()
    assert not lockstep.blocked_by_paused()


def test_a_revoke_stops_messages_past_the_started_ones_and_cancels_buffered_ones() -> None:
    parts, tracker, lockstep = setup()
    parts.assign([TP], {}, now=0.0)
    first, second, third = (live(parts, tracker, n) for n in range(3))
    first.start()
    buffered = InFlight(Record(*TP, 3, b"k", b"v"))
    lockstep.push(TP, 1.0, (buffered, []))
    parts.revoke([TP])
    assert parts.reading(TP) is None
    assert parts.assigned() == []
    assert first.state is MessageState.STARTED  # started work finishes
    assert second.state is third.state is MessageState.REVOKED
    assert buffered.cancelled
    assert lockstep.buffered() == 0
    assert not parts.settled([TP])
    part = parts.get(TP)
    assert part is not None
    part.done(0)
    assert not parts.settled([TP])  # the revoked ones are not done yet
    second.cancel()
    third.cancel()
    assert parts.settled([TP])


def test_a_revoke_lets_messages_before_a_later_finished_one_finish() -> None:
    parts, tracker, _ = setup()
    parts.assign([TP], {}, now=0.0)
    early, done, late = (live(parts, tracker, n) for n in range(3))
    tracker.done(TP, 1)  # finished past the unfinished 0: 0 may still finish
    parts.revoke([TP])
    assert early.state is MessageState.QUEUED
    assert late.state is MessageState.REVOKED
    assert done.state is MessageState.QUEUED


def test_release_after_a_loss_cancels_live_messages_and_forgets_every_entry() -> None:
    parts, tracker, lockstep = setup()
    parts.assign([TP], {}, now=0.0)
    message = live(parts, tracker, 0)
    parts.lose([TP])
    part = parts.get(TP)
    assert part is not None
    assert part.state is PartitionState.LOST
    parts.release([TP])
    assert message.cancelled
    assert parts.get(TP) is None
    assert tracker.held() == {}
    assert lockstep.waiting_for_data() == []


def test_take_quiet_hands_each_partitions_last_no_call_message_once() -> None:
    parts, _, _ = setup()
    parts.assign([TP, ("users", 1)], {}, now=0.0)
    part = parts.reading(TP)
    assert part is not None
    part.quiet = Record(*TP, 7, None, b"v")
    assert [r.offset for r in parts.take_quiet()] == [7]
    assert parts.take_quiet() == []


def test_co_partitions_are_partition_n_of_topics_with_as_many_partitions() -> None:
    parts, _, _ = setup()
    parts.assign([TP], {}, now=0.0)
    counts = {"users": 3, "product": 3, "auth": 1}
    assert parts.co_partitions(counts) == [("product", 0)]
    parts.assign([("product", 0)], {}, now=0.0)
    assert parts.co_partitions(counts) == []


def test_what_a_partition_holds_read_ahead_is_its_unfinished_messages() -> None:
    parts, tracker, _ = setup()
    parts.assign([TP], {}, now=0.0)
    live(parts, tracker, 0)
    live(parts, tracker, 1)
    tracker.done(TP, 0)
    assert parts.held() == {TP: (10, 1)}
