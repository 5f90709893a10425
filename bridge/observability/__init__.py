"""Observability: metrics, health endpoints and JSON logging with redaction.

Three parts, each usable alone (the names below are the public API):

* `Metrics` (metrics.py): one method per metric on a dedicated prometheus_client registry.
* Logging (logs.py, redaction.py): `configure_logging` installs one stderr handler with a
  `RedactionFilter` (API keys, registered secrets, emails masked by default) and a JSON or text
  formatter. `register_secret` / `register_config_secrets` add values that must never be logged.
* Health (health.py): `HealthState` is what the pipeline reports; `HealthServer` serves /metrics,
  /healthz and /readyz from a background thread (`start_in_thread`) or in the running event loop
  (`await serve()`); `linger` and `serve_refusal` keep them up after a halt or a refused start.
"""

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
]
