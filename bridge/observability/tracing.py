"""Tracing hooks: what the pipeline and the Meisa client call, whether tracing is on or off.

Off (the default), every hook is a method of a no-op singleton (`NO_TRACING`, `NO_TRACE`,
`NO_CALL_TRACE`, `NO_ATTEMPT`) and OpenTelemetry is never imported; `start_tracing`
(bridge.observability) imports bridge.observability.otel, the only module that imports it, when
`tracing.enabled` is set.

The shape of a trace, one per message that makes calls (or is poison):

    <topic> process                 the message, from before decoding to done or dead-lettered;
    │                               its parent is the event's own trace (headers `traceparent`
    │                               and `tracestate`, CloudEvents' `ce_traceparent`, or the
    │                               `traceparent` attribute of a structured CloudEvent)
    ├── decode, map
    ├── wait lockstep               held until no other partition could hold an older event
    ├── wait lane                   per call: queued behind the person's earlier calls
    └── meisa <kind>                per attempt: rule, call kind, status, retry number,
        └── wait governor           Retry-After; its id goes to Meisa as `traceparent`

Hooks, in the order a message meets them: `Tracing.begin(record)` before decoding,
`MessageTrace.decoded(envelope)` and `.mapped()` in bridge.outcome.read_record,
`.waiting(stage)` / `.waited(stage)` around a wait, `Tracing.for_call(call, messages)` when a
call leaves its lane (it ends the lane wait), `CallTrace.attempt(...)` with `.acquired()` and
`.ended(...)` around each attempt in bridge.meisa.delivery, and `MessageTrace.finish(outcome)`.

Two context variables carry a call's trace while it is delivered: `OUTGOING`, the headers the
client adds to the request (bridge.meisa.client), and `LOGGED`, the trace id the log handler
adds to every record (`trace_id`, bridge.observability.logs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from bridge.events import Envelope, Record
    from bridge.meisa.calls import MeisaCall

Wait = Literal["lockstep", "lane", "governor"]

# The trace headers for the request being made (traceparent, tracestate), or None.
OUTGOING: ContextVar[tuple[tuple[str, str], ...] | None] = ContextVar(
    "meisa_bridge_outgoing_trace", default=None
)
# The trace id (32 hex digits) of the call being delivered, for log records.
LOGGED: ContextVar[str | None] = ContextVar("meisa_bridge_logged_trace", default=None)


class MessageTrace:
    """One message's trace. This class is the no-op (`NO_TRACE`); bridge.observability.otel
    records."""

    __slots__ = ()

    @property
    def trace_id(self) -> str | None:
        """32 hex digits, for the DLQ headers and the log lines; None when not traced."""
        return None

    def decoded(self, envelope: Envelope | None) -> None:
        """Decoding ended (None: it failed)."""

    def mapped(self) -> None:
        """The rules ran (whether they built calls or failed)."""

    def waiting(self, stage: Wait) -> None:
        """A wait starts now."""

    def waited(self, stage: Wait) -> None:
        """The wait started by `waiting` (or by the last step) ends now."""

    def finish(self, outcome: str, error: BaseException | None = None) -> None:
        """The message is done: ok, skipped, dlq or cancelled. Only the first call counts."""

    def log_fields(self) -> Mapping[str, str]:
        """Extra fields for a log record about this message: {"trace_id": ...} or nothing."""
        return {}


class AttemptTrace:
    """One attempt of a call; the no-op is `NO_ATTEMPT`."""

    __slots__ = ()

    def acquired(self) -> None:
        """The rate governor let the attempt go: the request is about to be sent."""

    def ended(self, status: int | None, error: BaseException | None) -> None:
        """The attempt's answer: an HTTP status, and the error it was classified as (if any)."""


class CallTrace:
    """One call's trace while it is delivered; `with` it, so the log lines of its attempts and
    retries carry the trace id. The no-op is `NO_CALL_TRACE`."""

    __slots__ = ()

    def attempt(self, call: MeisaCall, number: int) -> AttemptTrace:
        return NO_ATTEMPT

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class Traced(Protocol):
    """What a call is delivered for: a message carrying its trace (bridge.pipeline.message)."""

    @property
    def trace(self) -> MessageTrace: ...


class Tracing:
    """Makes the traces; this class is the no-op (`NO_TRACING`)."""

    def begin(self, record: Record) -> MessageTrace:
        """A message was read and is about to be decoded."""
        return NO_TRACE

    def for_call(self, call: MeisaCall, messages: Sequence[Traced]) -> CallTrace:
        """A call leaves its lane for delivery, on behalf of `messages` (several when upserts
        coalesced)."""
        return NO_CALL_TRACE

    def shutdown(self) -> None:
        """Export what is recorded and stop."""


NO_TRACE = MessageTrace()
NO_ATTEMPT = AttemptTrace()
NO_CALL_TRACE = CallTrace()
NO_TRACING = Tracing()
