"""Tracing (bridge.observability.tracing, .otel): where a message's trace comes from, the spans
the pipeline and the deliverer make, the traceparent the client sends, the trace id in the DLQ
headers and in log lines, and the no-op when tracing is off.

The pipeline runs on the in-memory broker with the real decoder, rules, dispatcher and
Deliverer; only Meisa is a fake sender that records the trace headers of each request."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bridge import dlq
from bridge.codecs import build_decoder
from bridge.config import BridgeConfig
from bridge.dlq import DeadLetterProducer
from bridge.errors import RateLimited, RejectedCall
from bridge.events import Record
from bridge.kafka.memory import MemoryBroker, MemoryProducer, MemorySource
from bridge.meisa.calls import MeisaCall
from bridge.meisa.delivery import Deliverer
from bridge.meisa.models import CallResult
from bridge.meisa.retry import RetryPolicy
from bridge.observability import configure_logging, start_tracing
from bridge.observability.otel import parent_context
from bridge.observability.tracing import LOGGED, NO_TRACING, OUTGOING, Tracing
from bridge.pipeline.dispatcher import Slot
from bridge.pipeline.message import Sending
from bridge.pipeline.pipeline import Pipeline
from bridge.rules.loader import compile_rules
from bridge.settings import (
    CodecSettings,
    DlqSettings,
    LoggingSettings,
    PipelineSettings,
    TracingSettings,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
GROUP = "trace-test"
RULES: list[dict[str, Any]] = [
    {"name": "signup", "on": "user.signed_up", "do": [{"upsert": {"email": "{{ data.email }}"}}]}
]


def span_context_of(carrier: dict[str, str]) -> tuple[str, str]:
    """(trace id, span id) as hex of a traceparent header value."""
    _, trace_id, span_id, _ = carrier["traceparent"].split("-")
    return trace_id, span_id


# -- where the trace comes from ---------------------------------------------------------------


def _record(headers: tuple[tuple[str, bytes | None], ...] = (), value: bytes = b"{}") -> Record:
    return Record("t", 0, 7, None, value, headers)


DECODED = object()  # stands for an envelope: the record decoded


def _parent_trace_id(record: Record) -> str | None:
    from opentelemetry import trace

    context = trace.get_current_span(parent_context(record, DECODED)).get_span_context()  # type: ignore[arg-type]
    return format(context.trace_id, "032x") if context.is_valid else None


@pytest.mark.parametrize(
    "headers",
    [
        (("traceparent", PARENT.encode()),),
        (("Traceparent", PARENT.encode()), ("tracestate", b"k=v")),
        (("ce_traceparent", PARENT.encode()),),
    ],
)
def test_the_parent_comes_from_the_traceparent_or_the_cloudevents_header(
    headers: tuple[tuple[str, bytes | None], ...],
) -> None:
    assert _parent_trace_id(_record(headers)) == TRACE_ID


def test_a_structured_cloudevent_gives_its_traceparent_attribute() -> None:
    event = {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "traceparent": PARENT}
    assert _parent_trace_id(_record(value=orjson.dumps(event))) == TRACE_ID
    plain = {"type": "t", "traceparent": PARENT}  # not a CloudEvent: no such attribute
    assert _parent_trace_id(_record(value=orjson.dumps(plain))) is None


def test_the_kafka_header_wins_over_the_cloudevents_one() -> None:
    other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = (("ce_traceparent", other.encode()), ("traceparent", PARENT.encode()))
    assert _parent_trace_id(_record(headers)) == TRACE_ID


@pytest.mark.parametrize("value", [b"00-zz-00-01", b"", b"\xff"])
def test_an_invalid_traceparent_starts_a_new_trace(value: bytes) -> None:
    assert _parent_trace_id(_record((("traceparent", value),))) is None


# -- off --------------------------------------------------------------------------------------


def test_tracing_is_off_unless_enabled_and_off_with_otel_sdk_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert start_tracing(TracingSettings()) is NO_TRACING
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert start_tracing(TracingSettings(enabled=True)) is NO_TRACING


# -- the pipeline, traced ----------------------------------------------------------------------


@dataclass
class FakeMeisa:
    """A Sender: answers 200 (or raises what `answers` holds, in turn) and records the trace
    headers each request would carry."""

    answers: list[BaseException | None] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    async def send(self, call: MeisaCall) -> CallResult:
        self.headers.append(dict(OUTGOING.get() or ()))
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        return CallResult(status=200, body={"id": "c1"})

    def requests_for(self, call: MeisaCall) -> int:
        return 1


class Governor:
    async def acquire(self, priority: int, tokens: int = 1) -> float:
        return 0.0

    def on_success(self) -> None:
        pass

    def on_rate_limited(self, retry_after: float | None) -> None:
        pass


@dataclass
class Traced:
    broker: MemoryBroker
    meisa: FakeMeisa
    exporter: InMemorySpanExporter
    tracing: Tracing

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


@asynccontextmanager
async def traced_pipeline(
    meisa: FakeMeisa | None = None, settings: TracingSettings | None = None
) -> AsyncIterator[Traced]:
    broker = MemoryBroker()
    broker.create_topic("events", 1)
    broker.create_topic("dlq", 1)
    exporter = InMemorySpanExporter()
    tracing = start_tracing(settings or TracingSettings(min_step_ms=0), exporter=exporter)
    meisa = meisa or FakeMeisa()
    deliverer = Deliverer(meisa, Governor(), RetryPolicy(base_seconds=0.0), sleep=_no_sleep)

    async def deliver(call: MeisaCall, slot: Slot, sending: Sending) -> object:
        trace = tracing.for_call(call, sending.messages)
        return await deliverer.deliver(call, slot, not_found=False, trace=trace)

    rules, errors = compile_rules(RULES, file="<test>")
    assert not errors
    pipeline = Pipeline(
        config=BridgeConfig(
            topics=("events",),
            pipeline=PipelineSettings(commit_interval_seconds=0.02),
            dlq=DlqSettings(topic="dlq", max_consecutive=0, max_ratio=0),
        ),
        source=MemorySource(broker, ["events"], GROUP),
        decoder=build_decoder(CodecSettings()),
        rules=rules,
        deliver=deliver,
        guard=lambda call, event_time: None,
        dlq=DeadLetterProducer(MemoryProducer(broker), "dlq"),
        tracing=tracing,
    )
    task = asyncio.create_task(pipeline.run())
    try:
        yield Traced(broker, meisa, exporter, tracing)
    finally:
        pipeline.stop()
        await asyncio.wait_for(task, 10)
        tracing.shutdown()


def signup(email: str = "ann@example.com", **extra: Any) -> bytes:
    return orjson.dumps({"id": "e1", "type": "user.signed_up", "data": {"email": email}, **extra})


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    assert condition(), what


async def test_an_event_with_a_traceparent_is_traced_into_the_meisa_request() -> None:
    async with traced_pipeline() as t:
        t.broker.produce("events", signup(), headers=(("traceparent", PARENT.encode()),))
        await until(lambda: t.broker.committed(GROUP, ("events", 0)) == 1, "the commit")
    spans = t.spans()
    assert {s.context.trace_id for s in spans} == {int(TRACE_ID, 16)}
    (message,) = t.named("events process")
    assert message.parent is not None
    assert message.parent.span_id == int("00f067aa0ba902b7", 16)
    assert message.attributes is not None
    assert message.attributes["meisa_bridge.outcome"] == "ok"
    assert message.attributes["cloudevents.event_type"] == "user.signed_up"
    children = {s.name for s in spans if s.parent and s.parent.span_id == message.context.span_id}
    assert children == {"decode", "map", "wait lockstep", "wait lane", "meisa upsert"}
    (attempt,) = t.named("meisa upsert")
    assert attempt.attributes is not None
    assert attempt.attributes["meisa_bridge.rule"] == "signup"
    assert attempt.attributes["http.response.status_code"] == 200
    (governor,) = t.named("wait governor")
    assert governor.parent is not None
    assert governor.parent.span_id == attempt.context.span_id
    (sent,) = t.meisa.headers
    assert span_context_of(sent) == (TRACE_ID, format(attempt.context.span_id, "016x"))


async def test_steps_shorter_than_min_step_are_events_on_their_span() -> None:
    async with traced_pipeline(settings=TracingSettings(min_step_ms=60_000)) as t:
        t.broker.produce("events", signup())
        await until(lambda: t.broker.committed(GROUP, ("events", 0)) == 1, "the commit")
    assert {s.name for s in t.spans()} == {"events process", "meisa upsert"}
    (message,) = t.named("events process")
    steps = [e.name for e in message.events]
    assert steps == ["decode", "map", "wait lockstep", "wait lane"]
    assert all(
        e.attributes and e.attributes["meisa_bridge.duration_us"] >= 0 for e in message.events
    )
    (attempt,) = t.named("meisa upsert")
    assert [e.name for e in attempt.events] == ["wait governor"]


async def test_an_unsampled_trace_is_passed_on_to_meisa_without_spans() -> None:
    unsampled = f"00-{TRACE_ID}-00f067aa0ba902b7-00"
    async with traced_pipeline() as t:
        t.broker.produce("events", signup(), headers=(("traceparent", unsampled.encode()),))
        await until(lambda: t.broker.committed(GROUP, ("events", 0)) == 1, "the commit")
    assert t.spans() == []
    (sent,) = t.meisa.headers
    trace_id, span_id = span_context_of(sent)
    assert trace_id == TRACE_ID
    assert span_id != "00f067aa0ba902b7"
    assert sent["traceparent"].endswith("-00")


async def test_each_attempt_is_a_span_with_its_retry_number_and_retry_after() -> None:
    meisa = FakeMeisa(answers=[RateLimited("429", retry_after=2.0), None])
    async with traced_pipeline(meisa) as t:
        t.broker.produce("events", signup())
        await until(lambda: t.broker.committed(GROUP, ("events", 0)) == 1, "the commit")
    first, second = sorted(t.named("meisa upsert"), key=lambda s: s.start_time or 0)
    assert first.attributes is not None
    assert second.attributes is not None
    assert first.attributes["meisa_bridge.attempt"] == 1
    assert first.attributes["meisa_bridge.retry_after"] == 2.0
    assert first.attributes["meisa_bridge.outcome"] == "retry"
    assert second.attributes["http.request.resend_count"] == 1
    assert second.attributes["meisa_bridge.outcome"] == "ok"
    # a new trace for an event without one; each attempt told Meisa its own span
    ids = [span_context_of(h) for h in meisa.headers]
    assert ids == [
        (format(s.context.trace_id, "032x"), format(s.context.span_id, "016x"))
        for s in (first, second)
    ]


async def test_a_dead_lettered_message_carries_its_trace_id_in_the_dlq_headers() -> None:
    meisa = FakeMeisa(answers=[RejectedCall("bad email", status=400, endpoint="upsert")])
    async with traced_pipeline(meisa) as t:
        t.broker.produce("events", signup(), headers=(("traceparent", PARENT.encode()),))
        await until(lambda: len(t.broker.log("dlq", 0)) == 1, "the DLQ record")
    (record,) = t.broker.log("dlq", 0)
    headers = dict(record.headers)
    assert headers[dlq.TRACE_ID] == TRACE_ID.encode()
    (message,) = t.named("events process")
    assert message.attributes is not None
    assert message.attributes["meisa_bridge.outcome"] == "dlq"
    assert message.status.status_code.name == "ERROR"


async def test_a_message_that_makes_no_call_makes_no_span() -> None:
    async with traced_pipeline() as t:
        other = orjson.dumps({"id": "e2", "type": "user.other", "data": {}})
        t.broker.produce("events", other, headers=(("traceparent", PARENT.encode()),))
        await until(lambda: t.broker.committed(GROUP, ("events", 0)) == 1, "the commit")
    assert t.spans() == []


async def test_log_lines_of_a_traced_call_carry_its_trace_id() -> None:
    stream = io.StringIO()
    handler = configure_logging(LoggingSettings(format="json"), stream=stream)
    try:
        token = LOGGED.set(TRACE_ID)
        logging.getLogger("bridge.test").warning("retrying")
        LOGGED.reset(token)
        logging.getLogger("bridge.test").warning("untraced")
    finally:
        logging.getLogger().removeHandler(handler)
    traced, untraced = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert traced["trace_id"] == TRACE_ID
    assert "trace_id" not in untraced


async def test_untraced_requests_carry_no_traceparent() -> None:
    meisa = FakeMeisa()
    deliverer = Deliverer(meisa, Governor())
    call = MeisaCall("upsert", {"email": "ann@example.com"}, contact_key="ann@example.com")
    await deliverer.deliver(call)
    assert meisa.headers == [{}]
