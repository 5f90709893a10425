"""The pipeline core on the in-memory broker (bridge.kafka.memory): assignment, commits of the
finished prefix, revoke, loss, backpressure, the event-time lockstep and poison, without Kafka.

Each scenario runs the real Pipeline (dispatcher, lockstep, tracker, committer, DLQ producer) on
a MemorySource; only Meisa is a fake that records calls and can hold one until a test releases
it. Waits are for conditions, never for time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from bridge import dlq
from bridge.config import BridgeConfig
from bridge.dlq import DeadLetterProducer
from bridge.errors import (
    BrokerError,
    DeadLetterWriteFailed,
    DecodeError,
    MappingError,
    PoisonError,
    RejectedCall,
)
from bridge.events import Envelope, Record
from bridge.kafka.memory import MemoryBroker, MemoryProducer, MemorySource
from bridge.kafka.protocols import OffsetAndMetadata, TopicPartition
from bridge.meisa.calls import MeisaCall
from bridge.observability import Metrics
from bridge.pipeline.dispatcher import Slot
from bridge.pipeline.finished import decode
from bridge.pipeline.message import Sending
from bridge.pipeline.pipeline import Pipeline
from bridge.settings import DlqSettings, PipelineSettings

TP = ("events", 0)
GROUP = "test"


class JsonDecoder:
    def decode(self, **kw: Any) -> Envelope:
        try:
            data = orjson.loads(kw["value"])
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"not JSON: {exc}") from None
        coords = {k: kw[k] for k in ("topic", "partition", "offset", "key", "timestamp")}
        return Envelope(**coords, data=data, time=data.get("time"), type=data.get("type"))


class Rules:
    """One upsert per event for `data.who`; `data.bad` fails mapping in rule "signup"; events
    of another type than "signup" make no call."""

    def map(self, envelope: Envelope, *, replay: bool = False) -> list[MeisaCall]:
        data = envelope.data
        if envelope.type not in (None, "signup"):
            return []
        if data.get("bad"):
            raise MappingError("data.email: missing", rule="signup")
        who = str(data["who"])
        body = {"email": f"{who}@example.com", "n": data["n"]}
        return [MeisaCall("upsert", body, contact_key=who, rule="signup", coalesce=False)]


@dataclass
class FakeMeisa:
    """Records each call it is given; holds calls whose n is in `held` until released."""

    sent: list[int] = field(default_factory=list)
    held: dict[int, asyncio.Event] = field(default_factory=dict)
    cancelled: list[int] = field(default_factory=list)
    fail: dict[int, PoisonError] = field(default_factory=dict)
    started: list[int] = field(default_factory=list)

    def hold(self, n: int) -> None:
        self.held[n] = asyncio.Event()

    def release(self, n: int) -> None:
        self.held[n].set()

    async def deliver(self, call: MeisaCall, slot: Slot, sending: Sending) -> object:
        n = int(call.body["n"])
        async with slot:
            self.started.append(n)
            gate = self.held.get(n)
            try:
                if gate is not None:
                    await gate.wait()
            except asyncio.CancelledError:
                self.cancelled.append(n)
                raise
            if n in self.fail:
                raise self.fail[n]
            self.sent.append(n)
        return None


@dataclass
class Harness:
    broker: MemoryBroker
    source: MemorySource
    meisa: FakeMeisa
    pipeline: Pipeline
    task: asyncio.Task[Any]

    def committed(self, tp: tuple[str, int] = TP) -> int | None:
        return self.broker.committed(GROUP, tp)


def event(n: int, who: str = "ann", *, time: str | None = None, **extra: Any) -> bytes:
    return orjson.dumps({"n": n, "who": who, "time": time, **extra})


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the pipeline run until `condition` holds (a generous bound, not a speed check)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    assert condition(), what


@asynccontextmanager
async def running(
    *,
    partitions: int = 1,
    producer: MemoryProducer | None = None,
    on_share: Callable[[float], None] | None = None,
    broker: MemoryBroker | None = None,
    metrics: Metrics | None = None,
    source_type: type[MemorySource] = MemorySource,
    **settings: Any,
) -> AsyncIterator[Harness]:
    broker = broker or MemoryBroker()
    broker.create_topic("events", partitions)
    broker.create_topic("dlq", 1)
    source = source_type(broker, ["events"], GROUP)
    meisa = FakeMeisa()
    config = BridgeConfig(
        topics=("events",),
        pipeline=PipelineSettings(**{"commit_interval_seconds": 0.02, **settings}),
        dlq=DlqSettings(topic="dlq", max_consecutive=0, max_ratio=0),
    )
    pipeline = Pipeline(
        config=config,
        source=source,
        decoder=JsonDecoder(),
        rules=Rules(),
        deliver=meisa.deliver,
        guard=lambda call, event_time: None,
        dlq=DeadLetterProducer(producer or MemoryProducer(broker), "dlq"),
        on_share=on_share,
        metrics=metrics,
    )
    task = asyncio.create_task(pipeline.run())
    harness = Harness(broker, source, meisa, pipeline, task)
    try:
        yield harness
    finally:
        for gate in meisa.held.values():
            gate.set()
        pipeline.stop()
        await asyncio.wait_for(task, 10)


async def test_every_assigned_partition_is_read_and_its_finished_offsets_committed() -> None:
    async with running(partitions=2) as h:
        for n in range(3):
            h.broker.produce("events", event(n, f"p{n}"), partition=0)
        for n in range(3, 5):
            h.broker.produce("events", event(n, f"p{n}"), partition=1)
        await until(lambda: h.committed() == 3 and h.committed(("events", 1)) == 2, "committed")
    assert sorted(h.meisa.sent) == [0, 1, 2, 3, 4]
    assert h.source.closed


async def test_the_commit_never_passes_an_unfinished_offset() -> None:
    async with running() as h:
        h.meisa.hold(1)
        for n in range(4):  # different people: 2 and 3 finish while 1 is held
            h.broker.produce("events", event(n, f"p{n}"))
        await until(lambda: sorted(h.meisa.sent) == [0, 2, 3], "the others finished")
        await until(lambda: h.committed() == 1, "the finished prefix committed")
        for _ in range(5):  # further commit ticks: still nothing past the held message
            await h.pipeline._committer.commit()
        assert h.committed() == 1
        h.meisa.release(1)
        await until(lambda: h.committed() == 4, "everything committed once 1 finished")


async def test_a_new_owner_does_not_resend_what_finished_past_a_held_message() -> None:
    broker = MemoryBroker()
    async with running(broker=broker) as first:
        first.meisa.hold(0)
        for n in range(5):  # different people: 1..4 finish while 0 is held
            broker.produce("events", event(n, f"p{n}"))
        await until(lambda: sorted(first.meisa.sent) == [1, 2, 3, 4], "the others finished")
        await until(lambda: _finished_committed(broker) == (0, [(1, 4)]), "1..4 in the metadata")
        first.source.lose([TP])  # its owner stalls past the session timeout, or dies
        await until(lambda: TP not in first.source.assigned, "the loss was handled")
    async with running(broker=broker) as second:
        await until(lambda: second.committed() == 5, "the new owner committed everything")
    assert second.meisa.sent == [0]


def _finished_committed(broker: MemoryBroker) -> tuple[int, list[tuple[int, int]]] | None:
    found = broker.committed_metadata(GROUP, TP)
    return None if found is None else (found.offset, decode(found.offset, found.metadata))


async def test_events_that_make_no_call_are_done_at_once_but_never_committed_past_a_held_one() -> (
    None
):
    async with running() as h:
        h.meisa.hold(1)
        h.broker.produce("events", event(0, type="page.viewed"))
        h.broker.produce("events", event(1, "p1"))
        for n in range(2, 5):
            h.broker.produce("events", event(n, type="page.viewed"))
        await until(lambda: h.committed() == 1, "the view before the held event committed")
        await until(lambda: h.pipeline.tracker.last_done(TP) == 4, "the later views done")
        await h.pipeline._committer.commit()
        assert h.committed() == 1  # the views after the held event wait for it
        h.meisa.release(1)
        await until(lambda: h.committed() == 5, "everything committed once 1 finished")
    assert h.meisa.sent == [1]


async def test_finished_events_are_counted_by_type_and_outcome_before_their_commit() -> None:
    metrics = Metrics()
    async with running(metrics=metrics) as h:
        h.broker.produce("events", event(0, type="page.viewed"))
        h.broker.produce("events", event(1, "p1", type="signup"))
        h.broker.produce("events", None)  # a tombstone
        h.broker.produce("events", event(3, type="page.viewed"))
        await until(lambda: h.committed() == 4, "all committed")
        text = metrics.render().decode()
    counted = 'meisa_bridge_events_total{outcome="%s",topic="events",type="%s"} %s'
    assert counted % ("ok", "page.viewed", "2.0") in text
    assert counted % ("ok", "signup", "1.0") in text
    assert counted % ("tombstone", "", "1.0") in text


async def test_a_revoke_lets_started_work_finish_commits_it_and_starts_nothing_more() -> None:
    async with running(revoke_grace_seconds=30) as h:
        h.meisa.hold(2)
        for n in range(5):  # one person: 3 and 4 queue behind 2 in the person's lane
            h.broker.produce("events", event(n))
        await until(lambda: h.meisa.sent == [0, 1] and 2 in h.meisa.held, "2 in flight")
        await until(lambda: h.pipeline.dispatcher.sending == 1, "2 holds a slot")
        h.source.revoke([TP])
        await until(lambda: h.pipeline.partitions.reading(TP) is None, "the revoke started")
        h.meisa.release(2)
        await until(lambda: TP not in h.source.assigned, "the revoke finished")
        assert h.committed() == 3  # 0..2 done; the new owner reads 3 and 4
        assert h.meisa.sent == [0, 1, 2]


async def test_a_lost_partition_commits_nothing_and_cancels_its_calls() -> None:
    async with running(commit_interval_seconds=3600) as h:
        h.meisa.hold(1)
        for n in range(3):
            h.broker.produce("events", event(n))
        await until(lambda: h.meisa.sent == [0] and h.pipeline.dispatcher.sending == 1, "1 sent")
        h.source.lose([TP])
        await until(lambda: h.meisa.cancelled == [1], "the call in flight was cancelled")
        await until(lambda: TP not in h.source.assigned, "the loss was handled")
    assert h.committed() is None  # another member may own it: not even the final commit
    assert h.meisa.sent == [0]


async def test_backpressure_pauses_a_full_partition_and_resumes_it_once_drained() -> None:
    async with running(max_buffered_per_partition=4, batch_size=2) as h:
        h.meisa.hold(0)
        for n in range(20):
            h.broker.produce("events", event(n))
        await until(lambda: TP in h.source.paused, "paused at 4 unfinished messages")
        fetched = h.source.assigned[TP]
        assert fetched < 20  # a paused partition is not fetched
        h.meisa.release(0)
        await until(lambda: h.committed() == 20, "everything delivered once resumed")
        await until(lambda: TP not in h.source.paused, "resumed once drained")
    assert h.meisa.sent == list(range(20))


async def test_past_the_read_ahead_bound_the_fullest_partition_pauses_a_quiet_one_reads_on() -> (
    None
):
    p1 = ("events", 1)
    # About 3.8 KB counted per message: the bound holds about ten, each partition's reserve two.
    async with running(partitions=2, read_ahead_bytes=40_000, batch_size=2) as h:
        h.meisa.hold(0)
        for n in range(30):  # one person: everything after 0 waits in its lane
            h.broker.produce("events", event(n), partition=0)
        await until(lambda: TP in h.source.paused, "the backlog's partition paused")
        assert h.source.assigned[TP] < 30  # not read any further
        for n in range(100, 102):  # within the quiet partition's reserve
            h.broker.produce("events", event(n, f"q{n}"), partition=1)
        await until(lambda: h.source.assigned[p1] == 2, "the quiet partition read on")
        assert p1 not in h.source.paused
        h.meisa.release(0)
        await until(lambda: h.committed() == 30 and h.committed(p1) == 2, "all done")
        await until(lambda: not h.source.paused, "resumed")


async def test_one_persons_events_reach_meisa_in_event_time_order_across_partitions() -> None:
    def at(second: int) -> str:
        return f"2026-01-01T00:00:{second:02d}Z"

    async with running(partitions=2) as h:
        # Each partition is fetched whole before the next, so neither the fetch order (0 1 3 2)
        # nor taking the partitions in turn (0 2 1 3) is the event-time order.
        h.broker.produce("events", event(0, time=at(10)), partition=0)
        h.broker.produce("events", event(1, time=at(20)), partition=0)
        h.broker.produce("events", event(3, time=at(40)), partition=0)
        h.broker.produce("events", event(2, time=at(30)), partition=1)
        await until(lambda: len(h.meisa.sent) == 4, "all delivered")
    assert h.meisa.sent == [0, 1, 2, 3]


class UnsureSource(MemorySource):
    """A consumer that cannot tell whether a partition has more data: no end-of-partition
    events, no lags (the lockstep then waits `max_idle` for an empty partition)."""

    def _fetch(self, max_messages: int) -> tuple[list[Record], list[TopicPartition]]:
        return super()._fetch(max_messages)[0], []

    async def fetch_lags(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {}


async def test_events_that_make_no_call_move_their_partition_on_in_event_time() -> None:
    def at(second: int) -> str:
        return f"2026-01-01T00:00:{second:02d}Z"

    async with running(partitions=2, source_type=UnsureSource, max_idle_seconds=60) as h:
        h.broker.produce("events", event(0, time=at(10)), partition=0)
        h.broker.produce("events", event(90, time=at(5), type="view"), partition=1)
        await until(lambda: h.committed(("events", 1)) == 1, "the page view is done")
        await asyncio.sleep(0.2)
        assert h.meisa.sent == [], "partition 1 is only at 00:05: it may still bring 00:07"
        h.broker.produce("events", event(91, time=at(20), type="view"), partition=1)
        await until(lambda: h.meisa.sent == [0], "partition 1 is past 00:10: 0 goes")


async def test_poison_goes_to_the_dlq_with_its_stage_and_rule_and_its_offset_is_committed() -> None:
    async with running() as h:
        h.meisa.fail[2] = RejectedCall("bad field", status=400, endpoint="POST /contacts/upsert/")
        h.broker.produce("events", b"{not json")
        h.broker.produce("events", event(1, bad=True))
        h.broker.produce("events", event(2))
        h.broker.produce("events", event(3))
        await until(lambda: h.committed() == 4, "poison dead-lettered, all committed")
    letters = [dict(r.headers) for r in h.broker.log("dlq", 0)]
    assert [(d[dlq.STAGE], d[dlq.RULE], d[dlq.OFFSET]) for d in letters] == [
        (b"decode", b"", b"0"),
        (b"map", b"signup", b"1"),
        (b"deliver", b"signup", b"2"),
    ]
    assert h.broker.log("dlq", 0)[0].value == b"{not json"  # the original bytes
    assert h.meisa.sent == [3]


async def test_a_dead_lettered_message_is_committed_without_waiting_for_the_commit_timer() -> None:
    async with running(commit_interval_seconds=3600) as h:
        h.broker.produce("events", event(0, bad=True))
        await until(lambda: h.committed() == 1, "committed right after the DLQ write")
        assert len(h.broker.log("dlq", 0)) == 1


def freeze(h: Harness, hold: float) -> None:
    """As if the process had been stopped for 10 s: the fence holds for `hold` seconds."""
    fence = h.pipeline.fence
    fence.hold = hold
    now = fence.now()
    fence.observe(now - 10)
    fence.observe(now)


async def test_after_a_freeze_poison_waits_at_the_fence_and_then_goes_to_the_dlq() -> None:
    async with running() as h:
        freeze(h, 0.5)
        h.broker.produce("events", b"{not json")
        await asyncio.sleep(0.2)
        assert h.broker.log("dlq", 0) == [], "held while the group may be moving it elsewhere"
        await until(lambda: h.committed() == 1, "written once the fence opened, then committed")
        assert len(h.broker.log("dlq", 0)) == 1


async def test_a_process_woken_from_a_freeze_writes_no_dead_letter_for_a_partition_it_lost() -> (
    None
):
    """Its new owner writes its own record: a second one would be a duplicate in the DLQ."""
    async with running() as h:
        freeze(h, 0.5)
        h.broker.produce("events", b"{not json")
        await asyncio.sleep(0.1)
        h.source.lose([TP])
        await until(lambda: TP not in h.source.assigned, "the loss was handled")
        await asyncio.sleep(0.8)  # past the hold
        assert h.broker.log("dlq", 0) == []
    assert h.committed() is None


async def test_a_dlq_write_that_fails_halts_without_committing_the_poison() -> None:
    broker_refusing = MemoryProducer(MemoryBroker())
    broker_refusing.refuse = "message too large"
    async with running(producer=broker_refusing) as h:
        h.broker.produce("events", event(0))
        h.broker.produce("events", b"{not json")
        halted = await asyncio.wait_for(h.task, 10)
    assert isinstance(halted, DeadLetterWriteFailed)
    assert h.committed() == 1  # the good message before it, never the poison


async def test_a_failed_commit_is_retried_on_the_next_tick() -> None:
    async with running() as h:
        h.source.fail_commits = True
        h.broker.produce("events", event(0))
        await until(lambda: h.meisa.sent == [0], "delivered")
        await h.pipeline._committer.commit()
        assert h.committed() is None
        h.source.fail_commits = False
        await until(lambda: h.committed() == 1, "committed on a later tick")


async def test_no_new_call_goes_out_while_finished_work_cannot_be_committed() -> None:
    """Work done while commits fail could not be recorded, and the partition's next reader would
    do it again: once commits fail, new calls wait until one goes through."""
    async with running() as h:
        h.source.fail_commits = True
        h.broker.produce("events", event(0, "ann"))
        await until(lambda: h.meisa.sent == [0], "delivered")
        await asyncio.sleep(2.0)  # past the stall limit (0.2 s at most) and a fence tick
        assert h.pipeline.fence.holding(h.pipeline.fence.now())
        h.broker.produce("events", event(1, "bob"))
        await asyncio.sleep(0.5)
        assert h.meisa.sent == [0]
        h.source.fail_commits = False
        await until(lambda: h.meisa.sent == [0, 1], "sent once a commit went through")
        await until(lambda: h.committed() == 2, "both committed")


class HeldCommitSource(MemorySource):
    """Commits wait at `gate` while it is set; then they fail (`fail`) or keep only `keep`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.fail = True
        self.keep: set[TopicPartition] = set()

    async def commit(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        gate = self.gate
        if gate is None:
            return await super().commit(offsets)
        self.entered.set()
        await gate.wait()
        self.gate = None
        if self.fail:
            raise BrokerError("commit refused (held)", unreachable=True)
        return await super().commit({tp: o for tp, o in offsets.items() if tp in self.keep})


@pytest.mark.parametrize("fail", [True, False], ids=["refused", "partial"])
async def test_a_commit_that_fails_for_a_partition_lost_meanwhile_does_not_hold_the_fence(
    fail: bool,
) -> None:
    """The commit timer runs when finished work waits. A commit refused (or answered for only
    some partitions) for a partition lost while it was in flight leaves nothing to offer again;
    the timer must still run once more, or the fence that the refusal closed never opens."""
    lost, kept = ("events", 0), ("events", 1)
    async with running(partitions=2, source_type=HeldCommitSource) as h:
        source = h.source
        assert isinstance(source, HeldCommitSource)
        source.fail = fail
        source.gate = gate = asyncio.Event()
        h.broker.produce("events", event(0, "ann"), partition=0)
        await asyncio.wait_for(source.entered.wait(), 10)
        h.source.lose([lost])
        await until(lambda: lost not in h.source.assigned, "the loss was handled")
        gate.set()
        await until(lambda: source.gate is None, "the held commit answered")
        await asyncio.sleep(0.5)  # past the stall limit and a fence step
        assert not h.pipeline._committer.stalled()
        h.broker.produce("events", event(1, "bob"), partition=kept[1])
        await until(lambda: h.meisa.sent == [0, 1], "a new call goes out")
        await until(lambda: h.committed(kept) == 1, "and is committed")


async def test_a_lost_broker_connection_holds_new_calls_until_a_commit_goes_through() -> None:
    """Nothing waits for a commit when the client reports its broker gone (the bridge was idle,
    or waiting for the rate budget or a partition's first fetch): the fence closes at once, not
    only once finished work fails to commit, which lets a whole burst out first."""
    async with running() as h:
        h.broker.produce("events", event(0, "ann"))
        await until(lambda: h.committed() == 1, "delivered and committed")
        h.source.fail_commits = True
        h.source.unreachable()
        h.broker.produce("events", event(1, "bob"))
        await asyncio.sleep(0.5)
        assert h.meisa.sent == [0], "held: it could not be committed"
        assert h.committed() == 1
        h.source.fail_commits = False  # the broker is back: the next commit goes through
        await until(lambda: h.meisa.sent == [0, 1], "sent once a commit went through")
        await until(lambda: h.committed() == 2, "and committed")


async def test_a_new_group_losing_its_broker_before_a_first_commit_holds_new_calls() -> None:
    """No commit to offer again yet: the proving commit offers the first message read, so the
    fence stays closed while the broker is away rather than opening on an empty commit."""
    async with running() as h:
        h.meisa.hold(0)
        h.broker.produce("events", event(0, "ann"))
        await until(lambda: h.meisa.started == [0], "ann's call on the wire")
        h.source.fail_commits = True
        h.source.unreachable()
        h.broker.produce("events", event(1, "bob"))
        await asyncio.sleep(0.5)
        assert h.meisa.sent == [], "bob held: nothing could be committed"
        h.meisa.release(0)  # ann's call started before the broker went: it ends
        await until(lambda: h.meisa.sent == [0], "ann's call done")
        await asyncio.sleep(0.3)
        assert h.meisa.sent == [0], "bob still held after ann's call ended"
        assert h.committed() is None
        h.source.fail_commits = False
        await until(lambda: h.meisa.sent == [0, 1], "bob sent once a commit went through")
        await until(lambda: h.committed() == 2, "and committed")


async def test_a_lost_connection_that_comes_back_at_once_holds_nothing_long() -> None:
    async with running() as h:
        h.broker.produce("events", event(0, "ann"))
        await until(lambda: h.committed() == 1, "delivered and committed")
        h.source.unreachable()  # a connection dropped and made again (its commit goes through)
        h.broker.produce("events", event(1, "bob"))
        await until(lambda: h.meisa.sent == [0, 1], "sent after the proving commit")
        await until(lambda: h.committed() == 2, "and committed")


async def test_the_rate_share_follows_the_partitions_this_member_owns() -> None:
    shares: list[float] = []
    async with running(partitions=4, on_share=shares.append) as h:
        await until(lambda: shares[-1:] == [1.0], "all four partitions owned")
        h.source.revoke([("events", 0), ("events", 1)])
        await until(lambda: shares[-1:] == [0.5], "two of four partitions owned")
        h.source.lose([("events", 2)])
        await until(lambda: shares[-1:] == [0.25], "one of four partitions owned")


@pytest.mark.parametrize("partitions", [1, 3])
async def test_a_restart_reads_from_the_committed_offset(partitions: int) -> None:
    async with running(partitions=partitions) as h:
        h.broker.produce("events", event(0))
        await until(lambda: h.committed() == 1, "committed")
    source = MemorySource(h.broker, ["events"], GROUP)
    meisa = FakeMeisa()
    pipeline = Pipeline(
        config=BridgeConfig(topics=("events",)),
        source=source,
        decoder=JsonDecoder(),
        rules=Rules(),
        deliver=meisa.deliver,
        guard=lambda call, event_time: None,
        dlq=None,
    )
    task = asyncio.create_task(pipeline.run())
    h.broker.produce("events", event(1))
    await until(lambda: meisa.sent == [1], "only the new event")
    pipeline.stop()
    assert await asyncio.wait_for(task, 10) is None
    assert h.broker.committed(GROUP, TP) == 2


class WaitRecordingSource(MemorySource):
    """Records how long each consume() was allowed to block."""

    waits: list[float]

    async def consume(
        self, max_messages: int, wait: float
    ) -> tuple[list[Record], list[TopicPartition]]:
        self.waits = [*getattr(self, "waits", []), wait]
        return await super().consume(max_messages, wait)


async def test_consume_blocks_briefly_while_work_is_in_flight_so_commits_are_not_held() -> None:
    async with running(source_type=WaitRecordingSource, commit_interval_seconds=0.04) as h:
        source = h.source
        assert isinstance(source, WaitRecordingSource)
        await until(lambda: len(getattr(source, "waits", [])) >= 2, "polled while idle")
        assert set(source.waits) == {0.1}, "idle: the long wait bounds shutdown latency only"
        h.meisa.hold(0)
        h.broker.produce("events", event(0, "ann"))
        await until(h.pipeline.tracker.busy, "a message in flight")
        idle = len(source.waits)
        await until(lambda: len(source.waits) >= idle + 3, "polled while a call is in flight")
        assert set(source.waits[idle + 1 :]) == {0.02}, "half the commit interval while busy"
        h.meisa.release(0)
        await until(lambda: h.committed() == 1, "committed")
        await until(lambda: source.waits[-1] == 0.1, "idle again once committed")
