"""Deployment configuration: one YAML file with ${ENV} interpolation -> frozen, validated models.

The loader (`load_config`) interpolates `${VAR}` and `${VAR:-default}`, validates every section
and reports errors as `FILE:LINE: FIELD: message` (see bridge.errors.ConfigError). A file that
holds only `rules:` (or `rules_file:`) is accepted by `validate` and `plan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_BASE_URL = "https://api.meisa.io/api/v1"


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
    base_url: str = DEFAULT_BASE_URL
    api_key: SecretStr = field(default_factory=lambda: SecretStr(""))
    timeout: float = 10.0
    # Overrides of the limits GET /ping reports; None means "as the key says".
    rate_limit_per_minute: int | None = None
    rate_limit_per_hour: int | None = None
    # This replica's share of the key's budget (1/replicas when several bridges share a key).
    rate_share: float = 1.0
    retry_max_attempts: int = 10
    retry_base_seconds: float = 0.5
    retry_cap_seconds: float = 30.0
    retry_after_cap_seconds: float = 300.0
    # A track to a contact that is not there yet is retried this many times before it is poison.
    not_found_retries: int = 3
    transport: Literal["httpx", "aiohttp"] = "aiohttp"


@dataclass(frozen=True, kw_only=True)
class CodecSettings:
    format: Literal["auto", "json", "cloudevents", "avro"] = "auto"
    type_field: str = "type"
    id_field: str = "id"
    time_field: str | None = None
    schema_registry_url: str | None = None
    schemas_dir: str | None = None
    # topic -> Avro schema name (in schemas_dir) for schemaless Avro topics.
    topic_schemas: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PipelineSettings:
    max_in_flight: int = 32
    max_buffered_per_partition: int = 2000
    batch_size: int = 500
    commit_interval_seconds: float = 2.0
    shutdown_grace_seconds: float = 30.0
    revoke_grace_seconds: float = 10.0


@dataclass(frozen=True, kw_only=True)
class DlqSettings:
    topic: str | None = None
    max_consecutive: int = 100
    max_ratio: float = 0.5
    ratio_window: int = 200


@dataclass(frozen=True, kw_only=True)
class SuppressionSettings:
    enabled: bool = True
    interval_seconds: float = 900.0


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    host: str = "0.0.0.0"  # health/metrics are meant to be scraped from the pod network
    port: int = 9400


@dataclass(frozen=True, kw_only=True)
class LoggingSettings:
    level: str = "INFO"
    format: Literal["json", "text"] = "json"
    mask_emails: bool = True


@dataclass(frozen=True, kw_only=True)
class BridgeConfig:
    """Everything one deployment needs. `rules` holds the compiled rules (bridge.rules)."""

    source: str = "<memory>"
    kafka: Mapping[str, Any] = field(default_factory=dict)
    topics: tuple[str, ...] = ()
    meisa: MeisaSettings = field(default_factory=MeisaSettings)
    codec: CodecSettings = field(default_factory=CodecSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    dlq: DlqSettings = field(default_factory=DlqSettings)
    suppression: SuppressionSettings = field(default_factory=SuppressionSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    rules: Any = None
