"""Logging setup: one stderr handler, JSON (one object per line) or text, always redacted.

With tracing on, a record logged while a call is delivered (its attempts, retries, waits) carries
the call's `trace_id`; the pipeline adds it to its lines about a message (dead-lettered, skipped).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from bridge.observability.redaction import RECORD_ATTRS, RedactionFilter
from bridge.observability.tracing import LOGGED
from bridge.settings import LoggingSettings

# uvicorn attaches an ANSI-coloured copy of its message for terminals; it is noise in a log line.
_DROPPED = RECORD_ATTRS | {"color_message"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _DROPPED}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the record's extras (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        out: dict[str, Any] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """Human-readable: ``time LEVEL logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        if not extras:
            return line
        head, sep, tail = line.partition("\n")
        return f"{head} {extras}{sep}{tail}"


class TraceIdFilter(logging.Filter):
    """Adds `trace_id` to a record logged while a traced call is delivered."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace_id = LOGGED.get()
        if trace_id is not None and not hasattr(record, "trace_id"):
            record.trace_id = trace_id
        return True


class _BridgeHandler(logging.StreamHandler[TextIO]):
    """Marks the handler configure_logging owns, so calling it again replaces, not duplicates."""


def configure_logging(
    settings: LoggingSettings, *, stream: TextIO | None = None
) -> logging.Handler:
    """Install the bridge's handler on the root logger (idempotent) and return it."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _BridgeHandler)]:
        root.removeHandler(old)
    handler = _BridgeHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    handler.addFilter(RedactionFilter(mask_emails=settings.mask_emails))
    handler.addFilter(TraceIdFilter())
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    # One INFO line per HTTP request would drown the bridge's own lines.
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return handler


class RepeatLimiter:
    """Lets one report per key through every `interval` seconds and counts the ones held back.

    A broker outage repeats the same client error on every poll; one line per interval, with the
    count of repeats, says as much without flooding the log.
    """

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}

    def allow(self, key: Hashable) -> int | None:
        """None: hold this one back. Otherwise report it, with the number held back since."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)
