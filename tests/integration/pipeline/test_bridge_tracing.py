"""Tracing end to end on the real broker and the sandbox over HTTP, with an in-process exporter:
an event that arrives with a trace (a `traceparent` header, CloudEvents' `ce_traceparent` in
binary mode, or the `traceparent` attribute of a structured CloudEvent) gets its spans in that
trace, and Meisa receives a `traceparent` of the same trace naming the attempt's span."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from bridge_harness import (
    ConfigFactory,
    bridge_in_process,
    event,
    produce,
    reached_end,
    read_all,
    wait_for,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bridge import dlq
from bridge.observability import start_tracing
from bridge.sandbox.testing import SandboxHandle
from bridge.settings import TracingSettings

pytestmark = pytest.mark.integration
PLAIN, BINARY, STRUCTURED, POISON = (
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "0af7651916cd43dd8448eb211c80319c",
    "5b8efff798038103d269b633813fc60c",
    "6e0c63257de34c92bf9efcd03927272e",
)
PARENT_SPAN = "00f067aa0ba902b7"


def traceparent(trace_id: str) -> str:
    return f"00-{trace_id}-{PARENT_SPAN}-01"


def cloudevent(user: int, trace_id: str) -> dict[str, Any]:
    plain = event("user.updated", user, 0)
    return {
        "specversion": "1.0",
        "id": plain["id"],
        "source": "/tests",
        "type": "user.updated",
        "datacontenttype": "application/json",
        "data": plain["data"],
        "traceparent": traceparent(trace_id),
    }


def records() -> list[tuple[bytes | None, bytes, list[Any] | None]]:
    plain = event("user.updated", 1, 0)
    binary = event("user.updated", 2, 0)
    binary_headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", binary["id"].encode()),
        ("ce_source", b"/tests"),
        ("ce_type", b"user.updated"),
        ("ce_traceparent", traceparent(BINARY).encode()),
        ("content-type", b"application/json"),
    ]
    poison = event("auth.bad", 4, 0)
    return [
        (b"usr_1", orjson.dumps(plain), [("traceparent", traceparent(PLAIN).encode())]),
        (b"usr_2", orjson.dumps(binary["data"]), binary_headers),
        (
            b"usr_3",
            orjson.dumps(cloudevent(3, STRUCTURED)),
            [("content-type", b"application/cloudevents+json")],
        ),
        (b"usr_4", orjson.dumps(poison), [("traceparent", traceparent(POISON).encode())]),
    ]


def test_an_event_is_traced_into_the_request_meisa_receives(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    bridge_config: ConfigFactory,
) -> None:
    topic, dead = make_topic(), make_topic(name_prefix="dlq")
    group = f"g-trace-{topic}"
    produce(kafka_bootstrap, topic, records())
    exporter = InMemorySpanExporter()
    tracing = start_tracing(TracingSettings(), exporter=exporter)
    with bridge_in_process(bridge_config(topic, group, dlq=dead), tracing) as bridge:
        wait_for(reached_end(kafka_bootstrap, group, topic, 1), 60, "every offset committed")
    assert bridge.exit_code == 0
    spans = list(exporter.get_finished_spans())  # the bridge flushed them as it stopped

    by_trace: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        by_trace.setdefault(format(span.context.trace_id, "032x"), []).append(span)
    assert set(by_trace) == {PLAIN, BINARY, STRUCTURED, POISON}
    for trace_id in (PLAIN, BINARY, STRUCTURED):
        names = {s.name: s for s in by_trace[trace_id]}
        process = names[f"{topic} process"]
        assert process.parent is not None
        assert format(process.parent.span_id, "016x") == PARENT_SPAN
        assert steps(process, by_trace[trace_id]) == {"decode", "map", "wait lockstep", "wait lane"}
        attempt = names["meisa upsert"]
        assert attempt.parent is not None
        assert attempt.parent.span_id == process.context.span_id
        assert attempt.attributes is not None
        assert attempt.attributes["http.response.status_code"] == 200
        assert attempt.attributes["meisa_bridge.rule"] == "profile"
        sent = traceparent_sent(sandbox, trace_id)
        assert sent == f"00-{trace_id}-{attempt.context.span_id:016x}-01"

    (letter,) = read_all(kafka_bootstrap, dead, 1)
    assert dict(letter.headers())[dlq.TRACE_ID] == POISON.encode()
    failed = {s.name: s for s in by_trace[POISON]}
    assert failed["meisa trigger"].attributes is not None
    assert failed["meisa trigger"].attributes["meisa_bridge.outcome"] == "poison"
    assert failed[f"{topic} process"].attributes is not None
    assert failed[f"{topic} process"].attributes["meisa_bridge.outcome"] == "dlq"


def steps(span: ReadableSpan, spans: list[ReadableSpan]) -> set[str]:
    """The steps recorded under `span`: child spans (long ones) and events (short ones)."""
    children = {s.name for s in spans if s.parent and s.parent.span_id == span.context.span_id}
    return (children | {e.name for e in span.events}) - {"meisa upsert", "meisa trigger"}


def traceparent_sent(sandbox: SandboxHandle, trace_id: str) -> str:
    """The traceparent of the one request Meisa received in this trace."""
    sent = [
        r["traceparent"]
        for r in sandbox.requests()
        if r["traceparent"] and r["traceparent"].split("-")[1] == trace_id
    ]
    assert len(sent) == 1, sandbox.requests()
    return str(sent[0])
