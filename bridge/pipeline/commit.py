"""Committing: the explicit last step. Only the tracker's contiguous prefix is ever committed, with
the offsets finished past it as the commit's metadata."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bridge.errors import BrokerError
from bridge.kafka.protocols import OffsetAndMetadata
from bridge.observability import RepeatLimiter
from bridge.pipeline.message import TopicPartition
from bridge.pipeline.offsets import OffsetTracker
from bridge.settings import PipelineSettings

log = logging.getLogger("bridge.pipeline.commit")
FAILURE_REPORT_SECONDS = 30.0  # commits are retried every interval: one warning this often
# How long a commit may take before finished work counts as stalled: four deviations past the
# usual round trip, as TCP's retransmission timer (RFC 6298), within these bounds. A commit takes
# milliseconds to tens of them; one that hangs this long means the coordinator is away (a broker
# stopping, a lost connection), and every tenth of a second of work done meanwhile is about a
# hundred calls that the partition's next reader would make again.
STALL_MIN_SECONDS = 0.05
STALL_MAX_SECONDS = 0.2
FINAL_RETRY_SECONDS = 0.5  # between tries of the last commit while the broker is away
POLL_WAIT_SECONDS = 0.1  # the longest one consume() blocks (see PollWait)

# Returns what it committed (None: all of it); it may drop offsets that went stale meanwhile.
Offsets = Mapping[TopicPartition, OffsetAndMetadata]
CommitFn = Callable[[Offsets], Awaitable[Offsets | None]]


@dataclass(frozen=True, kw_only=True)
class CommitPolicy:
    """When offsets are committed. Revokes and shutdown always commit, within their grace."""

    interval_seconds: float = 0.1
    revoke_grace_seconds: float = 10.0
    shutdown_grace_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: PipelineSettings) -> CommitPolicy:
        return cls(
            interval_seconds=settings.commit_interval_seconds,
            revoke_grace_seconds=settings.revoke_grace_seconds,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
        )


class RateHold(Protocol):
    """The rate governor, as far as the consume loop cares (bridge.meisa.governor)."""

    def waiting(self) -> int: ...
    def next_grant_in(self) -> float | None: ...


class Slots(Protocol):
    @property
    def sending(self) -> int:
        """Calls holding a slot: at the rate governor or on the wire (the dispatcher)."""


@dataclass(frozen=True, slots=True)
class PollWait:
    """How long one consume() may block. A commit runs on the consumer's thread between two
    consume() calls, so it waits that long for the thread, and a kill re-sends what finished
    meanwhile (bench/kill_resend.py): POLL_WAIT_SECONDS (a bound on shutdown and pause latency)
    while nothing is in flight, `short` (half the commit interval) while work may
    finish. When every call holding a slot waits at the rate governor and nothing finished
    waits for a commit, nothing can finish before the governor's next grant: the consumer may
    block until then (a paced backlog's loop turns 10 to 30 times a second instead of 100)."""

    tracker: OffsetTracker
    short: float
    slots: Slots
    rate: RateHold | None = None

    @classmethod
    def of(
        cls, tracker: OffsetTracker, policy: CommitPolicy, slots: Slots, rate: RateHold | None
    ) -> PollWait:
        return cls(tracker, min(POLL_WAIT_SECONDS, policy.interval_seconds / 2), slots, rate)

    def __call__(self) -> float:
        tracker = self.tracker
        if not tracker.busy():
            return POLL_WAIT_SECONDS
        rate = self.rate
        if rate is None or tracker.finished_uncommitted():
            return self.short
        waiting = rate.waiting()
        grant_in = rate.next_grant_in() if waiting else None
        if grant_in is None or self.slots.sending > waiting:
            return self.short
        return min(POLL_WAIT_SECONDS, max(self.short, grant_in))


class Committer:
    """Commits what the tracker allows and records it, so a position is committed once."""

    def __init__(
        self,
        tracker: OffsetTracker,
        commit: CommitFn,
        *,
        on_committed: Callable[[TopicPartition, int], None] = lambda tp, offset: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tracker = tracker
        self._commit = commit
        self._on_committed = on_committed
        self._clock = clock
        # Since when finished work has waited for a commit that did not go through (None: it
        # all went through): the broker may be out of reach, see `stalled_for`.
        self._waiting_since: float | None = None
        # Whether the last commit was refused (the broker is away, or a classic rebalance has
        # moved the group to a new generation): work finished now may never be committed.
        self.refused = False
        self._unreachable = False  # the last commit failed for want of a broker to take it
        # The client lost a broker connection: the next commits offer the last ones again (see
        # `broker_away`) until one goes through.
        self._probe = False
        self._failures = RepeatLimiter(FAILURE_REPORT_SECONDS, clock=clock)
        # Smoothed round trip of a successful commit and its mean deviation (None: none yet).
        self._srtt: float | None = None
        self._rttvar = 0.0

    def broker_away(self) -> None:
        """The client lost its connection to a broker. Until a commit goes through, work done
        may never be committed: treat it as a refused commit at once (the fence holds new calls)
        rather than when a commit hangs or fails, which happens only once work finishes (a
        burst sent after a wait, for the rate budget or a partition's first fetch, would all go
        out first). The commits from now on also offer each partition's last commit again,
        which changes nothing, so that one going through proves the coordinator is back."""
        self._probe = self.refused = self._unreachable = True
        self._tracker.on_waiting()

    def stall_limit(self) -> float:
        """Seconds a commit may hang before the work waiting for it counts as stalled."""
        if self._srtt is None:
            return STALL_MAX_SECONDS
        return min(STALL_MAX_SECONDS, max(STALL_MIN_SECONDS, self._srtt + 4 * self._rttvar))

    def stalled(self) -> bool:
        """A commit was refused, or finished work has waited longer than `stall_limit()`."""
        return self.refused or self.stalled_for() > self.stall_limit()

    def _took(self, seconds: float) -> None:
        if self._srtt is None:
            self._srtt, self._rttvar = seconds, seconds / 2
            return
        self._rttvar += (abs(self._srtt - seconds) - self._rttvar) / 4
        self._srtt += (seconds - self._srtt) / 8

    def stalled_for(self) -> float:
        """Seconds finished work has waited for a commit that has not succeeded (0: none)."""
        return 0.0 if self._waiting_since is None else self._clock() - self._waiting_since

    async def commit(
        self, tps: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Commit now the given partitions, or (None) those with messages finished since the
        last such call; a failed commit is logged and retried on the next call.

        A commit that did not take all it offered asks the commit timer again itself (the
        tracker's `on_waiting`): the partitions it hands back may have been lost while it was in
        flight, and then nothing else would ask. The next commit, with nothing left to offer,
        clears `refused` and `stalled_for`; without it the fence they close would never open."""
        if tps is None:
            tps = self._tracker.take_changed()
        offered = self._tracker.committable(tps) if tps else {}
        if self._probe:
            offered = self._tracker.last_commits() | offered
        if not offered:  # nothing finished waits (e.g. its partitions were released)
            self._waiting_since = None
            self.refused = self._probe = False
            return {}
        if self._waiting_since is None:
            self._waiting_since = self._clock()
        start = self._clock()
        try:
            done = await self._commit(offered)
        except BrokerError as exc:
            held = self._failures.allow("commit")
            if held is not None:
                log.warning("commit failed, will retry: %s (%d more failures before it)", exc, held)
            self._tracker.mark_changed(offered)
            self.refused = True
            self._unreachable = exc.unreachable
            self._tracker.on_waiting()
            return {}
        self._took(self._clock() - start)
        offsets = dict(offered if done is None else done)
        self._tracker.mark_changed(tp for tp in offered if tp not in offsets)
        self._tracker.mark_committed(offsets)
        self.refused = self._unreachable = self._probe = False
        if len(offsets) == len(offered):
            self._waiting_since = None
        else:
            self._tracker.on_waiting()
        for tp, committed in offsets.items():
            self._on_committed(tp, committed.offset)
        return offsets

    def deadline(self, seconds: float) -> float:
        """`seconds` from now on the committer's clock (for `commit_final`)."""
        return self._clock() + seconds

    async def commit_final(self, deadline: float) -> dict[TopicPartition, OffsetAndMetadata]:
        """The last commit before leaving: while the broker is out of reach (a restart under a
        SIGTERM), try again until `deadline` (the clock's), rather than hand finished work to
        the next owner. A commit the broker refuses is not retried."""
        committed = await self.commit()
        while self.refused and self._unreachable and self._clock() < deadline:
            await asyncio.sleep(min(FINAL_RETRY_SECONDS, max(0.0, deadline - self._clock())))
            committed.update(await self.commit())
        return committed
