"""Event-time lockstep: admit buffered messages of all assigned partitions in event-time order.

Kafka orders a key within one partition; a person's sign-up on `app.users` and usage on
`app.product` are ordered by nothing. In a backlog (a restart, an outage, a new group reading from
`earliest`) each partition would otherwise be read as fast as it comes, and a usage event could
reach Meisa before the sign-up that creates its contact. Like Kafka Streams synchronising a task's
input partitions by timestamp, the pipeline buffers fetched messages per partition and `admit()`
hands them on smallest event time first:

- a message is admitted when no other partition could still deliver an older one: every other
  partition either has a buffered head at least as old (it is merged by time), or is known to be
  at its end (the consumer reported end of partition after its last buffered message), or has
  been empty and unpaused for longer than `max_idle` while the consumer could not say whether
  more data is on its way (an idle partition is not waited for forever), or last delivered a
  message at most `max_skew` seconds older (a message that needs no admission, one no rule
  maps, counts too: `advance`); a partition whose fetch lag is known to be positive
  (messages between its position and its high watermark, `set_lag`) is waited for
  `LAG_WAIT_FACTOR` times longer (data is on its way; only an open transaction could hold it
  back for long), and one whose lag is 0 is caught up;
- a partition paused by backpressure with an empty buffer is waited for: it is behind, and the
  others must not run ahead of it (they fill their buffers and are paused in turn); unless the
  caller says its work may itself be waiting for theirs (`ignore_paused`: calls parked until a
  contact that only a later message creates), where waiting would never end;
- a co-partition this member is about to own (`expect`: partition N of a topic keyed like one
  just assigned, while an incremental rebalance hands partitions over one by one) is waited for
  as a partition that has not answered its first fetch, at most `max_idle`;
- messages the caller marks `urgent` (calls that depend on nothing, such as a one-time code) are
  never buffered; the caller sends them at once.

Pure and synchronous: time comes in as `now`, so tests drive it with a fake clock.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
TopicPartition = tuple[str, int]
NEVER = float("-inf")
# A partition known to have data on its way is waited for this many times `max_idle`.
LAG_WAIT_FACTOR = 12


@dataclass(slots=True)
class _Input(Generic[T]):
    buffer: deque[tuple[float, T]] = field(default_factory=deque)
    at_end: bool = False  # nothing after the buffered messages (end of partition reported)
    paused: bool = False
    empty_since: float = 0.0
    last_time: float = NEVER  # event time of the newest message pushed
    lag: int | None = None  # fetch lag when the buffer last ran empty (None: not known)


class Lockstep(Generic[T]):
    """Per-partition buffers merged by event time (see module docstring)."""

    def __init__(self, *, max_skew: float = 0.0, max_idle: float = 5.0) -> None:
        self.max_skew = max_skew
        self.max_idle = max_idle
        self._inputs: dict[TopicPartition, _Input[T]] = {}
        self.held_back = 0  # admit() calls that stopped at a partition it had to wait for
        self._expected: dict[TopicPartition, float] = {}  # not assigned yet: since when

    def assign(self, tps: Iterable[TopicPartition], now: float) -> None:
        for tp in tps:
            since = self._expected.pop(tp, now)
            self._inputs[tp] = _Input(empty_since=since)

    def expect(self, tps: Iterable[TopicPartition], now: float) -> None:
        """Partitions that should come with those assigned (co-partitions still on their way)."""
        for tp in tps:
            if tp not in self._inputs:
                self._expected.setdefault(tp, now)

    def remove(self, tps: Iterable[TopicPartition]) -> list[T]:
        """Forget partitions (revoked, lost); returns what they had buffered."""
        dropped: list[T] = []
        for tp in tps:
            state = self._inputs.pop(tp, None)
            if state is not None:
                dropped.extend(item for _, item in state.buffer)
        return dropped

    def push(self, tp: TopicPartition, time: float, item: T) -> None:
        state = self._inputs.get(tp)
        if state is None:
            return
        state.buffer.append((time, item))
        state.at_end = False
        state.lag = None
        state.last_time = max(state.last_time, time)

    def advance(self, tp: TopicPartition, time: float) -> None:
        """The partition delivered a message of event time `time` that needs no admission (it
        makes no call): nothing older is to come from it, as after a pushed one."""
        state = self._inputs.get(tp)
        if state is not None:
            state.last_time = max(state.last_time, time)

    def at_end(self, tp: TopicPartition) -> None:
        """The consumer reached the end of the partition (after what was pushed so far)."""
        state = self._inputs.get(tp)
        if state is not None:
            state.at_end = True

    def waiting_for_data(self) -> list[TopicPartition]:
        """Empty partitions not known to be at their end: the caller reports their lag."""
        return [tp for tp, s in self._inputs.items() if not s.buffer and not s.at_end]

    def set_lag(self, tp: TopicPartition, lag: int | None) -> None:
        state = self._inputs.get(tp)
        if state is not None and not state.buffer:
            state.lag = lag

    def set_paused(self, tp: TopicPartition, paused: bool) -> None:
        state = self._inputs.get(tp)
        if state is not None:
            state.paused = paused

    def buffered(self, tp: TopicPartition | None = None) -> int:
        if tp is not None:
            state = self._inputs.get(tp)
            return 0 if state is None else len(state.buffer)
        return sum(len(s.buffer) for s in self._inputs.values())

    def blocked_by_paused(self) -> bool:
        """Some paused partition has nothing buffered (admission may be waiting for it)."""
        return any(s.paused and not s.buffer and not s.at_end for s in self._inputs.values())

    def admit(self, now: float, *, ignore_paused: bool = False) -> list[T]:
        """Everything that may go now, oldest event time first."""
        heads = [
            (s.buffer[0][0], n, tp) for n, (tp, s) in enumerate(self._inputs.items()) if s.buffer
        ]
        heapq.heapify(heads)
        bound = self._bound(now, ignore_paused)
        order = itertools.count(len(self._inputs))
        out: list[T] = []
        while heads:
            time, _, tp = heads[0]
            if time > bound:
                self.held_back += 1
                break
            heapq.heappop(heads)
            state = self._inputs[tp]
            out.append(state.buffer.popleft()[1])
            if state.buffer:
                heapq.heappush(heads, (state.buffer[0][0], next(order), tp))
            else:
                state.empty_since = now
                bound = min(bound, self._limit(state, now, ignore_paused))
        return out

    def _bound(self, now: float, ignore_paused: bool) -> float:
        """The newest event time that may go: no empty partition we wait for is further behind."""
        limits = [self._limit(s, now, ignore_paused) for s in self._inputs.values() if not s.buffer]
        for tp, since in list(self._expected.items()):
            if now - since >= self.max_idle:
                del self._expected[tp]  # it did not come: not waited for any longer
            else:
                limits.append(NEVER)
        return min(limits, default=float("inf"))

    def _limit(self, state: _Input[T], now: float, ignore_paused: bool = False) -> float:
        if state.at_end or state.lag == 0:
            return float("inf")
        bound = self.max_idle * (1 if state.lag is None else LAG_WAIT_FACTOR)
        waited_for = state.paused and not ignore_paused
        if not waited_for and now - state.empty_since >= bound:
            return float("inf")  # idle: not waited for any longer
        return state.last_time + self.max_skew
