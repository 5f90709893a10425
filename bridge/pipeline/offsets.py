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

from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from bridge.errors import OffsetOrderError
from bridge.kafka.protocols import OffsetAndMetadata
from bridge.pipeline import finished
from bridge.pipeline.finished import Run
from bridge.settings import COMMIT_METADATA_MAX_BYTES

TopicPartition = tuple[str, int]


class PartitionOffsets:
    """Offsets of one partition in tracking order: the unfinished ones (`open`) and the runs of
    finished ones past the first unfinished one (the head), kept as messages finish, so a commit
    reads them instead of walking the read-ahead."""

    __slots__ = (
        "_ends",
        "_firsts",
        "_head",
        "_order",
        "_tokens",
        "bytes",
        "carried",
        "committed",
        "last_tracked",
        "open",
        "start",
    )

    def __init__(self, carried: Iterable[Run] = (), start: OffsetAndMetadata | None = None) -> None:
        self.start = start  # the group's commit when the partition was assigned (None: none)
        # Tracked offsets in tracking order (offsets increase, so it is sorted); those before
        # `_head` are finished and committable, `_order[_head]` is the first unfinished one.
        self._order: list[int] = []
        self._head = 0
        # Tracked and not finished, with the bytes each holds (read-ahead).
        self.open: dict[int, int] = {}
        self.bytes = 0
        # Runs of finished offsets past the head, maximal in tracking order (an unfinished offset
        # lies between two): first -> last, their firsts in offset order, and each run's text in
        # the commit metadata (its gap from the run before it; the first one's, from the head, is
        # made at the commit), kept as messages finish so a commit joins them.
        self._ends: dict[int, int] = {}
        self._firsts: list[int] = []
        self._tokens: list[str] = []
        self.last_tracked: int | None = None
        self.committed: OffsetAndMetadata | None = None
        self.carried: deque[Run] = deque(carried)  # finished by an earlier owner, not read yet

    def first_read(self) -> int | None:
        """The oldest offset still tracked: the first one read, or the first unfinished one
        once a long finished prefix was dropped (None: nothing read)."""
        return self._order[0] if self._order else None

    def track(self, offset: int, size: int = 0) -> bool:
        """False: an earlier owner finished the message; it is recorded as finished."""
        if self.last_tracked is not None and offset <= self.last_tracked:
            raise OffsetOrderError(f"offset {offset} after {self.last_tracked}")
        self._order.append(offset)
        self.last_tracked = offset
        if self._carried_over(offset):
            self._finished_at(len(self._order) - 1)
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
        order, head = self._order, self._head
        # The usual case: messages finish in order.
        at = head if order[head] == offset else bisect_left(order, offset, head)
        self._finished_at(at)

    def _finished_at(self, at: int) -> None:
        """`_order[at]`, no longer open, finished: move the head past it, or join the runs on
        either side of it."""
        order = self._order
        if at == self._head:  # the head: it and the run right after it become committable
            at += 1
            if at < len(order) and order[at] not in self.open:
                last = self._ends.pop(order[at])
                del self._firsts[0], self._tokens[0]  # the run nearest the head
                at = bisect_left(order, last, at) + 1
            self._head = at
            if at > 4096 and 2 * at > len(order):
                del order[:at]
                self._head = 0
            return
        offset = first = last = order[at]
        before = order[at - 1]  # past the head, which is unfinished: a run's last if finished
        joins_before = before not in self.open
        joins_after = at + 1 < len(order) and order[at + 1] not in self.open
        firsts, k = self._firsts, bisect_left(self._firsts, offset)  # k: the run after it
        if joins_before:  # `before` is the last of the run before it
            k -= 1
            first = firsts[k]
        if joins_after:
            last = self._ends.pop(order[at + 1])
        if joins_before and joins_after:  # the run after it joins the one before
            del firsts[k + 1], self._tokens[k + 1]
        elif joins_after:  # the run after it starts here now
            firsts[k] = offset
        elif not joins_before:  # a run of its own
            firsts.insert(k, offset)
            self._tokens.insert(k, "")
        self._ends[first] = last
        self._retoken(k)
        if k + 1 < len(firsts):
            self._retoken(k + 1)

    def _retoken(self, k: int) -> None:
        """Make the text of run k again (its first run's gap is made at the commit)."""
        if k:
            first = self._firsts[k]
            gap = first - self._ends[self._firsts[k - 1]] - 1
            self._tokens[k] = finished.token(gap, self._ends[first] - first + 1)

    def last_done(self) -> int | None:
        """The highest finished offset past the first unfinished one (None: no such gap)."""
        return self._ends[self._firsts[-1]] if self._firsts else None

    def position(self) -> int | None:
        """The offset of the next message to consume after everything finished so far."""
        if self._head < len(self._order):
            return self._order[self._head]
        return None if self.last_tracked is None else self.last_tracked + 1

    def finished_runs(self) -> list[Run]:
        """Finished offsets past the first unfinished one: runs of messages finished one after
        the other in tracking order, then what was carried over and not read yet."""
        runs = [(first, self._ends[first]) for first in self._firsts]
        if not self.carried:
            return runs  # never adjacent: an unfinished offset lies between two
        past = -1 if self.last_tracked is None else self.last_tracked + 1
        runs.extend((max(first, past), last) for first, last in self.carried if last >= past)
        return finished.merge(runs)

    def commit(self, max_bytes: int) -> OffsetAndMetadata | None:
        pos = self.position()
        if pos is None:
            return None
        if max_bytes <= 0 or not (self._ends or self.carried):
            return OffsetAndMetadata(pos, "")
        if self.carried:  # what an earlier owner finished joins the runs: encoded anew
            return OffsetAndMetadata(pos, finished.encode(pos, self.finished_runs(), max_bytes))
        first = self._firsts[0]
        self._tokens[0] = finished.token(first - pos, self._ends[first] - first + 1)
        return OffsetAndMetadata(pos, finished.join(pos, self._tokens, max_bytes))


def _nothing() -> None:
    return None


class OffsetTracker:
    """Tracks in-flight offsets of every assigned partition. Not thread-safe: one event loop."""

    def __init__(self, *, metadata_max_bytes: int = COMMIT_METADATA_MAX_BYTES) -> None:
        self._parts: dict[TopicPartition, PartitionOffsets] = {}
        self._max_bytes = metadata_max_bytes
        # Partitions with messages finished since they were last offered for a commit: the
        # commit timer looks at these only (a busy partition's finished runs cost a scan).
        self._changed: set[TopicPartition] = set()
        # Called when finished work starts to wait for a commit (none waited): the commit timer.
        self.on_waiting: Callable[[], None] = _nothing

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
            self._parts[tp] = entries[tp] = PartitionOffsets(runs, was)
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
            self._change(tp)
        return fresh

    def done(self, tp: TopicPartition, offset: int) -> None:
        """Mark `offset` finished. Unknown offsets and forgotten partitions are ignored."""
        state = self._parts.get(tp)
        if state is not None:
            state.finish(offset)
            self._change(tp)

    def _change(self, tp: TopicPartition) -> None:
        if not self._changed:
            self.on_waiting()
        self._changed.add(tp)

    def take_changed(self) -> set[TopicPartition]:
        """The partitions with messages finished since the last call (and those handed back by
        `mark_changed`), forgetting them."""
        changed, self._changed = self._changed, set()
        return changed

    def mark_changed(self, tps: Iterable[TopicPartition]) -> None:
        """Offer partitions again, e.g. after their commit failed."""
        for tp in tps:
            if tp in self._parts:
                self._change(tp)

    def finished_uncommitted(self) -> bool:
        """Whether finished work waits for the next commit."""
        return bool(self._changed)

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

    def last_commits(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Each assigned partition's last commit, ours or (none yet) the one it was assigned
        with: committed again, they change nothing, and prove the group's coordinator is
        back. A partition the group never committed offers its first message read, which
        nothing of ours lies before (nothing at all when none was read yet)."""
        out: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, state in self._parts.items():
            last = state.committed or state.start
            if last is None and (first := state.first_read()) is not None:
                last = OffsetAndMetadata(first)
            if last is not None:
                out[tp] = last
        return out

    def mark_committed(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """Record a successful commit so the same position is not committed again."""
        for tp, now in offsets.items():
            state = self._parts.get(tp)
            if state is not None and (
                state.committed is None or now.offset >= state.committed.offset
            ):
                state.committed = now
