"""One object per assigned partition, from assign to release, and the registry that holds them.

A partition's facts live in its `Partition`: whether it is paused, what it holds read ahead,
its messages in flight (`live`), the last message of this batch that made no call (`quiet`, for
the lockstep), the offset last committed (`position`, for the lag) and its offset-tracker entry;
the registry, `Partitions`, keeps its lockstep input in step (pause, assign, remove). A
rebalance is then "create, revoke, lose, release one object":

    assign ──> READING ⇄ paused (read-ahead bound)
                  │
                  ├── revoke ──> REVOKED: started work finishes within the grace,
                  │                       later messages start nothing ──┐
                  └── lose ────> LOST: nothing is committed ─────────────┴──> release

`release` drops the partition: its buffered and live messages are cancelled (the new owner reads
them again), and its tracker and lockstep entries are forgotten. Not thread-safe: one loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from enum import Enum

from bridge.events import Record
from bridge.kafka.protocols import OffsetAndMetadata
from bridge.meisa.calls import MeisaCall
from bridge.pipeline.lockstep import Lockstep
from bridge.pipeline.message import InFlight, TopicPartition
from bridge.pipeline.offsets import OffsetTracker, PartitionOffsets

Buffered = tuple[InFlight, list[MeisaCall]]  # what the lockstep holds: a message and its calls


class PartitionState(Enum):
    READING = "reading"  # assigned: its messages are read and started
    REVOKED = "revoked"  # a revoke is under way: only started work finishes
    LOST = "lost"  # another member may own it already: nothing is committed


_READING = PartitionState.READING  # asked for every record: a module name, not a class lookup


class Partition:
    """One assigned partition: what this member holds of it (see the module docstring)."""

    __slots__ = ("live", "offsets", "paused", "position", "quiet", "state", "tp")

    def __init__(self, tp: TopicPartition, offsets: PartitionOffsets) -> None:
        self.tp = tp
        self.state = PartitionState.READING
        self.offsets = offsets  # its entry in the offset tracker
        self.paused = False
        self.live: dict[int, InFlight] = {}  # messages with calls, by offset, until done
        self.quiet: Record | None = None  # the last message of this batch that made no call
        self.position: int | None = None  # the offset last committed

    @property
    def reading(self) -> bool:
        return self.state is _READING

    def held(self) -> tuple[int, int]:
        """Bytes and messages read and not finished yet: what counts against read-ahead."""
        return self.offsets.bytes, len(self.offsets.open)

    def add(self, message: InFlight) -> None:
        self.live[message.offset] = message

    def done(self, offset: int) -> None:
        self.live.pop(offset, None)

    def stop_starting(self) -> None:
        """Messages past everything finished or started start nothing more: the new owner (or
        the next run) reads them. Earlier ones finish, so the commit covers the work done."""
        started = [offset for offset, m in self.live.items() if m.started]
        done = self.offsets.last_done()
        frontier = max([*started, *([] if done is None else [done])], default=-1)
        for offset, message in self.live.items():
            if offset > frontier:
                message.revoke()

    def settled(self) -> bool:
        """Every message is done (and gone from `live`) or was cancelled."""
        return all(m.cancelled for m in self.live.values())

    def cancel(self) -> None:
        for message in self.live.values():
            message.cancel()
            message.trace.finish("cancelled")
        self.live.clear()


class Partitions:
    """The partitions this member holds, keyed by (topic, partition), with their tracker and
    lockstep entries kept in step: assign creates them, release forgets them everywhere."""

    def __init__(self, tracker: OffsetTracker, lockstep: Lockstep[Buffered]) -> None:
        self._tracker = tracker
        self._lockstep = lockstep
        self._parts: dict[TopicPartition, Partition] = {}

    def __iter__(self) -> Iterator[Partition]:
        return iter(list(self._parts.values()))

    def get(self, tp: TopicPartition) -> Partition | None:
        """The partition in any state until it is released."""
        return self._parts.get(tp)

    def reading(self, tp: TopicPartition) -> Partition | None:
        """The partition if it is assigned and not being revoked or lost."""
        part = self._parts.get(tp)
        return part if part is not None and part.state is _READING else None

    def assigned(self) -> list[TopicPartition]:
        return [tp for tp, part in self._parts.items() if part.reading]

    def held(self) -> dict[TopicPartition, tuple[int, int]]:
        """What each partition holds read and not finished (bridge.pipeline.readahead)."""
        return {tp: part.held() for tp, part in self._parts.items()}

    def paused(self) -> set[TopicPartition]:
        return {tp for tp, part in self._parts.items() if part.paused}

    def assign(
        self,
        tps: Iterable[TopicPartition],
        committed: Mapping[TopicPartition, OffsetAndMetadata],
        now: float,
    ) -> None:
        """New partitions: fresh tracker entries (carrying over what their committed metadata
        says is finished) and lockstep inputs."""
        tps = list(tps)
        entries = self._tracker.assign(tps, committed)
        self._lockstep.assign(tps, now)
        for tp in tps:
            part = self._parts.get(tp)
            if part is None:
                self._parts[tp] = Partition(tp, entries[tp])
            else:  # assigned again before it was released: keep its live messages
                part.offsets, part.state = entries[tp], PartitionState.READING

    def set_paused(self, tps: Iterable[TopicPartition], paused: bool) -> None:
        for tp in tps:
            part = self._parts.get(tp)
            if part is not None:
                part.paused = paused
                self._lockstep.set_paused(tp, paused)

    def revoke(self, tps: Iterable[TopicPartition]) -> None:
        """Started work of the partitions may finish; nothing else of them starts: later live
        messages stop, and the messages the lockstep still buffers are cancelled."""
        tps = list(tps)
        for tp in tps:
            part = self._parts.get(tp)
            if part is not None:
                part.state = PartitionState.REVOKED
                part.stop_starting()
        for message, _ in self._lockstep.remove(tps):  # never admitted: the new owner reads them
            message.cancel()

    def lose(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            part = self._parts.get(tp)
            if part is not None:
                part.state = PartitionState.LOST

    def settled(self, tps: Iterable[TopicPartition]) -> bool:
        return all(part.settled() for tp in tps if (part := self._parts.get(tp)) is not None)

    def release(self, tps: Iterable[TopicPartition]) -> None:
        """Forget the partitions everywhere; their unfinished messages are cancelled."""
        tps = list(tps)
        self._lockstep.remove(tps)
        for tp in tps:
            part = self._parts.pop(tp, None)
            if part is not None:
                part.cancel()
        self._tracker.forget(tps)

    def take_quiet(self) -> list[Record]:
        """The last no-call message of each partition since the last call, forgetting them."""
        quiet: list[Record] = []
        for part in self._parts.values():
            if part.quiet is not None:
                quiet.append(part.quiet)
                part.quiet = None
        return quiet

    def co_partitions(self, counts: Mapping[str, int]) -> list[TopicPartition]:
        """Partition N of every subscribed topic with as many partitions (`counts`) as a topic
        of which partition N is assigned: the range assignor hands them to the same member,
        one by one during an incremental rebalance."""
        assigned = set(self.assigned())
        return [
            (other, p)
            for topic, p in assigned
            for other, n in counts.items()
            if other != topic and n == counts.get(topic) and (other, p) not in assigned
        ]
