"""Per-partition offset tracking: commit only the contiguous prefix of finished messages.

A message is `track`ed when it enters the pipeline and marked `done` when every call it produced
succeeded or was skipped, or when its dead-letter record was acknowledged. `committable()` gives,
per partition, the offset to commit: the first tracked offset that is not done yet, or the last
tracked offset + 1 when everything is done. It never passes an unfinished offset and never moves
backwards. Kafka offsets need not be contiguous (compaction, transaction markers), so "contiguous"
means contiguous in the order messages were tracked, not numerically.

The messages finished past that offset go with it, as the commit's metadata
(bridge.pipeline.finished), so a partition is committed again when they change even if its
offset did not move. A partition assigned with such metadata carries the finished offsets over:
`track` reports them as finished at once (the pipeline sends nothing for them), and they stay in
the metadata until the committed offset passes them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Mapping

from bridge.errors import OffsetOrderError
from bridge.kafka.protocols import OffsetAndMetadata
from bridge.pipeline import finished
from bridge.pipeline.finished import Run
from bridge.settings import COMMIT_METADATA_MAX_BYTES

TopicPartition = tuple[str, int]


class PartitionOffsets:
    """Offsets of one partition in tracking order; `done` marks finished ones."""

    __slots__ = ("bytes", "carried", "committed", "done", "last_tracked", "open", "pending")

    def __init__(self, carried: Iterable[Run] = ()) -> None:
        self.pending: deque[int] = deque()
        # Tracked and not finished, with the bytes each holds (read-ahead): O(1), no deque scan.
        self.open: dict[int, int] = {}
        self.bytes = 0
        self.done: set[int] = set()
        self.last_tracked: int | None = None
        self.committed: OffsetAndMetadata | None = None
        self.carried: deque[Run] = deque(carried)  # finished by an earlier owner, not read yet

    def track(self, offset: int, size: int = 0) -> bool:
        """False: an earlier owner finished the message; it is recorded as finished."""
        if self.last_tracked is not None and offset <= self.last_tracked:
            raise OffsetOrderError(f"offset {offset} after {self.last_tracked}")
        self.pending.append(offset)
        self.last_tracked = offset
        if self._carried_over(offset):
            self.done.add(offset)
            self._drop_done_prefix()
            return False
        self.open[offset] = size
        self.bytes += size
        return True

    def _carried_over(self, offset: int) -> bool:
        while self.carried and self.carried[0][1] < offset:
            self.carried.popleft()
        return bool(self.carried) and self.carried[0][0] <= offset

    def finish(self, offset: int) -> None:
        size = self.open.pop(offset, None)
        if size is None:
            return
        self.bytes -= size
        if self.pending[0] == offset:  # the usual case: messages finish in order
            self.pending.popleft()
            if self.done:
                self._drop_done_prefix()
        else:
            self.done.add(offset)

    def _drop_done_prefix(self) -> None:
        # Keep the head (the first unfinished offset) so `position` can name it.
        while self.pending and self.pending[0] in self.done:
            self.done.discard(self.pending.popleft())

    def last_done(self) -> int | None:
        """The highest finished offset past the first unfinished one (None: no such gap)."""
        return max(self.done) if self.done else None

    def position(self) -> int | None:
        """The offset of the next message to consume after everything finished so far."""
        if self.pending:
            return self.pending[0]
        return None if self.last_tracked is None else self.last_tracked + 1

    def finished_runs(self) -> list[Run]:
        """Finished offsets past the first unfinished one: runs of messages finished one after
        the other in tracking order, then what was carried over and not read yet.

        Two finished offsets are in one run when no unfinished one lies between them; tracking
        order is offset order, so that is a binary search among the unfinished offsets (`open`
        keeps them in the order they were tracked). The cost follows the finished offsets, not
        the whole read-ahead (a commit asks for this up to the commit interval's rate)."""
        runs: list[Run] = []
        if self.done:
            unfinished = list(self.open)
            first = last = gap = -1
            for offset in sorted(self.done):
                below = bisect_right(unfinished, offset)
                if below != gap:
                    if gap >= 0:
                        runs.append((first, last))
                    first, gap = offset, below
                last = offset
            runs.append((first, last))
        if not self.carried:
            return runs  # sorted, and never adjacent: an unfinished offset lies between two
        past = -1 if self.last_tracked is None else self.last_tracked + 1
        runs.extend((max(first, past), last) for first, last in self.carried if last >= past)
        return finished.merge(runs)

    def commit(self, max_bytes: int) -> OffsetAndMetadata | None:
        pos = self.position()
        if pos is None:
            return None
        runs = self.finished_runs() if max_bytes > 0 and (self.done or self.carried) else []
        return OffsetAndMetadata(pos, finished.encode(pos, runs, max_bytes))


class OffsetTracker:
    """Tracks in-flight offsets of every assigned partition. Not thread-safe: one event loop."""

    def __init__(self, *, metadata_max_bytes: int = COMMIT_METADATA_MAX_BYTES) -> None:
        self._parts: dict[TopicPartition, PartitionOffsets] = {}
        self._max_bytes = metadata_max_bytes
        # Partitions with messages finished since they were last offered for a commit: the
        # commit timer looks at these only (a busy partition's finished runs cost a scan).
        self._changed: set[TopicPartition] = set()

    def assign(
        self,
        tps: Iterable[TopicPartition],
        committed: Mapping[TopicPartition, OffsetAndMetadata] | None = None,
    ) -> dict[TopicPartition, PartitionOffsets]:
        """Start fresh state for newly assigned partitions, carrying over the offsets their
        committed metadata says are finished; returns the new entries."""
        committed = committed or {}
        entries: dict[TopicPartition, PartitionOffsets] = {}
        for tp in tps:
            was = committed.get(tp)
            runs = finished.decode(was.offset, was.metadata) if was is not None else []
            self._parts[tp] = entries[tp] = PartitionOffsets(runs)
        return entries

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Drop state for revoked or lost partitions; late `done` calls for them are ignored."""
        for tp in tps:
            self._parts.pop(tp, None)
            self._changed.discard(tp)

    def track(self, tp: TopicPartition, offset: int, size: int = 0) -> bool:
        """Record that `offset` entered the pipeline, holding `size` bytes until it finishes.
        Offsets must increase per partition. False: an earlier owner finished it (committed
        metadata); it counts as done already."""
        state = self._parts.get(tp)
        if state is None:
            state = self._parts[tp] = PartitionOffsets()
        fresh = state.track(offset, size)
        if not fresh:
            self._changed.add(tp)
        return fresh

    def done(self, tp: TopicPartition, offset: int) -> None:
        """Mark `offset` finished. Unknown offsets and forgotten partitions are ignored."""
        state = self._parts.get(tp)
        if state is not None:
            state.finish(offset)
            self._changed.add(tp)

    def take_changed(self) -> set[TopicPartition]:
        """The partitions with messages finished since the last call (and those handed back by
        `mark_changed`), forgetting them."""
        changed, self._changed = self._changed, set()
        return changed

    def mark_changed(self, tps: Iterable[TopicPartition]) -> None:
        """Offer partitions again, e.g. after their commit failed."""
        self._changed.update(tp for tp in tps if tp in self._parts)

    def busy(self) -> bool:
        """Whether a message is in flight or finished work waits for a commit."""
        return bool(self._changed) or any(s.open for s in self._parts.values())

    def in_flight(self, tp: TopicPartition | None = None) -> int:
        """Messages tracked and not finished, for one partition or all of them."""
        states = self._parts.values() if tp is None else [self._parts.get(tp)]
        return sum(len(s.open) for s in states if s is not None)

    def held(self) -> dict[TopicPartition, tuple[int, int]]:
        """Bytes and messages each partition holds unfinished (read ahead of its commit)."""
        return {tp: (s.bytes, len(s.open)) for tp, s in self._parts.items()}

    def last_done(self, tp: TopicPartition) -> int | None:
        """The highest offset finished after the partition's first unfinished one, if any: the
        messages below it are the gaps that hold the committable position back."""
        state = self._parts.get(tp)
        return None if state is None else state.last_done()

    def committable(
        self, tps: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """What to commit: partitions whose position moved past the last commit, or whose
        finished offsets past it changed. Never a position below the last commit."""
        out: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp in self._parts if tps is None else tps:
            state = self._parts.get(tp)
            now = None if state is None else state.commit(self._max_bytes)
            if now is None or state is None:
                continue
            was = state.committed
            if was is None or now.offset > was.offset or (now.offset == was.offset and now != was):
                out[tp] = now
        return out

    def mark_committed(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """Record a successful commit so the same position is not committed again."""
        for tp, now in offsets.items():
            state = self._parts.get(tp)
            if state is not None and (
                state.committed is None or now.offset >= state.committed.offset
            ):
                state.committed = now
