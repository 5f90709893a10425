"""Per-partition offset tracking: commit only the contiguous prefix of finished messages.

A message is `track`ed when it enters the pipeline and marked `done` when every call it produced
succeeded or was skipped, or when its dead-letter record was acknowledged. `committable()` gives,
per partition, the offset to commit: the first tracked offset that is not done yet, or the last
tracked offset + 1 when everything is done. It never passes an unfinished offset and never moves
backwards. Kafka offsets need not be contiguous (compaction, transaction markers), so "contiguous"
means contiguous in the order messages were tracked, not numerically.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from bridge.errors import OffsetOrderError

TopicPartition = tuple[str, int]


class _PartitionState:
    """Offsets of one partition in tracking order; `done` marks finished ones."""

    __slots__ = ("committed", "done", "last_tracked", "open", "pending")

    def __init__(self) -> None:
        self.pending: deque[int] = deque()
        self.open: set[int] = set()  # tracked and not finished: O(1) membership, not a deque scan
        self.done: set[int] = set()
        self.last_tracked: int | None = None
        self.committed: int | None = None

    def track(self, offset: int) -> None:
        if self.last_tracked is not None and offset <= self.last_tracked:
            raise OffsetOrderError(f"offset {offset} after {self.last_tracked}")
        self.pending.append(offset)
        self.open.add(offset)
        self.last_tracked = offset

    def finish(self, offset: int) -> None:
        if offset in self.open:
            self.open.discard(offset)
            self.done.add(offset)
            self._drop_done_prefix()

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


class OffsetTracker:
    """Tracks in-flight offsets of every assigned partition. Not thread-safe: one event loop."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartition, _PartitionState] = {}

    def assign(self, tps: Iterable[TopicPartition]) -> None:
        """Start fresh state for newly assigned partitions."""
        for tp in tps:
            self._parts[tp] = _PartitionState()

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Drop state for revoked or lost partitions; late `done` calls for them are ignored."""
        for tp in tps:
            self._parts.pop(tp, None)

    def track(self, tp: TopicPartition, offset: int) -> None:
        """Record that `offset` entered the pipeline. Offsets must increase per partition."""
        state = self._parts.get(tp)
        if state is None:
            state = self._parts[tp] = _PartitionState()
        state.track(offset)

    def done(self, tp: TopicPartition, offset: int) -> None:
        """Mark `offset` finished. Unknown offsets and forgotten partitions are ignored."""
        state = self._parts.get(tp)
        if state is not None:
            state.finish(offset)

    def in_flight(self, tp: TopicPartition | None = None) -> int:
        """Messages tracked and not finished, for one partition or all of them."""
        states = self._parts.values() if tp is None else [self._parts.get(tp)]
        return sum(len(s.open) for s in states if s is not None)

    def last_done(self, tp: TopicPartition) -> int | None:
        """The highest offset finished after the partition's first unfinished one, if any: the
        messages below it are the gaps that hold the committable position back."""
        state = self._parts.get(tp)
        return None if state is None else state.last_done()

    def committable(self, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Offsets to commit: only partitions whose position moved past the last commit."""
        out: dict[TopicPartition, int] = {}
        for tp in self._parts if tps is None else tps:
            state = self._parts.get(tp)
            if state is None:
                continue
            pos = state.position()
            if pos is not None and (state.committed is None or pos > state.committed):
                out[tp] = pos
        return out

    def mark_committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Record a successful commit so the same position is not committed again."""
        for tp, pos in offsets.items():
            state = self._parts.get(tp)
            if state is not None and (state.committed is None or pos > state.committed):
                state.committed = pos
