"""The consume loop: Kafka -> decode -> map -> dispatch -> DLQ or done -> commit.

One asyncio loop drives everything. The pipeline receives its Source (bridge.kafka.protocols: the
confluent-kafka consumer on its own thread in production, an in-memory broker in tests). Polling
never stops while deliveries wait (a long Retry-After only pauses the partitions whose buffers
are full), so max.poll.interval.ms is never exceeded and a partition with a backlog does not hold
up the others.

Steps, one module each: the source (bridge.kafka), `intake` (track, decode and map with
bridge.outcome, route), `lockstep` (event-time order across partitions), `dispatcher`
(+`identity`, `lanes`, `coalesce`, `guards`) (Meisa), `deadletters` (the DLQ breaker and
poison), `commit` (the explicit last step). What this member holds of each assigned partition
lives in one object (`partition`), which the source's rebalance listener (`rebalance`)
creates, revokes, loses and releases; metrics that need a look at the steps are `report`'s.
This module is the poll loop, its wiring, and the shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bridge.config import BridgeConfig
from bridge.dlq import DeadLetterSink, DlqBreaker
from bridge.errors import HaltError
from bridge.events import EventDecoder, EventRules
from bridge.kafka.protocols import Source
from bridge.meisa.retry import ContactWait
from bridge.meisa.share import RateShare
from bridge.observability import HealthState, Metrics, NullMetrics
from bridge.observability.tracing import NO_TRACING, Tracing
from bridge.outcome import schema_prefetch
from bridge.pipeline.commit import CommitPolicy, Committer, PollWait, RateHold
from bridge.pipeline.deadletters import DeadLetters
from bridge.pipeline.dispatcher import Deliver, Dispatcher, Guard
from bridge.pipeline.fence import StallFence
from bridge.pipeline.inflight import InFlightLimit
from bridge.pipeline.intake import Intake
from bridge.pipeline.lockstep import Lockstep
from bridge.pipeline.message import InFlight, TopicPartition
from bridge.pipeline.offsets import OffsetTracker
from bridge.pipeline.outcomes import OutcomeWriter
from bridge.pipeline.partition import Buffered, Partitions
from bridge.pipeline.readahead import ReadAhead
from bridge.pipeline.rebalance import Rebalance
from bridge.pipeline.report import REPORT_SECONDS, Reporter
from bridge.pipeline.stage import Joined, OnDemand, Stage, TaskStage, Ticker, shut_down
from bridge.pipeline.tally import EventTally

log = logging.getLogger("bridge.pipeline")

HALT_GRACE_SECONDS = 5.0  # after a halt, in-flight calls get this long before they are cancelled


class Pipeline:
    """Runs until `stop()` or a halt; `run()` returns the HaltError, or None after a clean stop.

    It consumes from `source` (bridge.kafka.protocols.Source: confluent-kafka in production, the
    in-memory broker in tests); `rebalance` (bridge.pipeline.rebalance) is the source's
    rebalance listener."""

    def __init__(
        self,
        *,
        config: BridgeConfig,
        source: Source,
        decoder: EventDecoder,
        rules: EventRules,
        deliver: Deliver,
        guard: Guard,
        dlq: DeadLetterSink | None,
        metrics: Metrics | None = None,
        health: HealthState | None = None,
        on_share: Callable[[float], None] | None = None,
        tracing: Tracing = NO_TRACING,
        outcomes: OutcomeWriter | None = None,
        in_flight: InFlightLimit | None = None,
        rate: RateHold | None = None,
    ) -> None:
        settings = config.pipeline
        self.policy = CommitPolicy.from_settings(settings)
        self._batch = settings.batch_size
        self._read_ahead = ReadAhead(
            bound=settings.read_ahead_bytes, max_messages=settings.max_buffered_per_partition
        )
        self._prefetch = schema_prefetch(decoder)  # registry schemas, fetched off the loop
        self._metrics = metrics or NullMetrics()
        self._rate_share = RateShare(on_share, self._metrics.rate_share)
        self._tally = EventTally(self._metrics)
        self._health = health or HealthState()
        breaker = DlqBreaker(
            max_consecutive=config.dlq.max_consecutive,
            max_ratio=config.dlq.max_ratio,
            window=config.dlq.ratio_window,
        )
        self.fence = StallFence(blocked=self._commits_stalled)
        self._dead_letters = DeadLetters(
            sink=dlq,
            fence=self.fence.wait,
            breaker=breaker,
            metrics=self._metrics,
            halt=self._halt,
            on_written=self._dead_lettered,
        )
        self.tracker = OffsetTracker(metadata_max_bytes=settings.commit_metadata_max_bytes)
        self.dispatcher = Dispatcher(
            deliver=deliver,
            on_finished=self._finished,
            max_in_flight=settings.max_in_flight,
            guard=guard,
            on_skip=self._metrics.skipped,
            on_halt=self._halt,
            on_not_found=self._metrics.contact_not_found,
            contact_wait=ContactWait(seconds=settings.contact_wait_seconds),
            identity_capacity=settings.identity_capacity,
            fence=self.fence.wait,
            on_outcome=None if outcomes is None else outcomes.add,
            enroll_window=settings.enroll_batch_seconds,
            in_flight=in_flight,
        )
        self.lockstep: Lockstep[Buffered] = Lockstep(
            max_skew=settings.max_skew_seconds, max_idle=settings.max_idle_seconds
        )
        self.partitions = Partitions(self.tracker, self.lockstep)
        self._intake = Intake(
            decoder=decoder,
            rules=rules,
            tracker=self.tracker,
            partitions=self.partitions,
            lockstep=self.lockstep,
            tally=self._tally,
            submit=self.dispatcher.submit,
            finished=self._finished,
            count=self._dead_letters.count,
            halt=self._halt,
            tracing=tracing,
        )
        self._outcomes = outcomes
        if outcomes is not None:
            outcomes.bind(self._finished)
        self._source = source
        self._committer = Committer(self.tracker, self._source.commit, on_committed=self._committed)
        source.on_unreachable = self._committer.broker_away
        self._poll_wait = PollWait.of(self.tracker, self.policy, self.dispatcher, rate)
        self.rebalance = Rebalance(
            partitions=self.partitions,
            lockstep=self.lockstep,
            tracker=self.tracker,
            dispatcher=self.dispatcher,
            rate_share=self._rate_share,
            tally=self._tally,
            health=self._health,
            metrics=self._metrics,
            revoke_grace=self.policy.revoke_grace_seconds,
            waiting=lambda: self.halted is None and not self._closing,
        )
        self._reporter = Reporter(
            metrics=self._metrics,
            source=source,
            dispatcher=self.dispatcher,
            lockstep=self.lockstep,
            partitions=self.partitions,
            rate_share=self._rate_share,
        )
        self._stop = asyncio.Event()
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.halted: HaltError | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def use_rules(self, rules: EventRules) -> None:
        """Map every message read from now on with `rules` (bridge.pipeline.reload)."""
        self._intake.use_rules(rules)

    def stop(self) -> None:
        """Ask for a clean shutdown (SIGTERM/SIGINT): finish started work within the grace (buffered
        messages that started nothing are read again after a restart), commit, leave."""
        self._stop.set()

    async def run(self) -> HaltError | None:
        self._loop = asyncio.get_running_loop()
        callback_timeout = self.policy.revoke_grace_seconds + 30
        await self._source.start(self.rebalance, callback_timeout=callback_timeout)
        self._rate_share.counts = await self._source.partition_counts()
        self._health.started = True
        # Commits run when finished work waits (an idle bridge does not wake for them).
        commits = OnDemand("commit", self.policy.interval_seconds, self._commit_tick)
        self.tracker.on_waiting = commits.ask  # nothing is tracked before the poll loop starts
        # The steps in shutdown order, upstream first (bridge.pipeline.stage).
        stages: list[Stage] = [
            Ticker("report", REPORT_SECONDS, self._reporter.report),
            TaskStage("read", asyncio.create_task(self._poll_loop()), self._close_reading),
            self.dispatcher,
            *([] if self._outcomes is None else [Joined("outcomes", self._outcomes.join)]),
            self._dead_letters,
            commits,
            Ticker("fence", self.fence.tick, self.fence.step),
        ]
        await self._stop.wait()
        await self._shutdown(stages)
        return self.halted

    async def _shutdown(self, stages: list[Stage]) -> None:
        """Each step closed and joined in turn within one grace, terminated if it ran out; then
        the final commit of what is done (buffered messages are read again)."""
        grace = self.policy.shutdown_grace_seconds
        if self.halted is not None:
            grace = min(grace, HALT_GRACE_SECONDS)
        deadline = self._committer.deadline(grace)  # the final commit may retry until then
        terminated = await shut_down(stages, grace)
        if {self.dispatcher.name, "outcomes", self._dead_letters.name} & set(terminated):
            log.warning("shutdown grace of %.0fs ran out; unfinished messages are re-read", grace)
        self._tally.flush()
        committed = await self._committer.commit_final(deadline)
        log.info("final commit: %s", {f"{t}/{p}": c.offset for (t, p), c in committed.items()})
        await self._source.close()

    def _close_reading(self) -> None:
        """Read nothing more; started messages finish, later ones start nothing (read again)."""
        self._closing = True
        for part in self.partitions:
            if part.reading:
                part.stop_starting()

    def _halt(self, exc: HaltError) -> None:
        if self.halted is None:
            self.halted = exc
            log.error("halted: %s: %s", type(exc).__name__, exc)
            self._health.halt(f"{type(exc).__name__}: {exc}")
            self._metrics.halted(True)
        self._stop.set()

    # -- consuming -----------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        try:
            while not self._stop.is_set():
                records, ends = await self._source.consume(self._batch, self._poll_wait())
                self._health.beat()
                if self._prefetch is not None and records:
                    await self._prefetch(records)
                if not self._closing:  # else the next run reads them
                    for record in records:
                        self._intake.accept(record)
                for tp in ends:
                    self.lockstep.at_end(tp)
                self._tally.flush()
                self._intake.advance()
                await self._report_lags()
                self._admit()
                await self._backpressure()
        except Exception as exc:
            self._halt(HaltError(f"Kafka consumer failed: {type(exc).__name__}: {exc}"))

    async def _report_lags(self) -> None:
        """Tell the lockstep which empty partitions still have data on its way (only needed while
        it holds messages back: events that make no call never enter it)."""
        if not self.lockstep.buffered():
            return
        paused = self.partitions.paused()
        empty = [tp for tp in self.lockstep.waiting_for_data() if tp not in paused]
        if empty:
            lags = await self._source.fetch_lags(empty)
            for tp in empty:
                self.lockstep.set_lag(tp, lags.get(tp))

    def _admit(self) -> None:
        """Hand the messages the lockstep lets go to the dispatcher, oldest event first."""
        assert self._loop is not None
        now = self._loop.time()
        admitted = self.lockstep.admit(now)
        if self.lockstep.blocked_by_paused() and self.dispatcher.parked():
            # A paused partition's calls may be parked waiting for a contact that only a later
            # message of another partition creates: waiting for it would never end.
            admitted += self.lockstep.admit(now, ignore_paused=True)
        for message, calls in admitted:
            message.trace.waited("lockstep")
            if not message.stopped:
                self.dispatcher.submit(message, calls)

    async def _backpressure(self) -> None:
        """Pause partitions past the read-ahead bound, resume those back within it."""
        held = self.partitions.held()
        pause, resume = self._read_ahead.decide(held, self.partitions.paused())
        if pause:
            await self._source.pause(pause)
            self.partitions.set_paused(pause, True)
        if resume:
            await self._source.resume(resume)
            self.partitions.set_paused(resume, False)

    # -- outcomes ------------------------------------------------------------------------------

    def _finished(self, message: InFlight) -> None:
        """Every call of the message is done (dispatcher callback, or decode/map failure)."""
        if message.cancelled:
            return
        poison = message.failure is not None
        if not self._dead_letters.count(poison):
            return
        if not poison:
            self._done(message, "skipped" if message.skipped else "ok")
            return
        self._dead_letters.send(message)

    async def _dead_lettered(self, message: InFlight) -> None:
        self._done(message, "dlq")
        # Commit at once: a crash before the next commit would write the record again.
        await self._committer.commit([message.tp])

    def _done(self, message: InFlight, outcome: str) -> None:
        message.trace.finish(outcome, message.failure.error if message.failure else None)
        if message.skipped:
            r = message.record
            event_id = message.envelope.id if message.envelope is not None else None
            log.info(
                "skipped %d call(s) for event %s (%s partition %d offset %d): %s",
                len(message.skipped),
                event_id,
                r.topic,
                r.partition,
                r.offset,
                ", ".join(message.skipped),
                extra=message.trace.log_fields(),
            )
        part = self.partitions.get(message.tp)
        if part is not None:
            part.done(message.offset)
        self.tracker.done(message.tp, message.offset)
        event_type = message.envelope.type if message.envelope is not None else None
        self._tally.count(message.record.topic, event_type, outcome)

    # -- commits -----------------------------------------------------------------------------------

    def _commits_stalled(self) -> bool:
        return self._committer.stalled()

    async def _commit_tick(self) -> None:
        """Commit on its own timer: nothing else here waits for the consumer's thread, which a
        rebalance callback may hold for seconds (the source serves commits meanwhile)."""
        self._tally.flush()  # counted before committed: a crash may count twice, not never
        await self._committer.commit()

    def _committed(self, tp: TopicPartition, offset: int) -> None:
        part = self.partitions.get(tp)
        if part is not None:
            part.position = offset
        self._metrics.committed(tp[0], tp[1], offset)
