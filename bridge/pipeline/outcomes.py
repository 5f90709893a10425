"""The outcome topic (`outcomes.topic`): one record per finished call, for other services to read.

A call is finished when its answer is final: Meisa accepted it (`sent`, or `scheduled` for a
202), it was skipped (`skipped`, with the reason: Meisa's own, or the bridge's `stale`,
`suppressed`, `already_sent`), or it is poison and its message goes to the dead-letter topic
(`dead_lettered`, with the error). A call that is retried, waits for its contact, or is dropped
because its partition moved is not finished; a call that serves several events (coalesced
upserts) gives one record per event. The dispatcher hands each finished call to `add`
(bridge.pipeline.dispatcher's `on_outcome`), which only queues it: a task of its own builds the
records and writes them through the same producer as the dead-letter topic, so a slow or absent
broker never holds a delivery. A record the broker refuses (or does not acknowledge within
librdkafka's `message.timeout.ms`) is counted and logged at WARNING, at most once per
WARN_EVERY seconds; past `outcomes.max_pending` waiting records, new ones are dropped and counted
the same way. Delivery goes on either way: deliveries matter more than their record.

Records are at least once, like the calls: a call re-sent after a crash or a rebalance is
recorded again. The key is the person (the call's contact key: external_id when the call has
one, else the lower-cased email), so a consumer reads one person's outcomes in order. The value
is a JSON object; its fields are listed in docs/operations.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from bridge.errors import (
    AlreadyEnrolled,
    PoisonError,
    RejectedCall,
    SkipOutcome,
    StartupRefused,
    Unsubscribed,
)
from bridge.kafka.protocols import Producer
from bridge.meisa.calls import MeisaCall
from bridge.meisa.models import CallResult
from bridge.observability import Metrics, redact
from bridge.pipeline.dispatcher import Deliver, Slot
from bridge.pipeline.message import InFlight, Sending
from bridge.settings import BridgeSettings

log = logging.getLogger("bridge.outcomes")

BATCH = 500  # records handed to the producer before their acknowledgements are awaited
# How long a message waits for its record before it is finished all the same: as long as the
# sent-email ledger waits for its write, so a broker that is away holds no delivery longer.
HOLD_SECONDS = 5.0
WARN_EVERY = 30.0  # seconds between two WARNING lines about records not written
# The HTTP status behind a skip the client raises instead of returning (Meisa answered it).
_SKIP_STATUS: dict[type[SkipOutcome], int] = {Unsubscribed: 422, AlreadyEnrolled: 400}
_ID_FIELDS = ("contact_id", "email_send_id")

Finished = tuple[MeisaCall, InFlight, object, float]


class Answered:
    """What a delivery returned, with the number of requests it took (`with_attempts`)."""

    __slots__ = ("attempts", "result")

    def __init__(self, result: object, attempts: int) -> None:
        self.result = result
        self.attempts = attempts


class _CountingSlot:
    """The dispatcher's slot, counting how often a delivery entered it: once per request."""

    __slots__ = ("_slot", "entered")

    def __init__(self, slot: Slot) -> None:
        self._slot = slot
        self.entered = 0

    async def __aenter__(self) -> object:
        held = await self._slot.__aenter__()
        self.entered += 1
        return held

    async def __aexit__(self, *exc: Any) -> bool | None:
        return await self._slot.__aexit__(*exc)

    async def granted(self) -> None:
        await self._slot.granted()


def with_attempts(deliver: Deliver) -> Deliver:
    """`deliver`, answering Answered(result, attempts); a skip carries its attempts too."""

    async def counted(call: MeisaCall, slot: Slot, sending: Sending) -> object:
        counting = _CountingSlot(slot)
        try:
            result = await deliver(call, counting, sending)
        except SkipOutcome as exc:
            exc.attempts = counting.entered
            raise
        return Answered(result, counting.entered)

    return counted


def outcome_record(call: MeisaCall, message: InFlight, answer: object, at: float) -> dict[str, Any]:
    """The JSON object of one call's outcome for one message (see the module docstring)."""
    record = message.record
    body = call.body
    doc: dict[str, Any] = {
        "event_id": message.envelope.id if message.envelope is not None else None,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "rule": call.rule,
        "action": call.action,
        "kind": call.kind,
        "outcome": None,
        "reason": None,
        "status": None,
        "attempts": None,
        "contact_id": None,
        "email_send_id": None,
        "enrollment_id": None,
        "email": body.get("email") or body.get("to_email"),
        "external_id": body.get("external_id"),
        "idempotency_key": body.get("idempotency_key"),
        "error": None,
        "time": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
    }
    if isinstance(answer, Answered):
        _accepted(doc, call, answer)
    elif isinstance(answer, SkipOutcome):
        doc.update(outcome="skipped", reason=answer.reason, attempts=answer.attempts)
        doc["status"] = _SKIP_STATUS.get(type(answer))
    elif isinstance(answer, PoisonError):
        doc.update(outcome="dead_lettered", attempts=answer.attempts)
        doc["status"] = answer.status if isinstance(answer, RejectedCall) else None
        doc["error"] = {
            "class": type(answer).__name__,
            "message": redact(str(answer), mask_emails=False),
        }
    return doc


def _accepted(doc: dict[str, Any], call: MeisaCall, answer: Answered) -> None:
    result = answer.result
    doc["attempts"] = answer.attempts
    if not isinstance(result, CallResult):
        doc["outcome"] = "sent"
        return
    doc["status"] = result.status
    if result.outcome == "skipped":
        doc.update(outcome="skipped", reason=result.reason)
    else:
        doc["outcome"] = "scheduled" if result.reason == "scheduled" else "sent"
    found = result.body if isinstance(result.body, dict) else {}
    for name in _ID_FIELDS:
        if found.get(name) is not None:
            doc[name] = str(found[name])
    if call.kind == "enroll" and found.get("id") is not None:
        doc["enrollment_id"] = str(found["id"])


class OutcomeWriter:
    """Queues finished calls (`add`, on the hot path: an append) and writes their records on its
    own task (`run`); `close` writes what is left within a timeout.

    A message whose call is recorded here stays unfinished, so its offset is not committed, until
    the broker acknowledged the record or HOLD_SECONDS passed (the record is then left to the
    producer's own retries): a crash between the commit and the record would otherwise lose the
    record for good, while a message that is not committed is delivered and recorded again. The
    pipeline binds `release` (what finishes a message) and waits for `join` when it drains."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        *,
        max_pending: int,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topic = topic
        self._producer = producer
        self._max_pending = max_pending
        self._metrics = metrics
        self._clock = clock
        self._release: Callable[[InFlight], None] = _nothing
        self._pending: deque[Finished] = deque()
        self._wake = asyncio.Event()
        self._held = 0  # records whose message waits for them
        self._none_held = asyncio.Event()
        self._none_held.set()
        self._sending: set[asyncio.Future[None]] = set()
        self._unwritten = 0  # records refused or dropped since the last WARNING
        self._why = ""  # why the last of them was not written
        self._warned = float("-inf")

    def __repr__(self) -> str:
        return f"OutcomeWriter(topic={self.topic!r}, pending={len(self._pending)})"

    def check_topic(self, timeout: float = 10.0) -> None:
        """Refuse to start on a topic the broker says is missing or not allowed (a typo would
        otherwise cost every record); a broker that does not answer is left to the writes."""
        state = self._producer.topic_state(self.topic, timeout)
        if state.status == "missing":
            raise StartupRefused(
                f"outcomes.topic {self.topic!r} does not exist; create it (the bridge never "
                "creates topics) or change outcomes.topic"
            )
        if state.status == "forbidden":
            raise StartupRefused(
                f"outcomes.topic {self.topic!r}: not authorized (the bridge's principal needs "
                "Describe and Write on it)"
            )

    def bind(self, release: Callable[[InFlight], None]) -> None:
        """`release(message)` finishes a message once its last record is written (the pipeline's
        own finishing step)."""
        self._release = release

    def add(self, parts: Sequence[tuple[MeisaCall, InFlight]], answer: object) -> None:
        """The dispatcher's `on_outcome`: queue one record per (call, message), each holding its
        message unfinished until it is written."""
        now = self._clock()
        for call, message in parts:
            if len(self._pending) >= self._max_pending:
                self._unwritten_records("dropped", 1, "more than outcomes.max_pending waiting")
                continue
            message.remaining += 1  # the dispatcher's own count for the call follows at once
            self._held += 1
            self._none_held.clear()
            self._pending.append((call, message, answer, now))
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._write_batch()

    async def join(self, grace: float) -> bool:
        """Wait until no message waits for its record; False when `grace` ran out first."""
        try:
            async with asyncio.timeout(grace):
                await self._none_held.wait()
        except TimeoutError:
            return False
        return True

    async def close(self, grace: float) -> None:
        """Write what is queued, within `grace` seconds; what is left is counted as dropped."""
        try:
            async with asyncio.timeout(grace):
                while self._pending:
                    await self._write_batch()
                if self._sending:
                    await asyncio.wait(set(self._sending))
        except TimeoutError:
            pass
        left = len(self._pending) + len(self._sending)
        if left:
            self._pending.clear()
            self._unwritten_records("dropped", left, f"not written within {grace:g} s of stopping")
        self._warn()

    async def _write_batch(self) -> None:
        batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
        # produce() runs in this order as the sends start: one person's records stay in order.
        await asyncio.gather(*(self._send(finished) for finished in batch))

    async def _send(self, finished: Finished) -> None:
        call, message, answer, at = finished
        try:
            value = orjson.dumps(outcome_record(call, message, answer, at))
            sent = asyncio.ensure_future(
                self._producer.send(
                    self.topic, key=call.contact_key.encode(), value=value, headers=()
                )
            )
            self._sending.add(sent)
            sent.add_done_callback(self._sent)
            await asyncio.wait({sent}, timeout=HOLD_SECONDS)
        finally:
            self._let_go(message)

    def _let_go(self, message: InFlight) -> None:
        self._held -= 1
        if not self._held:
            self._none_held.set()
        message.remaining -= 1
        if message.remaining == 0:
            self._release(message)

    def _sent(self, sent: asyncio.Future[None]) -> None:
        self._sending.discard(sent)
        error = None if sent.cancelled() else sent.exception()
        if sent.cancelled() or error is not None:
            self._unwritten_records("failed", 1, str(error or "cancelled"))
        else:
            self._metrics.outcome_records("written")

    def _unwritten_records(self, result: str, n: int, why: str) -> None:
        self._metrics.outcome_records(result, n)
        self._unwritten += n
        self._why = why
        if self._clock() - self._warned >= WARN_EVERY:
            self._warn()

    def _warn(self) -> None:
        if not self._unwritten:
            return
        log.warning(
            "outcome topic %s: %d record(s) not written (%s); delivery goes on",
            self.topic,
            self._unwritten,
            redact(self._why),
        )
        self._unwritten = 0
        self._warned = self._clock()


def _nothing(message: InFlight) -> None:
    return None


async def open_outcomes(config: BridgeSettings, metrics: Metrics) -> OutcomeWriter | None:
    """The outcome topic's writer once its topic is known to exist; None without a topic. Its
    producer is the dead-letter topic's kind (bridge.kafka.producer), an instance of its own."""
    from bridge.kafka.producer import KafkaProducer

    if not config.outcomes.topic:
        return None
    writer = OutcomeWriter(
        KafkaProducer(config.kafka),
        config.outcomes.topic,
        max_pending=config.outcomes.max_pending,
        metrics=metrics,
    )
    await asyncio.to_thread(writer.check_topic)
    return writer
