"""The live consumer (bridge.kafka.protocols.Source) on confluent-kafka, owned by one thread.

Every consumer call (consume, commit, pause, resume, close) runs on that thread, so the asyncio
loop never blocks on librdkafka and the consumer is never touched from two threads. Rebalance
callbacks run on it too, inside `consume()`; they hand over to the listener on the loop and wait
for its answer. Either group protocol (bridge.kafka.properties) applies the incremental
assign/unassign after each callback returns. An assignment first reads the group's committed
offsets and metadata of the partitions (the finished offsets the last owner recorded).

A rebalance callback can wait seconds (a revoke lets started calls finish), and the consumer
thread is inside it all that time. Commits therefore go through a mailbox that the thread serves
both as an ordinary task and while it waits for a callback's handler: the partitions this member
keeps go on committing their finished work during a long revoke, instead of piling up work that a
crash in that window would hand to the next owner.

`close()` is the one call that runs on a thread of its own, a daemon one, and is waited for at
most the callback timeout plus `CLOSE_SLACK_SECONDS`: librdkafka's close can hang after it has
left the group (confluent-kafka-python issue 1667), and a stuck executor thread would also hold
the process at exit. Nothing else touches the consumer by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTopicPartition

from bridge.errors import BrokerError
from bridge.events import Record
from bridge.kafka.properties import consumer_config
from bridge.kafka.protocols import OffsetAndMetadata, RebalanceListener, TopicPartition
from bridge.observability import RepeatLimiter

log = logging.getLogger("bridge.pipeline.consumer")

ERROR_REPORT_SECONDS = 30.0  # a broker outage repeats one error every poll: report it this often
COMMITTED_TIMEOUT = 10.0  # reading the committed metadata on assignment; past it: none, redo
CLOSE_SLACK_SECONDS = 15.0  # close() may take the revoke callback's time plus this
CLOSE_WATCHDOG_SLACK_SECONDS = 15.0  # past close()'s own bound: the process is frozen, exit
CALLBACK_SERVE_SECONDS = 0.05  # how often a thread waiting for a callback serves commits
T = TypeVar("T")
Offsets = dict[TopicPartition, OffsetAndMetadata]


@dataclass(frozen=True, slots=True)
class _CommitRequest:
    offsets: Offsets
    epoch: int
    future: asyncio.Future[Offsets]


def record_of(message: Message) -> Record:
    """A confluent-kafka Message as a plain Record (built for every message: kept lean; a
    consumed message's topic, partition and offset are always set, key and value are bytes)."""
    kind, ts = message.timestamp()
    key, value, headers = message.key(), message.value(), message.headers()
    return Record(
        message.topic(),  # type: ignore[arg-type]
        message.partition(),  # type: ignore[arg-type]
        message.offset(),  # type: ignore[arg-type]
        key if key is None or type(key) is bytes else _bytes(key),
        value if value is None or type(value) is bytes else _bytes(value),
        () if headers is None else _headers(headers),
        ts if kind != 0 else None,  # 0: TIMESTAMP_NOT_AVAILABLE
    )


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _headers(
    raw: Mapping[str, str | bytes | None] | Iterable[tuple[str, str | bytes | None]] | None,
) -> tuple[tuple[str, bytes | None], ...]:
    items = raw.items() if isinstance(raw, Mapping) else (raw or ())
    return tuple((k, _bytes(v)) for k, v in items)


def _tps(partitions: Iterable[KafkaTopicPartition]) -> list[TopicPartition]:
    return [(p.topic, p.partition) for p in partitions]


# The broker or the group's coordinator out of reach (stopping, restarting, a lost connection):
# the same commit may go through once it is back. Any other refusal is an answer.
_UNREACHABLE = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._WAIT_COORD,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
    }
)


# The client lost its connection to a broker, or to all of them: until a commit goes through
# again, work done now may never be committed (the pipeline's `on_unreachable`).
_AWAY = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN})


def broker_error(exc: KafkaException) -> BrokerError:
    """The client's exception as the bridge's, with librdkafka's own words."""
    err = exc.args[0] if exc.args else None
    if not isinstance(err, KafkaError):
        return BrokerError(str(exc))
    return BrokerError(err.str(), unreachable=err.code() in _UNREACHABLE)


class KafkaSource:
    """Subscribe, consume batches, pause/resume, commit explicit offsets, close."""

    def __init__(self, kafka: Mapping[str, Any], topics: Iterable[str]) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-consumer")
        self._conf = consumer_config(kafka) | {"error_cb": self._client_error}
        self._topics = list(topics)
        self._consumer: Any = None
        self._listener: RebalanceListener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._callback_timeout = 60.0
        # Bumped by every rebalance callback. A commit computed before a rebalance may hold stale
        # offsets (older than the revoke's own commit, or for partitions given away): dropped.
        self._epoch = 0
        self._metadata = True  # False once the broker refused the metadata as too large
        self._mailbox: deque[_CommitRequest] = deque()  # appended on the loop, served here
        self._closing = False
        self._errors = RepeatLimiter(ERROR_REPORT_SECONDS)
        self.group_id = str(self._conf["group.id"])
        # Called on the loop when the client reports a broker out of reach (the pipeline closes
        # its fence until a commit goes through).
        self.on_unreachable: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"KafkaSource(topics={self._topics!r}, group_id={self.group_id!r})"

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def start(self, listener: RebalanceListener, *, callback_timeout: float) -> None:
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self._callback_timeout = callback_timeout
        await self._run(self._start)

    def _start(self) -> None:
        self._consumer = Consumer(self._conf, logger=logging.getLogger("bridge.kafka"))
        self._consumer.subscribe(
            self._topics,
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._lost,
        )

    def _on_loop(self, handler: Coroutine[Any, Any, T], *, serve: bool = True) -> T:
        """Run a listener handler on the loop from the consumer thread and wait for its result,
        serving the commits the loop asks for meanwhile (`serve`: not while partitions are
        lost, when a commit computed before may name partitions another member owns now)."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(handler, self._loop)
        deadline = time.monotonic() + self._callback_timeout
        while True:
            try:
                return future.result(timeout=CALLBACK_SERVE_SECONDS)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    future.cancel()
                    raise
            if serve:
                self._serve_commits()

    def _assigned(self, consumer: Any, partitions: list[KafkaTopicPartition]) -> None:
        assert self._listener is not None
        committed = self._committed(partitions)
        self._on_loop(self._listener.on_assign(_tps(partitions), committed))
        self._epoch += 1

    def _committed(
        self, partitions: list[KafkaTopicPartition]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """The group's committed offsets and metadata; {} when the broker does not answer (the
        finished offsets past the committed one are then sent again, as without metadata)."""
        if not partitions or self._closing:  # close() serves a late assignment: nothing reads it
            return {}
        asked = [KafkaTopicPartition(p.topic, p.partition) for p in partitions]
        try:
            found = self._consumer.committed(asked, timeout=COMMITTED_TIMEOUT)
        except KafkaException as exc:
            log.warning("reading committed offsets failed, finished ones are redone: %s", exc)
            return {}
        return {
            (tp.topic, tp.partition): OffsetAndMetadata(tp.offset, tp.metadata or "")
            for tp in found
            if tp.error is None and tp.offset >= 0
        }

    def _lost(self, consumer: Any, partitions: list[KafkaTopicPartition]) -> None:
        assert self._listener is not None
        self._on_loop(self._listener.on_lost(_tps(partitions)), serve=False)
        self._epoch += 1

    def _revoked(self, consumer: Any, partitions: list[KafkaTopicPartition]) -> None:
        # Commit what finished before giving the partitions away (this thread owns the consumer).
        # Not inside close(): the final commit came just before it, and a commit there meets a
        # group that is tearing the member down (a classic member fenced meanwhile once left
        # close() waiting in librdkafka with the GIL held, the whole process frozen).
        assert self._listener is not None
        offsets = self._on_loop(self._listener.on_revoke(_tps(partitions)))
        if offsets and not self._closing:
            try:
                self._commit(offsets)
            except BrokerError as exc:
                log.warning("commit on revoke failed, the new owner re-reads from earlier: %s", exc)
        self._epoch += 1

    async def consume(
        self, max_messages: int, wait: float
    ) -> tuple[list[Record], list[TopicPartition]]:
        return await self._run(self._consume, max_messages, wait)

    def _client_error(self, err: KafkaError) -> None:
        """The client's error callback (consumer thread, inside consume()): errors it recovers
        from by itself. A lost broker connection is passed on at once: a commit would learn it
        only once it hung or failed, and calls started meanwhile could not be committed."""
        if err.code() in _AWAY and self.on_unreachable is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing left to hold
                self._loop.call_soon_threadsafe(self.on_unreachable)
        held = self._errors.allow(err.code())
        if held is not None:
            log.warning("kafka client: %s (%d more like it before this one)", err.str(), held)

    def _consume(
        self, max_messages: int, timeout: float
    ) -> tuple[list[Record], list[TopicPartition]]:
        messages = self._consumer.consume(num_messages=max_messages, timeout=timeout)
        out, ends = [], []
        for m in messages:
            err = m.error()
            if err is None:
                out.append(record_of(m))
            elif err.code() == KafkaError._PARTITION_EOF:
                ends.append((m.topic(), m.partition()))
            else:
                if err.fatal():
                    raise BrokerError(f"fatal: {err.str()}")
                held = self._errors.allow(err.code())
                if held is not None:
                    log.warning("consumer error: %s (%d more like it before this one)", err, held)
        return out, ends

    async def commit(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        loop = asyncio.get_running_loop()
        request = _CommitRequest(dict(offsets), self._epoch, loop.create_future())
        self._mailbox.append(request)
        # Served by this task, or sooner by a rebalance callback that holds the thread.
        self._thread.submit(self._serve_commits)
        return await request.future

    def _serve_commits(self) -> None:
        """Commit every request in the mailbox, in order (consumer thread only)."""
        assert self._loop is not None
        while self._mailbox:
            request = self._mailbox.popleft()
            try:
                done: Offsets | BaseException = self._commit(request.offsets, request.epoch)
            except BrokerError as exc:
                done = exc
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                self._loop.call_soon_threadsafe(_settle, request.future, done)

    def _commit(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata], epoch: int | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        if epoch is not None and epoch != self._epoch:
            log.debug("dropping a commit computed before a rebalance: %s", dict(offsets))
            return {}
        try:
            return self._commit_now(offsets)
        except KafkaException as exc:
            raise broker_error(exc) from None

    def _commit_now(
        self, offsets: Mapping[TopicPartition, OffsetAndMetadata]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        try:
            self._commit_offsets(offsets)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if (
                not isinstance(err, KafkaError)
                or err.code() != KafkaError.OFFSET_METADATA_TOO_LARGE
            ):
                raise
            # The broker's offset.metadata.max.bytes is below pipeline.commit_metadata_max_bytes.
            log.warning("the broker refuses the commit metadata as too large; committing without")
            self._metadata = False
            self._commit_offsets(offsets)
        return dict(offsets)

    def _commit_offsets(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        tps = [
            KafkaTopicPartition(t, p, c.offset, metadata=c.metadata if self._metadata else "")
            for (t, p), c in offsets.items()
        ]
        for tp in self._consumer.commit(offsets=tps, asynchronous=False) or []:
            if tp.error is not None:  # a per-partition failure does not raise by itself
                raise KafkaException(tp.error)

    async def pause(self, tps: Iterable[TopicPartition]) -> None:
        await self._run(self._consumer.pause, [KafkaTopicPartition(t, p) for t, p in tps])

    async def resume(self, tps: Iterable[TopicPartition]) -> None:
        await self._run(self._consumer.resume, [KafkaTopicPartition(t, p) for t, p in tps])

    async def high_watermarks(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return await self._run(self._watermarks, list(tps))

    def _watermarks(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        out = {}
        for t, p in tps:
            try:
                _, high = self._consumer.get_watermark_offsets(
                    KafkaTopicPartition(t, p), cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                out[(t, p)] = int(high)
        return out

    async def partition_counts(self) -> dict[str, int]:
        return await self._run(self._partition_counts)

    def _partition_counts(self) -> dict[str, int]:
        metadata = self._consumer.list_topics(timeout=10)
        return {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if name in self._topics and topic.error is None
        }

    async def fetch_lags(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return await self._run(self._fetch_lags, list(tps))

    def _fetch_lags(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        highs = self._watermarks(tps)
        known = [KafkaTopicPartition(t, p) for t, p in tps if (t, p) in highs]
        if not known:
            return {}
        out = {}
        for tp in self._consumer.position(known):
            if tp.offset >= 0:
                out[(tp.topic, tp.partition)] = max(0, highs[(tp.topic, tp.partition)] - tp.offset)
        return out

    async def close(self) -> None:
        self._closing = True
        if self._consumer is not None:
            bound = self._callback_timeout + CLOSE_SLACK_SECONDS
            # librdkafka may block inside close() while holding the GIL: then no Python runs,
            # not even the timeout below. faulthandler's watchdog is a C thread: past the bound
            # and a margin it prints every thread's stack and ends the process (exit code 1).
            watching = _arm_watchdog(bound + CLOSE_WATCHDOG_SLACK_SECONDS)
            try:
                closed = await _bounded(self._consumer.close, bound)
            finally:
                if watching:
                    faulthandler.cancel_dump_traceback_later()
            if not closed:
                log.warning(
                    "the Kafka consumer did not finish closing within %.0fs; exiting without "
                    "waiting for it (what was finished is committed)",
                    bound,
                )
            self._consumer = None
        self._thread.shutdown(wait=True)


def _settle(future: asyncio.Future[Offsets], outcome: Offsets | BaseException) -> None:
    if future.done():  # the caller gave up waiting (cancelled)
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _arm_watchdog(seconds: float) -> bool:
    """End the process with every thread's stack on stderr in `seconds`, unless cancelled; False
    when stderr is not a file (a test's capture), where the watchdog cannot write."""
    try:
        faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__ or sys.stderr)
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        return False
    return True


async def _bounded(fn: Callable[[], object], seconds: float) -> bool:
    """Run `fn` on a daemon thread; False if it has not returned within `seconds` (it is left
    running). Its exception, if any, is raised here."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)

    def target() -> None:
        outcome: BaseException | None = None
        try:
            fn()
        except BaseException as exc:  # handed to the awaiting coroutine
            outcome = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=target, name="kafka-consumer-close", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.shield(done), seconds)
    except TimeoutError:
        return False
    return True
