"""Metrics that need a look at the steps or the consumer, every `REPORT_SECONDS` (the pipeline
ticks `report` on a bridge.pipeline.stage.Ticker).

Calls holding a slot and parked on a 404, messages held by the lockstep and read ahead per
partition, upserts coalesced, and each partition's consumer lag (its high watermark past the
offset last committed, kept by bridge.pipeline.partition). Every `SHARE_REFRESH_TICKS` reports it
also refreshes the topics' partition counts for the rate share (bridge.meisa.share).
"""

from __future__ import annotations

from bridge.kafka.protocols import Source
from bridge.meisa.share import RateShare
from bridge.observability import Metrics
from bridge.pipeline.dispatcher import Dispatcher
from bridge.pipeline.lockstep import Lockstep
from bridge.pipeline.partition import Buffered, Partitions

REPORT_SECONDS = 2.0  # metrics that need the consumer (lag) and the partition counts
SHARE_REFRESH_TICKS = 15  # report ticks between partition-count refreshes (a metadata request)


class Reporter:
    def __init__(
        self,
        *,
        metrics: Metrics,
        source: Source,
        dispatcher: Dispatcher,
        lockstep: Lockstep[Buffered],
        partitions: Partitions,
        rate_share: RateShare,
    ) -> None:
        self._metrics = metrics
        self._source = source
        self._dispatcher = dispatcher
        self._lockstep = lockstep
        self._partitions = partitions
        self._rate_share = rate_share
        self._coalesced_seen = 0
        self._ticks = 0

    async def report(self) -> None:
        self._metrics.in_flight(self._dispatcher.sending)
        self._metrics.contact_waits(self._dispatcher.parked())
        self._metrics.lockstep_buffered(self._lockstep.buffered())
        for (topic, partition), (size, messages) in self._partitions.held().items():
            self._metrics.read_ahead(topic, partition, size, messages)
        merged = self._dispatcher.coalesced
        if merged > self._coalesced_seen:
            self._metrics.coalesced(merged - self._coalesced_seen)
            self._coalesced_seen = merged
        self._ticks += 1
        if self._rate_share.active and self._ticks % SHARE_REFRESH_TICKS == 0:
            self._rate_share.counts = await self._source.partition_counts()
            self._rate_share.update(self._partitions.assigned())
        highs = await self._source.high_watermarks(self._partitions.assigned())
        for tp, high in highs.items():
            part = self._partitions.get(tp)
            if part is not None and part.position is not None:
                self._metrics.consumer_lag(tp[0], tp[1], max(0, high - part.position))
