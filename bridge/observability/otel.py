"""The OpenTelemetry side of bridge.observability.tracing: the only module that imports it.

Imported only when tracing is on. One TracerProvider of its own (the global one is left alone),
a parent-based ratio sampler, a batch processor and the OTLP/HTTP (protobuf) exporter, which
reads the standard `OTEL_EXPORTER_OTLP_*` variables for what the settings leave empty.

Spans that only measure a step already over (decode, map, the waits) are recorded afterwards
with their own start and end times, and only when the message's trace is sampled. The message's
span is opened the first time something needs it, with its start set to when the message was
read, so a message that turns out to make no call costs two timestamps and nothing else. The
attempt span is live: its id goes to Meisa in `traceparent`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping, Sequence
from contextvars import Token
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bridge import __version__
from bridge.errors import HaltError, PoisonError, RetryableError, SkipOutcome
from bridge.events import Envelope, Record
from bridge.meisa.calls import MeisaCall
from bridge.observability.redaction import redact
from bridge.observability.tracing import (
    LOGGED,
    NO_CALL_TRACE,
    OUTGOING,
    AttemptTrace,
    CallTrace,
    MessageTrace,
    Traced,
    Tracing,
    Wait,
)
from bridge.settings import TracingSettings

DEFAULT_SERVICE_NAME = "meisa-bridge"
_PROPAGATOR = TraceContextTextMapPropagator()
_MAX_DESCRIPTION = 500  # an error message in a span status: enough to tell, not a body dump


class OtelTracing(Tracing):
    def __init__(self, provider: TracerProvider, *, min_step_ms: float = 1.0) -> None:
        self.provider = provider
        tracer = provider.get_tracer("meisa-bridge", __version__)
        self._spans = _Spans(tracer, int(min_step_ms * 1_000_000))

    @classmethod
    def start(cls, settings: TracingSettings, *, exporter: SpanExporter | None = None) -> Tracing:
        service = settings.service_name or os.environ.get("OTEL_SERVICE_NAME")
        provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: service or DEFAULT_SERVICE_NAME}),
            sampler=_sampler(settings),
        )
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=settings.endpoint)  # None: OTEL_* or default
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider, min_step_ms=settings.min_step_ms)

    def begin(self, record: Record) -> MessageTrace:
        return _Message(self._spans, record)

    def for_call(self, call: MeisaCall, messages: Sequence[Traced]) -> CallTrace:
        traces = [m.trace for m in messages if isinstance(m.trace, _Message)]
        if not traces:
            return NO_CALL_TRACE
        for message in traces:
            message.lane_waited(call)
        links = [Link(t.span().get_span_context()) for t in traces[1:]]
        return _Call(self._spans, traces[0], links)

    def shutdown(self) -> None:
        self.provider.shutdown()  # exports what the batch processor still holds


class _Spans:
    """The tracer, and how a step (decode, map, a wait) is recorded: a span of its own when it
    took at least `min_step_ns`, else an event on its parent's span (about a tenth of the cost,
    which matters at a few spans per event: bench/tracing_cost.py)."""

    __slots__ = ("min_step_ns", "tracer")

    def __init__(self, tracer: trace.Tracer, min_step_ns: int) -> None:
        self.tracer = tracer
        self.min_step_ns = min_step_ns

    def step(self, parent: Span, name: str, start: int, end: int) -> None:
        if not parent.is_recording():
            return
        if end - start >= self.min_step_ns:
            context = trace.set_span_in_context(parent)
            self.tracer.start_span(name, context=context, start_time=start).end(end_time=end)
        else:
            duration = {"meisa_bridge.duration_us": (end - start) // 1000}
            parent.add_event(name, duration, timestamp=end)


def _sampler(settings: TracingSettings) -> Sampler | None:
    """Parent-based on the ratio; None (the SDK reads OTEL_TRACES_SAMPLER) when the settings
    give no ratio and the variable is set."""
    if settings.sampler_ratio is None and os.environ.get("OTEL_TRACES_SAMPLER"):
        return None
    ratio = 1.0 if settings.sampler_ratio is None else settings.sampler_ratio
    return ParentBased(TraceIdRatioBased(ratio))


def parent_context(record: Record, envelope: Envelope | None) -> Context:
    """The event's own trace: `traceparent`/`tracestate` headers, else CloudEvents'
    `ce_traceparent`/`ce_tracestate` (binary mode), else the `traceparent` attribute of a
    structured CloudEvent. No (valid) traceparent: an empty context, a new trace."""
    carrier = _from_headers(record.headers, "") or _from_headers(record.headers, "ce_")
    if not carrier and envelope is not None:
        carrier = _from_structured(record.value)
    return _PROPAGATOR.extract(carrier) if carrier else Context()


def _from_headers(headers: Sequence[tuple[str, bytes | None]], prefix: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in headers:
        name = key.lower()
        if value is not None and name in (prefix + "traceparent", prefix + "tracestate"):
            found.setdefault(name.removeprefix(prefix), value.decode("latin-1"))
    return found if "traceparent" in found else {}


def _from_structured(value: bytes | None) -> dict[str, str]:
    if not value or b'"traceparent"' not in value:
        return {}
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(event, dict) or "specversion" not in event:
        return {}
    return {k: event[k] for k in ("traceparent", "tracestate") if isinstance(event.get(k), str)}


class _Message(MessageTrace):
    """A message's trace: timestamps until its span is needed, then the span."""

    __slots__ = ("_calls", "_done", "_envelope", "_mark", "_record", "_span", "_spans", "_steps")

    def __init__(self, spans: _Spans, record: Record) -> None:
        self._spans = spans
        self._record = record
        self._envelope: Envelope | None = None
        self._mark = time.time_ns()
        self._steps: list[tuple[str, int, int]] = [("read", self._mark, self._mark)]
        self._span: Span | None = None
        self._calls: set[int] = set()  # ids of the calls whose lane wait is recorded
        self._done = False

    @property
    def trace_id(self) -> str | None:
        return format(self.span().get_span_context().trace_id, "032x")

    def decoded(self, envelope: Envelope | None) -> None:
        self._envelope = envelope
        self._step("decode")

    def mapped(self) -> None:
        self._step("map")

    def waiting(self, stage: Wait) -> None:
        self._mark = time.time_ns()

    def waited(self, stage: Wait) -> None:
        now = time.time_ns()
        self._spans.step(self.span(), f"wait {stage}", self._mark, now)
        self._mark = now

    def lane_waited(self, call: MeisaCall) -> None:
        """The call left its lane: its wait there started when the message's calls were queued
        (a call delivered again after a 404 has waited already)."""
        if id(call) not in self._calls:
            self._calls.add(id(call))
            self._spans.step(self.span(), "wait lane", self._mark, time.time_ns())

    def finish(self, outcome: str, error: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        span = self.span()
        if span.is_recording():
            span.set_attribute("meisa_bridge.outcome", outcome)
            if error is not None:
                span.set_attribute("error.type", type(error).__name__)
                span.set_status(Status(StatusCode.ERROR, _describe(error)))
        span.end()

    def log_fields(self) -> Mapping[str, str]:
        return {"trace_id": format(self.span().get_span_context().trace_id, "032x")}

    def span(self) -> Span:
        """The message's span, opened on first use and backdated to when it was read."""
        if self._span is None:
            self._span = self._open()
        return self._span

    def _open(self) -> Span:
        record, envelope = self._record, self._envelope
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
        }
        if envelope is not None:
            attributes.update(_event_attributes(envelope))
        span = self._spans.tracer.start_span(
            f"{record.topic} process",
            context=parent_context(record, envelope),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            start_time=self._steps[0][1],
        )
        for name, start, end in self._steps[1:]:
            self._spans.step(span, name, start, end)
        self._steps.clear()
        return span

    def _step(self, name: str) -> None:
        now = time.time_ns()
        if self._span is None:
            self._steps.append((name, self._mark, now))
        else:
            self._spans.step(self._span, name, self._mark, now)
        self._mark = now


def _event_attributes(envelope: Envelope) -> dict[str, str]:
    found = {
        "cloudevents.event_id": envelope.id,
        "cloudevents.event_type": envelope.type,
        "cloudevents.event_source": envelope.source,
    }
    return {k: v for k, v in found.items() if v}


class _Call(CallTrace):
    __slots__ = ("_context", "_links", "_message", "_parent", "_spans", "_token")

    def __init__(self, spans: _Spans, message: _Message, links: list[Link]) -> None:
        self._spans = spans
        self._message = message
        self._parent = message.span()
        self._context = trace.set_span_in_context(self._parent)
        self._links = links
        self._token: Token[str | None] | None = None

    def attempt(self, call: MeisaCall, number: int) -> AttemptTrace:
        if not self._parent.is_recording():  # not sampled: the trace is passed on, no span
            return _Attempt(self._spans, None, _headers(self._parent.get_span_context(), True))
        attributes: dict[str, Any] = {
            "meisa_bridge.rule": call.rule or "",
            "meisa_bridge.call.kind": call.kind,
            "meisa_bridge.attempt": number,
        }
        if number > 1:
            attributes["http.request.resend_count"] = number - 1
        span = self._spans.tracer.start_span(
            f"meisa {call.kind}",
            context=self._context,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            links=self._links,
        )
        return _Attempt(self._spans, span, _headers(span.get_span_context()))

    def __enter__(self) -> None:
        self._token = LOGGED.set(self._message.trace_id)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            LOGGED.reset(self._token)
            self._token = None


class _Attempt(AttemptTrace):
    """One attempt: a live span (None when the trace is not sampled) and the headers that tell
    Meisa about it."""

    __slots__ = ("_headers", "_span", "_spans", "_start", "_token")

    def __init__(
        self, spans: _Spans, span: Span | None, headers: tuple[tuple[str, str], ...]
    ) -> None:
        self._spans = spans
        self._span = span
        self._headers = headers
        self._start = time.time_ns()
        self._token: Token[tuple[tuple[str, str], ...] | None] | None = None

    def acquired(self) -> None:
        if self._span is not None:
            self._spans.step(self._span, "wait governor", self._start, time.time_ns())
        self._token = OUTGOING.set(self._headers)

    def ended(self, status: int | None, error: BaseException | None) -> None:
        if self._token is not None:
            OUTGOING.reset(self._token)
            self._token = None
        if self._span is not None:
            _answer(self._span, status, error)
            self._span.end()


def _headers(context: SpanContext, new_span: bool = False) -> tuple[tuple[str, str], ...]:
    """traceparent (and tracestate) for `context`, or for a new span id in its trace."""
    span_id = (random.getrandbits(64) or 1) if new_span else context.span_id
    parent = f"00-{context.trace_id:032x}-{span_id:016x}-{context.trace_flags:02x}"
    state = context.trace_state.to_header()
    return (("traceparent", parent), ("tracestate", state)) if state else (("traceparent", parent),)


def _answer(span: Span, status: int | None, error: BaseException | None) -> None:
    status = status if status is not None else getattr(error, "status", None)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        span.set_attribute("meisa_bridge.retry_after", float(retry_after))
    span.set_attribute("meisa_bridge.outcome", _outcome(error))
    if error is not None and not isinstance(error, SkipOutcome):
        span.set_attribute("error.type", type(error).__name__)
        span.set_status(Status(StatusCode.ERROR, _describe(error)))


def _outcome(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    for kind, name in (
        (SkipOutcome, "skipped"),
        (RetryableError, "retry"),
        (HaltError, "halt"),
        (PoisonError, "poison"),
    ):
        if isinstance(error, kind):
            return name
    return "halt"  # outside the tree: the pipeline halts on it


def _describe(error: BaseException) -> str:
    return redact(f"{type(error).__name__}: {error}", mask_emails=True)[:_MAX_DESCRIPTION]
