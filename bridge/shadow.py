"""Shadow run (`meisa-bridge run --shadow`): the live pipeline with Meisa writes recorded, not made.

A shadow run consumes the live topics in a consumer group of its own (`<group>.shadow` unless
named), so it never commits, moves or joins the live group's offsets. Everything up to the call
is the live bridge's own code: decode, rules, per-contact ordering, coalescing, max_age and the
unsubscribed list, the rate governor's pacing. Then, instead of calling Meisa, each call is
recorded: a log line, `meisa_bridge_shadow_calls_total{kind,rule}`, and with `--shadow-output` a
JSON line. Poison messages are recorded the same way instead of being written to the DLQ.

Writes are impossible by construction, not by care: the Meisa client of a shadow run sits on a
ReadOnlyTransport (bridge.meisa.transport) that raises ShadowWriteRefused for anything but GET,
HEAD and OPTIONS, so only the start-up GET /ping/ and the unsubscribed-list GET reach Meisa. The
pipeline's deliver step is the live Deliverer itself (the ledger lookup, the rate governor, the
guard, in the live order) on a `RecordingSender` in place of the Meisa client: each call that
passes them is recorded instead of sent. It reads the sent-email ledger (a trigger already sent
is skipped, as live) but never records in it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from bridge.config import BridgeConfig
from bridge.dlq import DeadLetter
from bridge.errors import ConfigError
from bridge.ledger import SentLedger
from bridge.meisa.calls import MeisaCall
from bridge.meisa.delivery import Attempt, Deliverer, Governor, Guard
from bridge.meisa.models import CallResult
from bridge.observability import Metrics
from bridge.pipeline.dispatcher import Deliver, Slot
from bridge.pipeline.message import InFlight, Sending
from bridge.settings import MeisaSettings, live_group_id

log = logging.getLogger("bridge.shadow")

Start = Literal["latest", "earliest"]
# A client id and a static group membership id must not be shared with the live replicas.
_PER_MEMBER = ("group.instance.id", "client.id")
NOT_SENT = CallResult(status=0, body=None, reason="shadow: not sent")
# The messages the call being delivered serves, for the recorder: set by the deliver step in the
# lane's task, read by the RecordingSender below it in the same task.
_SERVING: ContextVar[Sequence[InFlight]] = ContextVar("shadow_serving", default=())


@dataclass(frozen=True, slots=True)
class ShadowOptions:
    group_id: str | None = None  # None: `<live group>.shadow`
    output: str | None = None  # JSON Lines file of the recorded calls
    start: Start = "latest"  # where a new shadow group starts reading


def shadow_config(config: BridgeConfig, options: ShadowOptions) -> BridgeConfig:
    """The config with the shadow's own consumer group; refuses the live group. The sent-email
    ledger stays the live deployment's: its topic is fixed before the group changes."""
    live = live_group_id(config.kafka)
    group = options.group_id or f"{live}.shadow"
    if group == live:
        raise ConfigError(
            f"the shadow group must differ from the live group {live!r}", field="--shadow-group"
        )
    kafka: dict[str, Any] = {**config.kafka, "group.id": group}
    kafka["auto.offset.reset"] = options.start
    for key in _PER_MEMBER:
        if key in kafka:
            kafka[key] = f"{kafka[key]}.shadow"
    ledger = replace(config.ledger, topic=config.ledger.topic_for(config.kafka))
    return replace(config, kafka=kafka, ledger=ledger)


class ShadowRecorder:
    """Writes down each call (and poison message) a shadow run would have sent."""

    def __init__(
        self,
        metrics: Metrics,
        output: IO[bytes] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        owns_output: bool = True,
    ) -> None:
        self._metrics = metrics
        self._output = output
        self._owns_output = owns_output
        self._clock = clock
        self.calls = 0

    @classmethod
    def open(cls, metrics: Metrics, path: str | None) -> ShadowRecorder:
        """Append to `path`; "-" writes to standard output (the log goes to stderr)."""
        if path == "-":
            return cls(metrics, sys.stdout.buffer, owns_output=False)
        return cls(metrics, Path(path).open("ab") if path else None)  # closed by close()

    def call(self, call: MeisaCall, messages: Sequence[InFlight]) -> None:
        self.calls += 1
        self._metrics.shadow_call(call.kind, call.rule)
        events = [_event(m) for m in messages]
        where = "; ".join(_where(e["topic"], e["partition"], e["offset"]) for e in events)
        log.info("shadow: would call %s (rule %s) for %s", call.endpoint, call.rule, where or "-")
        self._write(
            {
                "record": "call",
                "kind": call.kind,
                "endpoint": call.endpoint,
                "rule": call.rule,
                "action": call.action,
                "body": dict(call.body),
                "events": events,
            }
        )

    def dead_letter(self, letter: DeadLetter) -> None:
        """Written to the file only: the pipeline logs it, worded by ShadowDeadLetters.verb."""
        record, failure = letter.record, letter.failure
        self._write(
            {
                "record": "dead_letter",
                "stage": failure.stage,
                "rule": failure.rule,
                "error": type(failure.error).__name__,
                "message": str(failure.error),
                "events": [
                    {"topic": record.topic, "partition": record.partition, "offset": record.offset}
                ],
            }
        )

    def _write(self, obj: dict[str, Any]) -> None:
        if self._output is None:
            return
        obj = {"time": _iso(self._clock()), **obj}
        self._output.write(orjson.dumps(obj) + b"\n")
        self._output.flush()  # a reader following the file sees each call as it is made

    def close(self) -> None:
        log.info("shadow run: %d call(s) recorded, none sent", self.calls)
        if self._output is not None and self._owns_output:
            self._output.close()


class RecordingSender:
    """What the shadow run's Deliverer sends through instead of the Meisa client: each call is
    recorded, none is sent."""

    def __init__(self, recorder: ShadowRecorder) -> None:
        self._recorder = recorder

    async def send(self, call: MeisaCall) -> CallResult:
        self._recorder.call(call, _SERVING.get())
        return NOT_SENT

    def requests_for(self, call: MeisaCall) -> int:
        return 1  # paced as one request: a tag call's contact lookup is not made either


class ReadOnlyLedger:
    """The live sent-email ledger, read (a trigger already sent is skipped) but never written."""

    def __init__(self, ledger: SentLedger) -> None:
        self._ledger = ledger

    def check(self, call: MeisaCall) -> None:
        self._ledger.check(call)

    async def record(self, call: MeisaCall) -> None:
        return None


def shadow_deliver(
    recorder: ShadowRecorder,
    *,
    governor: Governor,
    guard: Guard,
    metrics: Metrics,
    ledger: SentLedger,
    settings: MeisaSettings | None = None,
) -> Deliver:
    """The pipeline's deliver step for a shadow run: the live Deliverer, recording."""

    def waited(attempt: Attempt) -> None:
        if attempt.call.traits.trigger:
            metrics.trigger_wait(attempt.waited)

    deliverer = Deliverer(
        RecordingSender(recorder),
        governor,
        settings=settings,
        on_attempt=waited,
        ledger=ReadOnlyLedger(ledger),
        guard=guard,
    )

    async def deliver(call: MeisaCall, slot: Slot, sending: Sending) -> CallResult:
        _SERVING.set(sending.messages)
        return await deliverer.deliver(call, slot, not_found=False, event_time=sending.event_time)

    return deliver


class ShadowDeadLetters:
    """Stands in for the DLQ producer: poison is recorded, never written to the topic."""

    verb = "shadow: would dead-letter"

    def __init__(self, recorder: ShadowRecorder) -> None:
        self._recorder = recorder

    async def send(self, letter: DeadLetter) -> None:
        self._recorder.dead_letter(letter)

    def close(self, timeout: float = 0.0) -> int:
        return 0


def _event(message: InFlight) -> dict[str, Any]:
    r = message.record
    env = message.envelope
    return {
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "id": env.id if env is not None else None,
        "type": env.type if env is not None else None,
    }


def _where(topic: str, partition: int, offset: int) -> str:
    # Not topic/partition@offset: the log's email masking would take that for an address.
    return f"{topic} partition {partition} offset {offset}"


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"
