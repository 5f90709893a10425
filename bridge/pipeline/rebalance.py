"""The source's rebalance listener: create, revoke, lose and release partition objects.

Each handler changes the partitions (bridge.pipeline.partition) and then what follows from the
assignment: the lockstep's expected co-partitions, the rate share, the calls still queued for
partitions that are gone, the health and metrics counts. See the partition module for the
lifecycle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping

from bridge.kafka.protocols import OffsetAndMetadata
from bridge.meisa.share import RateShare
from bridge.observability import HealthState, Metrics
from bridge.pipeline.dispatcher import Dispatcher
from bridge.pipeline.lockstep import Lockstep
from bridge.pipeline.message import TopicPartition
from bridge.pipeline.offsets import OffsetTracker
from bridge.pipeline.partition import Buffered, Partitions
from bridge.pipeline.tally import EventTally

log = logging.getLogger("bridge.pipeline")

SETTLE_POLL_SECONDS = 0.02  # how often a revoke looks whether started work has finished


class Rebalance:
    """bridge.kafka.protocols.RebalanceListener for the pipeline. `waiting()` says whether a
    revoke may wait for started work (not after a halt, nor while closing: the shutdown grace
    already drained what it could and cancelled the rest)."""

    def __init__(
        self,
        *,
        partitions: Partitions,
        lockstep: Lockstep[Buffered],
        tracker: OffsetTracker,
        dispatcher: Dispatcher,
        rate_share: RateShare,
        tally: EventTally,
        health: HealthState,
        metrics: Metrics,
        revoke_grace: float,
        waiting: Callable[[], bool],
    ) -> None:
        self._partitions = partitions
        self._lockstep = lockstep
        self._tracker = tracker
        self._dispatcher = dispatcher
        self._rate_share = rate_share
        self._tally = tally
        self._health = health
        self._metrics = metrics
        self._revoke_grace = revoke_grace
        self._waiting = waiting

    async def on_assign(
        self, tps: list[TopicPartition], committed: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> None:
        log.info("assigned: %s", _names(tps))
        now = asyncio.get_running_loop().time()
        self._partitions.assign(tps, committed, now)
        self._lockstep.expect(self._partitions.co_partitions(self._rate_share.counts), now)
        self._count_assigned()
        self._rate_share.update(self._partitions.assigned())

    async def on_revoke(self, tps: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Let started work of the partitions finish (within the grace) and return what to commit.

        Messages up to the last one finished or started still run, so the committed position
        covers the work done (other contacts run ahead of a slow one); later buffered messages
        start nothing, because the new owner reads them and the whole group waits for this
        callback: draining a backlog here would stall every member."""
        log.info("revoked: %s", _names(tps))
        self._partitions.revoke(tps)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._revoke_grace
        waiting = self._waiting()
        while waiting and not self._partitions.settled(tps):
            if loop.time() >= deadline:
                log.warning("revoke grace ran out; unfinished messages go to the new owner")
                break
            await asyncio.sleep(SETTLE_POLL_SECONDS)
        offsets = self._tracker.committable(tps)
        self._tally.flush()
        await self._release(tps)
        return offsets

    async def on_lost(self, tps: list[TopicPartition]) -> None:
        """Lost partitions (session timeout): another member may own them already: no commit."""
        log.warning("lost: %s", _names(tps))
        self._partitions.lose(tps)
        await self._release(tps)

    async def _release(self, tps: list[TopicPartition]) -> None:
        self._partitions.release(tps)
        for tp in tps:
            self._metrics.forget_partition(*tp)
        self._rate_share.update(self._partitions.assigned())
        await self._dispatcher.release(tps)
        self._count_assigned()

    def _count_assigned(self) -> None:
        count = len(self._partitions.assigned())
        self._health.on_assignment(count)
        self._metrics.assigned_partitions(count)


def _names(tps: Iterable[TopicPartition]) -> str:
    return ", ".join(f"{t}/{p}" for t, p in sorted(tps)) or "-"
