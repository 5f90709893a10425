"""Observability: metrics, health endpoints and JSON logging with redaction.

Four parts, each usable alone (the names below are the public API):

* `Metrics` (metrics.py): one method per metric on a dedicated prometheus_client registry.
* Logging (logs.py, redaction.py): `configure_logging` installs one stderr handler with a
  `RedactionFilter` (API keys, registered secrets, emails masked by default) and a JSON or text
  formatter. `register_secret` / `register_config_secrets` add values that must never be logged.
* Health (health.py): `HealthState` is what the pipeline reports; `HealthServer` serves /metrics,
  /healthz and /readyz from a background thread (`start_in_thread`) or in the running event loop
  (`await serve()`); `linger` and `serve_refusal` keep them up after a halt or a refused start.
* Tracing (tracing.py: the hooks and their no-ops; otel.py: OpenTelemetry, imported only when
  `start_tracing` finds tracing on).
"""

from __future__ import annotations

import os
from typing import Any

from bridge.observability.health import (
    HealthServer,
    HealthState,
    build_app,
    linger,
    serve_refusal,
)
from bridge.observability.logs import (
    JsonFormatter,
    RepeatLimiter,
    TextFormatter,
    configure_logging,
)
from bridge.observability.metrics import MetricName, Metrics, NullMetrics
from bridge.observability.redaction import (
    REDACTED,
    RedactionFilter,
    clear_secrets,
    mask_email,
    redact,
    register_config_secrets,
    register_secret,
)
from bridge.observability.tracing import NO_TRACING, Tracing
from bridge.settings import TracingSettings

__all__ = [
    "REDACTED",
    "HealthServer",
    "HealthState",
    "JsonFormatter",
    "MetricName",
    "Metrics",
    "NullMetrics",
    "RedactionFilter",
    "RepeatLimiter",
    "TextFormatter",
    "build_app",
    "clear_secrets",
    "configure_logging",
    "linger",
    "mask_email",
    "redact",
    "register_config_secrets",
    "register_secret",
    "serve_refusal",
    "start_tracing",
]


def start_tracing(settings: TracingSettings, *, exporter: Any = None) -> Tracing:
    """The tracing `settings` ask for (`OTEL_SDK_DISABLED=true` turns it off); `exporter` (an
    OpenTelemetry SpanExporter, e.g. a test's InMemorySpanExporter) replaces the OTLP one and
    turns tracing on."""
    disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    if exporter is None and (disabled or not settings.enabled):
        return NO_TRACING
    from bridge.observability.otel import OtelTracing

    return OtelTracing.start(settings, exporter=exporter)
