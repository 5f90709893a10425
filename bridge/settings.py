"""Settings models: what one deployment's YAML file may say, with types, defaults and meanings.

This module and the two it builds on import nothing else of the bridge, so every package can
depend on them: bridge.settingsbase (`doc`, `SecretStr`) and bridge.opsettings (the sections
about running the bridge: dead letters, ledger, unsubscribed list, health server, logs, traces),
whose names this module exports too. The loader (bridge.config) sits on top: it reads the YAML,
fills these models and compiles the rules. `meisa-bridge config-doc` renders
docs/configuration.md from the descriptions here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.opsettings import (
    DEFAULT_GROUP_ID,
    LEDGER_TOPIC_SUFFIX,
    DlqSettings,
    LedgerSettings,
    LoggingSettings,
    OutcomeSettings,
    ReloadSettings,
    ServerSettings,
    SuppressionSettings,
    TracingSettings,
    live_group_id,
)
from bridge.settingsbase import SecretStr, doc

__all__ = [  # this module's names and those it exports from the two below it
    "API_KEY_ENV",
    "COMMIT_METADATA_MAX_BYTES",
    "DEFAULT_BASE_URL",
    "DEFAULT_GROUP_ID",
    "LEDGER_TOPIC_SUFFIX",
    "RETIRED_VALUES",
    "SECTIONS",
    "TOP_LEVEL_DOCS",
    "TOP_LEVEL_KEYS",
    "BridgeSettings",
    "CodecSettings",
    "DlqSettings",
    "LedgerSettings",
    "LoggingSettings",
    "MeisaSettings",
    "OutcomeSettings",
    "PipelineSettings",
    "ReloadSettings",
    "SecretStr",
    "ServerSettings",
    "SuppressionSettings",
    "TracingSettings",
    "doc",
    "live_group_id",
]

DEFAULT_BASE_URL = "https://api.meisa.io/api/v1"
API_KEY_ENV = "MEISA_API_KEY"
COMMIT_METADATA_MAX_BYTES = 4000  # under the broker's default offset.metadata.max.bytes (4096)
# Values a setting took once and no longer does, with why: the loader names the reason and the
# remaining choices instead of a bare "must be one of".
RETIRED_VALUES: dict[tuple[str, str], str] = {
    ("meisa.transport", "aiohttp"): "the aiohttp engine was removed (pyreqwest does its work "
    "with less CPU per request)",
}


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
    transport: Literal["h1", "pyreqwest", "httpx"] = field(
        default="h1",
        metadata=doc(
            "HTTP engine under httpx's API: `h1` (HTTP/1.1 on the event loop itself with "
            "httptools' parser, no thread; the least CPU per request; an `http://` proxy only), "
            "`pyreqwest` (Rust reqwest on a thread of its own; also an `https://` proxy) or "
            "`httpx` (httpx's own pool, several times the CPU; the fallback)."
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
    adaptive_in_flight: bool = field(default=True, metadata=doc(
        "Keep on the wire only the calls Meisa's answer times show it needs (4 to `max_in_flight`, "
        "as TCP Vegas sizes a window): more only queue, and a crash re-sends every call on the "
        "wire. false: always `max_in_flight` (docs/kafka.md, Commits keep up with the work)."
    ))  # fmt: skip
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
        default=0.02,
        metadata=doc(
            "Finished offsets are committed at most this long after they finish (also on "
            "revoke and shutdown); no commit is sent while nothing finishes. While calls may "
            "finish the consumer's thread comes back for commits every half of it. A crash "
            "re-sends the calls on the wire and about this long of finished work, plus a "
            "commit's round trip (docs/kafka.md, Commits keep up with the work)."
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
    enroll_batch_seconds: float = field(
        default=1.0,
        metadata=doc(
            "Enrolments to one sequence queued within this many seconds go as one bulk-enroll "
            "of up to 500 addresses (an enrolment with metadata, trigger_source or max_age goes "
            "on its own); a person's later call sends their batch at once; 0: each on its own."
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
