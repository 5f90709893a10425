"""Redaction for everything that leaves the process as text: API keys, secrets, emails.

API keys (``meisa_live_...``/``meisa_test_...``) and every value passed to `register_secret` are
replaced by ``[REDACTED]``; emails are masked (``s***@example.com``) unless masking is turned off.
`RedactionFilter` applies this to log records before any formatter sees them.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from collections.abc import Mapping

from bridge.settings import BridgeSettings

REDACTED = "[REDACTED]"
API_KEY_RE = re.compile(r"meisa_(?:live|test)_[A-Za-z0-9_]+")
_LOCAL = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-"  # RFC 5322 dot-atom characters
EMAIL_RE = re.compile(rf"([{_LOCAL}])[{_LOCAL}]*@(?=[A-Za-z0-9\[])")
# Extras whose name says "secret" are dropped whatever their value looks like.
_SECRET_NAME_RE = re.compile(r"(?i)(password|passwd|secret|api[_-]?key|authorization|token)")

# Attributes every LogRecord has; anything else on a record is an `extra`.
RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


class _SecretRegistry:
    """Process-wide: a secret registered by the loader must be redacted by every handler."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.pattern: re.Pattern[str] | None = None
        self.lock = threading.Lock()

    def add(self, value: str) -> None:
        with self.lock:
            if value in self.values:
                return
            self.values.add(value)
            # Longest first, so a secret that contains another is removed whole.
            ordered = sorted(self.values, key=len, reverse=True)
            self.pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def clear(self) -> None:
        with self.lock:
            self.values.clear()
            self.pattern = None


_SECRETS = _SecretRegistry()


def register_secret(value: str | None) -> None:
    """Redact `value` from every log line from now on (API keys, SASL passwords, ...)."""
    if value:
        _SECRETS.add(value)


def clear_secrets() -> None:
    """Forget every registered secret (tests use it to isolate cases)."""
    _SECRETS.clear()


def register_config_secrets(config: BridgeSettings) -> None:
    """Register the API key, the proxy's password and every Kafka property that holds a
    credential."""
    register_secret(config.meisa.api_key.get_secret_value())
    proxy = urllib.parse.urlsplit(config.meisa.proxy.get_secret_value())
    if proxy.password:
        register_secret(proxy.password)
        register_secret(urllib.parse.unquote(proxy.password))
    for name, value in config.kafka.items():
        if _SECRET_NAME_RE.search(name) or name.endswith(".key.pem"):
            register_secret(str(value))


def mask_email(text: str) -> str:
    """Mask every email in `text`: ``sarah@example.com`` -> ``s***@example.com``."""
    return EMAIL_RE.sub(r"\1***@", text)


def redact(text: str, *, mask_emails: bool = True) -> str:
    """Remove registered secrets and API keys from `text`, and mask emails unless told not to."""
    pattern = _SECRETS.pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = API_KEY_RE.sub(REDACTED, text)
    return mask_email(text) if mask_emails else text


class RedactionFilter(logging.Filter):
    """Rewrites each record in place (message, extras, traceback) before any formatter sees it."""

    def __init__(self, *, mask_emails: bool = True) -> None:
        super().__init__()
        self.mask_emails = mask_emails

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad %-args must not lose the line
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = self._text(message), None
        for key in [k for k in record.__dict__ if k not in RECORD_ATTRS]:
            record.__dict__[key] = self._value(key, record.__dict__[key])
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._text(record.exc_text)
        if record.stack_info:
            record.stack_info = self._text(record.stack_info)
        return True

    def _text(self, text: str) -> str:
        return redact(text, mask_emails=self.mask_emails)

    def _value(self, key: object, value: object) -> object:
        if isinstance(key, str) and _SECRET_NAME_RE.search(key) and value:
            return REDACTED
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {str(k): self._value(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._value(None, v) for v in value]
        return self._text(str(value))
