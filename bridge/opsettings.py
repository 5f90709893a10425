"""Settings of running the bridge around its calls: the dead-letter topic and its breaker, the
sent-email ledger, the unsubscribed list, the health and metrics server, logs, traces, reloading
the rules and the outcome topic.

Part of the settings models (bridge.settings exports these names too); imports nothing of the
bridge but bridge.settingsbase.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.settingsbase import doc

DEFAULT_GROUP_ID = "meisa-bridge"
LEDGER_TOPIC_SUFFIX = ".sent-emails"  # the ledger topic by default: <kafka group.id>.sent-emails


@dataclass(frozen=True, kw_only=True)
class DlqSettings:
    """The dead-letter topic and the breaker that halts instead of draining a topic into it."""

    topic: str | None = field(
        default=None,
        metadata=doc(
            "Dead-letter topic (also settable as top-level `dead_letter_topic`); empty: a poison "
            "message halts the bridge."
        ),
    )
    max_consecutive: int = field(
        default=100, metadata=doc("Halt after this many poison messages in a row.")
    )
    max_ratio: float = field(
        default=0.5,
        metadata=doc(
            "Halt when more than this share of the last `ratio_window` messages is poison."
        ),
    )
    ratio_window: int = field(
        default=200, metadata=doc("Number of recent messages `max_ratio` looks at.")
    )


@dataclass(frozen=True, kw_only=True)
class LedgerSettings:
    """The sent-email ledger: a compacted topic of trigger idempotency keys Meisa accepted."""

    enabled: bool = field(
        default=True,
        metadata=doc(
            "Keep the ledger. `false` leaves only Meisa's one-hour idempotency window: a trigger "
            "delivered again more than an hour later (an outage, a rewind, a replay, a redrive) "
            "can email a person twice. The bridge says so in a WARNING at start-up."
        ),
    )
    topic: str | None = field(
        default=None,
        metadata=doc(
            f"Compacted Kafka topic of the trigger idempotency keys Meisa accepted; empty: "
            f"`<kafka group.id>{LEDGER_TOPIC_SUFFIX}` (`{DEFAULT_GROUP_ID}{LEDGER_TOPIC_SUFFIX}` "
            f"by default). Created when missing."
        ),
    )
    retention_days: float = field(
        default=7.0, metadata=doc("How long a sent email's key is remembered.")
    )
    load_timeout_seconds: float = field(
        default=120.0,
        metadata=doc(
            "Start-up creates the topic if needed and reads its last `retention_days` before "
            "consuming; past this many seconds it refuses to start."
        ),
    )
    max_keys: int = field(
        default=1_000_000,
        metadata=doc(
            "Keys held in memory (about 150 bytes each); past this the oldest are forgotten first."
        ),
    )
    partitions: int = field(
        default=6, metadata=doc("Partitions of the ledger topic when the bridge creates it.")
    )

    def topic_for(self, kafka: Mapping[str, Any]) -> str | None:
        """The ledger topic of the deployment whose live `kafka:` properties these are (never a
        replay's, a redrive's or a shadow's own group); None when the ledger is turned off."""
        if not self.enabled:
            return None
        return self.topic or f"{live_group_id(kafka)}{LEDGER_TOPIC_SUFFIX}"


def live_group_id(kafka: Mapping[str, Any]) -> str:
    """The consumer group of the live bridge for these `kafka:` properties."""
    return str(kafka.get("group.id") or DEFAULT_GROUP_ID)


@dataclass(frozen=True, kw_only=True)
class SuppressionSettings:
    """The unsubscribed list: triggers to those addresses are skipped before they are sent."""

    enabled: bool = field(
        default=True,
        metadata=doc("Poll Meisa's unsubscribed list (needs `contacts:read`; warns once without)."),
    )
    interval_seconds: float = field(
        default=900.0, metadata=doc("Seconds between two polls of the unsubscribed list.")
    )


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """The HTTP server for `/metrics`, `/healthz` and `/readyz`."""

    host: str = field(
        default="0.0.0.0",  # health/metrics are meant to be scraped from the pod network
        metadata=doc("Address the health and metrics server listens on."),
    )
    port: int = field(default=9400, metadata=doc("Port of the health and metrics server."))
    halt_linger_seconds: float = field(
        default=0.0,
        metadata=doc(
            "After a halt or a refused start, keep serving `/metrics` and `/readyz` this long "
            "before exiting, so monitoring can scrape why; 0 exits at once."
        ),
    )


@dataclass(frozen=True, kw_only=True)
class LoggingSettings:
    """Log records on stderr."""

    level: str = field(
        default="INFO", metadata=doc("Log level: DEBUG, INFO, WARNING, ERROR (any case).")
    )
    format: Literal["json", "text"] = field(
        default="json", metadata=doc("`json`: one JSON object a line; `text`: for people.")
    )
    mask_emails: bool = field(
        default=True,
        metadata=doc("Mask email addresses in log records (`s***@example.com`)."),
    )


@dataclass(frozen=True, kw_only=True)
class TracingSettings:
    """OpenTelemetry traces of the messages read and the Meisa calls they make (OTLP over HTTP)."""

    enabled: bool = field(
        default=False,
        metadata=doc(
            "Record traces: a span per message that makes calls (decode, map, the waits in "
            "the lockstep, the lane and the rate governor) and one per Meisa attempt; Meisa "
            "receives `traceparent`. Off: nothing of OpenTelemetry is even imported. "
            "`OTEL_SDK_DISABLED=true` turns it off too."
        ),
    )
    endpoint: str | None = field(
        default=None,
        metadata=doc(
            "OTLP/HTTP (protobuf) traces URL, e.g. `http://otel-collector:4318/v1/traces`. "
            "Empty: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` + "
            "`/v1/traces`, else `http://localhost:4318/v1/traces`. Headers (e.g. a collector's "
            "key) come from `OTEL_EXPORTER_OTLP_HEADERS`."
        ),
    )
    sampler_ratio: float | None = field(
        default=None,
        metadata=doc(
            "Share of traces recorded, 0 to 1, for events that do not arrive with a trace; an "
            "event's own `traceparent` decides for itself (parent-based). Empty: "
            "`OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` when set, else 1."
        ),
    )
    service_name: str | None = field(
        default=None,
        metadata=doc("`service.name` of the spans. Empty: `OTEL_SERVICE_NAME`, else meisa-bridge."),
    )
    min_step_ms: float = field(
        default=1.0,
        metadata=doc(
            "A step (decode, map) or wait that took at least this long is a span of its own; a "
            "shorter one is an event on its parent's span (its end and `duration_us`), about a "
            "tenth of the cost of a span. 0: every step is a span."
        ),
    )


@dataclass(frozen=True, kw_only=True)
class ReloadSettings:
    """Reloading the rules without a restart: SIGHUP always, the file watch when asked."""

    watch: bool = field(
        default=False,
        metadata=doc(
            "Also reload the rules when the config file or its `rules_file` changes (checked "
            "every `watch_interval_seconds`; a Kubernetes ConfigMap update counts). SIGHUP "
            "reloads them either way. Only the rules are reloaded; other settings need a restart."
        ),
    )
    watch_interval_seconds: float = field(
        default=2.0,
        metadata=doc(
            "Seconds between two looks at the files; a change is loaded once the files stayed "
            "the same for one interval, so a file being written is not read half-way."
        ),
    )


@dataclass(frozen=True, kw_only=True)
class OutcomeSettings:
    """The outcome topic: one record per finished Meisa call, for other services to read."""

    topic: str | None = field(
        default=None,
        metadata=doc(
            "Kafka topic the outcome of every finished call is written to (sent, scheduled, "
            "skipped and why, dead-lettered; Meisa's ids), keyed by the person; empty: none. "
            "Records carry email addresses as they are. The bridge creates no topic: create it "
            "with the retention you choose."
        ),
    )
    max_pending: int = field(
        default=100_000,
        metadata=doc(
            "Records waiting to be written (a broker that is away); past this, new records are "
            "dropped and counted, and delivery goes on."
        ),
    )
