"""Settings models: what one deployment's YAML file may say, with types, defaults and meanings.

This module imports nothing else of the bridge, so every package can depend on it. The loader
(bridge.config) sits on top: it reads the YAML, fills these models and compiles the rules.
`meisa-bridge config-doc` renders docs/configuration.md from the descriptions here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_BASE_URL = "https://api.meisa.io/api/v1"
API_KEY_ENV = "MEISA_API_KEY"
COMMIT_METADATA_MAX_BYTES = 4000  # under the broker's default offset.metadata.max.bytes (4096)
DEFAULT_GROUP_ID = "meisa-bridge"
LEDGER_TOPIC_SUFFIX = ".sent-emails"  # the ledger topic by default: <kafka group.id>.sent-emails
# Values a setting took once and no longer does, with why: the loader names the reason and the
# remaining choices instead of a bare "must be one of".
RETIRED_VALUES: dict[tuple[str, str], str] = {
    ("meisa.transport", "aiohttp"): "the aiohttp engine was removed (pyreqwest does its work "
    "with less CPU per request)",
}


def doc(text: str) -> dict[str, str]:
    """Field metadata carrying the setting's meaning (rendered into the configuration doc)."""
    return {"doc": text}


class SecretStr:
    """A secret that never shows itself in repr, str, logs or exceptions."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')" if self._value else "SecretStr('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, kw_only=True)
class MeisaSettings:
    """The Meisa API: where it is, the key, retries and the rate budget."""

    base_url: str = field(
        default=DEFAULT_BASE_URL,
        metadata=doc(
            "Base URL of the Meisa API (http:// or https://). Point it at a sandbox explicitly; "
            "the client follows no redirects."
        ),
    )
    api_key: SecretStr = field(
        default_factory=lambda: SecretStr(""),
        metadata=doc(
            f"The API key, usually `${{{API_KEY_ENV}}}`. When empty, `api_key_file` is read, "
            f"else the `{API_KEY_ENV}` environment variable. Never logged."
        ),
    )
    api_key_file: str | None = field(
        default=None,
        metadata=doc(
            "A file holding the API key (e.g. a mounted secret), read at load when `api_key` is "
            "empty; a relative path is relative to the config file."
        ),
    )
    timeout: float = field(
        default=10.0,
        metadata=doc(
            "Seconds each HTTP request may take (connect, write, read and pool wait each); a "
            "timeout is a transient error and is retried."
        ),
    )
    rate_limit_per_minute: int | None = field(
        default=None,
        metadata=doc("Overrides the per-minute limit `GET /ping/` reports; empty: the key's."),
    )
    rate_limit_per_hour: int | None = field(
        default=None,
        metadata=doc("Overrides the per-hour limit `GET /ping/` reports; empty: the key's."),
    )
    rate_share: float | None = field(
        default=None,
        metadata=doc(
            "This replica's share of the key's budget. Empty: follow the partitions (the mean, "
            "over the subscribed topics, of the fraction of each topic's partitions this "
            "replica owns, recomputed on every rebalance); a number fixes it (replay: the whole "
            "budget when empty)."
        ),
    )
    retry_max_attempts: int = field(
        default=10,
        metadata=doc(
            "Transient errors are retried without limit; after this many attempts each further "
            "retry of a call is logged at WARNING."
        ),
    )
    retry_base_seconds: float = field(
        default=0.5,
        metadata=doc(
            "First back-off step (full jitter, doubling per attempt); also the most jitter "
            "added to a server's Retry-After."
        ),
    )
    retry_cap_seconds: float = field(
        default=30.0, metadata=doc("Largest back-off between two attempts of a call.")
    )
    retry_after_cap_seconds: float = field(
        default=300.0,
        metadata=doc("A server's `Retry-After` is honoured up to this many seconds."),
    )
    not_found_retries: int = field(
        default=3,
        metadata=doc(
            "Replay and DLQ redrive: a track or tag whose contact does not exist yet waits for it "
            "as the live pipeline does (from 1 s, doubling up to 30 s) for at most this many "
            "404s, then it is poison (the live pipeline's limit is "
            "`pipeline.contact_wait_seconds`)."
        ),
    )
    proxy: SecretStr = field(
        default_factory=lambda: SecretStr(""),
        metadata=doc(
            "HTTP proxy for Meisa calls (`http://host:port`, or `http://user:password@host:port`; "
            "HTTPS goes through it with CONNECT), e.g. `${HTTPS_PROXY:-}`. Empty: no proxy; the "
            "proxy environment variables are not read by themselves. Never logged."
        ),
    )
    no_proxy: tuple[str, ...] = field(
        default=(),
        metadata=doc(
            "Hosts reached without the proxy: a list or a comma-separated string as in "
            "`NO_PROXY` (`example.com` also covers its subdomains, `.example.com` only them; "
            "IP addresses, CIDR blocks such as `10.0.0.0/8`, `host:port`, `*` for every host)."
        ),
    )
    ca_file: str | None = field(
        default=None,
        metadata=doc(
            "PEM bundle of CA certificates trusted for Meisa's (or the proxy's) TLS certificate, "
            "in addition to the public CAs (certifi); relative to the config file. For a private "
            "CA or a TLS-inspecting proxy."
        ),
    )
    transport: Literal["pyreqwest", "httpx"] = field(
        default="pyreqwest",
        metadata=doc(
            "HTTP engine under httpx's API: `pyreqwest` (Rust reqwest; the least CPU per "
            "request) or `httpx` (httpx's own pool, several times the CPU; the fallback)."
        ),
    )


@dataclass(frozen=True, kw_only=True)
class CodecSettings:
    """How Kafka messages are decoded into events."""

    format: Literal["auto", "json", "cloudevents", "avro", "protobuf", "json_schema"] = field(
        default="auto",
        metadata=doc(
            "Event encoding; `auto` tells plain JSON, CloudEvents (structured or binary), Avro, "
            "Protobuf and JSON Schema apart per message (the registry formats by the schema "
            "type the registry gives for the id). `avro`, `protobuf` and `json_schema` accept "
            "only their own format."
        ),
    )
    type_field: str = field(
        default="type",
        metadata=doc(
            "Field of a plain JSON event that holds its type. A registry or local schema "
            "message without it takes its schema's name (Avro record or Protobuf message full "
            "name, JSON Schema `title`)."
        ),
    )
    id_field: str = field(
        default="id",
        metadata=doc("Field of a plain JSON event that holds its unique id (idempotency keys)."),
    )
    time_field: str | None = field(
        default=None,
        metadata=doc(
            "Field of a plain JSON event that holds its time (for `max_age`); empty: `time`, "
            "else the Kafka timestamp."
        ),
    )
    schema_registry_url: str | None = field(
        default=None,
        metadata=doc(
            "Confluent-compatible schema registry for the Confluent wire format (magic byte 0 + "
            "schema id) of Avro, Protobuf and JSON Schema; several URLs comma-separated."
        ),
    )
    schema_registry_user: str | None = field(
        default=None,
        metadata=doc("Basic auth user name for the schema registry (with the password)."),
    )
    schema_registry_password: SecretStr = field(
        default_factory=lambda: SecretStr(""),
        metadata=doc(
            "Basic auth password for the schema registry, e.g. `${SCHEMA_REGISTRY_PASSWORD}`. "
            "Never logged."
        ),
    )
    schema_registry_token: SecretStr = field(
        default_factory=lambda: SecretStr(""),
        metadata=doc(
            "Bearer token for the schema registry, e.g. `${SCHEMA_REGISTRY_TOKEN}` (not with "
            "basic auth). Never logged."
        ),
    )
    schema_registry_logical_cluster: str | None = field(
        default=None,
        metadata=doc(
            "With a bearer token: the registry's logical cluster id, sent as "
            "`target-sr-cluster` (Confluent Cloud `lsrc-...`); empty elsewhere."
        ),
    )
    schema_registry_ca_file: str | None = field(
        default=None,
        metadata=doc(
            "PEM bundle of the CAs that sign the registry's certificate (a private CA); empty: "
            "the public CAs. Relative to the config file."
        ),
    )
    schema_registry_timeout: float = field(
        default=10.0,
        metadata=doc(
            "Seconds one registry request may take; a registry that does not answer is "
            "retried (never dead-lettered)."
        ),
    )
    schemas_dir: str | None = field(
        default=None,
        metadata=doc(
            "Directory of local schemas, relative to the config file: `.avsc` (Avro "
            "single-object encoding and `topic_schemas`), `.proto` files and descriptor sets "
            "(`.desc`, `.binpb`, `.pb`: `protoc --include_imports --descriptor_set_out`)."
        ),
    )
    topic_schemas: Mapping[str, str] = field(
        default_factory=dict,
        metadata=doc(
            "Topic -> local schema for topics without a registry: an Avro schema name (raw "
            "Avro values) or a Protobuf message full name such as `acme.users.SignedUp` (raw "
            "Protobuf values), from `schemas_dir`."
        ),
    )


@dataclass(frozen=True, kw_only=True)
class PipelineSettings:
    """Concurrency, buffering and commits of the consume loop."""

    max_in_flight: int = field(
        default=64,
        metadata=doc("Concurrent Meisa calls; triggers have a lane of as many slots of their own."),
    )
    read_ahead_bytes: int = field(
        default=64 * 1024 * 1024,
        metadata=doc(
            "Fetched messages not finished yet (waiting for the rate budget, or read ahead past "
            "those that wait) held over all partitions, in bytes: each counts its key, value and "
            "headers plus about 3.5 KiB for what the bridge builds from it. Past it the "
            "partitions holding most pause; each partition keeps a reserve of an equal part of "
            "half of it, so a quiet topic is always read (docs/ordering.md, Read-ahead)."
        ),
    )
    max_buffered_per_partition: int = field(
        default=50_000,
        metadata=doc(
            "A partition with this many unfinished messages is paused, and resumed at half "
            "(a cap in messages on top of `read_ahead_bytes`)."
        ),
    )
    batch_size: int = field(default=500, metadata=doc("Messages per `consume()` call."))
    commit_interval_seconds: float = field(
        default=0.05,
        metadata=doc(
            "Finished offsets are committed at most this long after they finish (also on "
            "revoke and shutdown); no commit is sent while nothing finishes. A crash re-sends "
            "at most this long of finished work, plus the commit's round trip."
        ),
    )
    commit_metadata_max_bytes: int = field(
        default=COMMIT_METADATA_MAX_BYTES,
        metadata=doc(
            "Offsets finished past the committed one go into the commit's metadata, up to this "
            "many bytes (the broker's `offset.metadata.max.bytes` is 4096 by default), so the "
            "next owner of the partition does not send them again; 0: none."
        ),
    )
    shutdown_grace_seconds: float = field(
        default=30.0,
        metadata=doc("On SIGTERM/SIGINT, calls already started may finish within this time."),
    )
    revoke_grace_seconds: float = field(
        default=10.0,
        metadata=doc("Calls already started for revoked partitions may finish within this time."),
    )
    max_skew_seconds: float = field(
        default=0.0,
        metadata=doc(
            "Event-time lockstep: how many seconds of event time one partition may run ahead "
            "of an empty partition that is still being read."
        ),
    )
    max_idle_seconds: float = field(
        default=5.0,
        metadata=doc(
            "How long an empty partition that is neither paused nor at its end is waited for "
            "before the others run ahead of it."
        ),
    )
    contact_wait_seconds: float = field(
        default=300.0,
        metadata=doc(
            "A track or tag answered 404 waits this long for its contact to appear (holding no "
            "slot; from 1 s between attempts, doubling up to 30 s), then is poison."
        ),
    )
    identity_capacity: int = field(
        default=100_000,
        metadata=doc(
            "Contact identities (external_id/email links) and known contacts remembered, "
            "least recently used dropped first."
        ),
    )
    event_loop: Literal["uvloop", "asyncio"] = field(
        default="uvloop",
        metadata=doc(
            "The event loop `run` drives everything on: `uvloop` (libuv; about a seventh less "
            "CPU per Meisa call, bench/README.md) or `asyncio` (the standard library's)."
        ),
    )


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


@dataclass(frozen=True, kw_only=True)
class BridgeSettings:
    """Every setting of one deployment file, apart from the rules (see bridge.config)."""

    source: str = "<memory>"
    kafka: Mapping[str, Any] = field(
        default_factory=dict,
        metadata=doc(
            "librdkafka properties, passed through as given (values become strings); see "
            "below for what the bridge sets itself."
        ),
    )
    topics: tuple[str, ...] = field(
        default=(), metadata=doc("A topic name or a list of topic names to consume.")
    )
    meisa: MeisaSettings = field(default_factory=MeisaSettings)
    codec: CodecSettings = field(default_factory=CodecSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    dlq: DlqSettings = field(default_factory=DlqSettings)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    suppression: SuppressionSettings = field(default_factory=SuppressionSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    reload: ReloadSettings = field(default_factory=ReloadSettings)
    outcomes: OutcomeSettings = field(default_factory=OutcomeSettings)


# The sections of the file that map onto a settings model, in the order the docs show them.
SECTIONS: Mapping[str, type[Any]] = {
    "meisa": MeisaSettings,
    "codec": CodecSettings,
    "pipeline": PipelineSettings,
    "dlq": DlqSettings,
    "ledger": LedgerSettings,
    "suppression": SuppressionSettings,
    "server": ServerSettings,
    "logging": LoggingSettings,
    "tracing": TracingSettings,
    "reload": ReloadSettings,
    "outcomes": OutcomeSettings,
}
# Top-level keys that are not a section, with their meaning.
TOP_LEVEL_DOCS: Mapping[str, str] = {
    "kafka": "librdkafka properties (see `kafka` below).",
    "topics": "A topic name or a list of topic names to consume.",
    "dead_letter_topic": "Shorthand for `dlq.topic`.",
    "rules": "The rules, inline (a list; see the rules reference).",
    "rules_file": "A file holding only `rules:`; relative to this config file. Not with `rules`.",
}
TOP_LEVEL_KEYS: tuple[str, ...] = (
    "kafka",
    "topics",
    "dead_letter_topic",
    "dlq",
    "ledger",
    "meisa",
    "codec",
    "pipeline",
    "suppression",
    "server",
    "logging",
    "tracing",
    "reload",
    "outcomes",
    "rules",
    "rules_file",
)
