"""The one error tree of meisa-bridge.

Retries, DLQ routing and halting key off these types, never off message strings::

    BridgeError
    ├── ConfigError            bad config or rules file; names file, line, rule and field
    │   └── ConfigErrors       several ConfigErrors found in one pass
    ├── StartupRefused         `run` will not start (no rules, Meisa unreachable, key or scopes)
    ├── BrokerError            a Kafka operation failed (commit, metadata, produce, fatal error)
    ├── PoisonError            this message can never succeed as it is -> dead-letter topic
    │   ├── DecodeError        stage "decode": bytes that no codec can read
    │   ├── MappingError       stage "map": a rule could not build its call
    │   │   └── SpecFieldError a field the Meisa spec says does not exist (refused before sending)
    │   ├── RejectedCall       stage "deliver": 400, a 422 other than unsubscribed, 404 of a tag
    │   │   └── ContactNotFound 404 (a track/tag to a missing contact: the pipeline waits first)
    │   └── ContactWaitExpired a 404 that lasted past the contact wait: nobody created the contact
    ├── RetryableError         try again later: 429, 5xx, timeouts, connection resets
    │   ├── RateLimited        429, carries retry_after
    │   ├── ServerError        5xx, may carry retry_after
    │   ├── TransportError     timeout, reset, refused (Meisa or the schema registry)
    │   └── SchemaPending      a registry schema not fetched yet, met on a running event loop
    ├── SkipOutcome            not an error for delivery: the call is dropped and the offset is done
    │   ├── Unsubscribed       422 because the person asked not to be emailed
    │   ├── StaleEvent         older than the action's max_age
    │   ├── Suppressed         address is on the unsubscribed list
    │   ├── AlreadyEnrolled    enroll refused: the contact is already active/paused in the sequence
    │   └── AlreadySent        the sent-email ledger holds this trigger's idempotency key
    ├── HaltError              stop consuming; commit only what is done; never DLQ
    │   ├── Unauthorized       401: the API key is wrong or missing
    │   ├── Forbidden          403: the key lacks a scope
    │   ├── MissingScopes      start-up: rules need scopes the key does not have
    │   ├── WrongBaseUrl       a redirect (3xx), or 404 on GET /ping: base_url misses the API
    │   ├── TlsError           Meisa's (or the proxy's) TLS certificate was refused: not transient
    │   ├── DlqBreakerTripped  too many poison messages in a row or in a window
    │   ├── DeadLetterWriteFailed  the DLQ record was not acknowledged by the broker
    │   ├── NoDeadLetterTopic  a poison message and no dead_letter_topic configured
    │   ├── ShadowWriteRefused a shadow run reached for a Meisa write: refused, never sent
    │   └── UnexpectedDeliveryError  delivery raised outside this tree: halt rather than guess
    └── InternalError          raised and caught inside the bridge, translated before it leaves
        │                      its package; also a ValueError, as the callers catch it
        ├── ExpressionError    a rule expression that does not compile (-> ConfigError)
        ├── EvaluationError    an expression failed on this event (-> MappingError)
        ├── FieldValueError    a field value of the wrong type or choice (-> Config/MappingError)
        ├── OffsetOrderError   an offset not after the partition's last tracked one (ignored)
        └── CallAbandoned      a call's messages were revoked or lost before it started (dropped)
            └── SendAlone      a bulk request of one: its call goes as the plain call instead

Not in the tree: `bridge.sandbox.model.ApiError` is the sandbox server's HTTP error response (the
sandbox stands in for Meisa; the bridge sees its answers only through the client's classification),
and `bridge.meisa.wire.TlsConnectError` is an httpx transport error (transports raise httpx's
types) that the client turns into TlsError.

Messages never contain the API key; emails are masked by the logging layer.
"""

from __future__ import annotations

from typing import Literal

Stage = Literal["decode", "map", "deliver"]


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""


class ConfigError(BridgeError):
    """A config or rules file is wrong. Formats as ``FILE:LINE: rule 'NAME': FIELD: message``."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        rule: str | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.rule = rule
        self.field = field
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        rule = f"rule '{self.rule}': " if self.rule is not None else ""
        field = f"{self.field}: " if self.field else ""
        return f"{where}{rule}{field}{self.message}"


class ConfigErrors(ConfigError):
    """Several config errors found in one pass; `errors` holds each of them."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.format() for e in errors))

    def format(self) -> str:
        return "\n".join(e.format() for e in getattr(self, "errors", []))


class StartupRefused(BridgeError):
    """`meisa-bridge run` will not start; the message says why and what to change."""


class BrokerError(BridgeError):
    """A Kafka operation failed: a commit, a metadata or offset lookup, a produce, or a fatal
    consumer error. Raised by bridge.kafka, the only package that talks to the client library.
    `unreachable`: the broker (or the group's coordinator) could not be reached, so the same
    request may go through once it is back; False when it answered no."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class PoisonError(BridgeError):
    """The message can never succeed as it is; it goes to the dead-letter topic.

    `attempts` counts the delivery attempts made before giving up (the DLQ's attempts header).
    It is given when the error is raised; `after_attempts(n)` is the same error as seen after n
    attempts (a new exception: one raised by a single attempt is never changed afterwards).
    """

    stage: Stage = "deliver"
    rule: str | None = None  # the rule whose action failed, when one did (MappingError)

    def __init__(self, message: str = "", *, attempts: int = 1) -> None:
        self.attempts = attempts
        super().__init__(message)

    def after_attempts(self, attempts: int) -> PoisonError:
        return type(self)(str(self), attempts=attempts)


class DecodeError(PoisonError):
    stage: Stage = "decode"


class MappingError(PoisonError):
    """`rule`, `action` (index) and `field` say where, when a rule's action built the call."""

    stage: Stage = "map"

    def __init__(
        self,
        message: str,
        *,
        rule: str | None = None,
        action: int | None = None,
        field: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.rule = rule
        self.action = action
        self.field = field
        super().__init__(message, attempts=attempts)

    def after_attempts(self, attempts: int) -> MappingError:
        return type(self)(
            str(self), rule=self.rule, action=self.action, field=self.field, attempts=attempts
        )


class SpecFieldError(MappingError):
    """A body carries a field the Meisa spec says does not exist (e.g. `tags` on upsert)."""


class RejectedCall(PoisonError):
    """Meisa refused the call for good (400, a 404 of a tag id, a 422 other than unsubscribed)."""

    def __init__(self, message: str, *, status: int, endpoint: str, attempts: int = 1) -> None:
        self.status = status
        self.endpoint = endpoint
        self.detail = message
        super().__init__(f"{endpoint} -> {status}: {message}", attempts=attempts)

    def after_attempts(self, attempts: int) -> RejectedCall:
        return type(self)(
            self.detail, status=self.status, endpoint=self.endpoint, attempts=attempts
        )


class ContactNotFound(RejectedCall):
    """404: the contact is not there (yet). A track is retried before it is poison."""


class ContactWaitExpired(PoisonError):
    """A call answered 404 for longer than the contact wait: nobody created its contact."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message, attempts=attempts)


class RetryableError(BridgeError):
    """Transient; retry with backoff. `retry_after` (seconds) is the server's hint, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class RateLimited(RetryableError):
    """429."""


class ServerError(RetryableError):
    """5xx."""


class TransportError(RetryableError):
    """Timeout, connection reset or refused: the request may or may not have arrived."""


class SchemaPending(RetryableError):
    """A message names a registry schema the decoder has not fetched, and decoding runs on an
    event loop, which a registry request must not block: fetch it off the loop (the decoder's
    `prefetch`) and decode the message again."""


class SkipOutcome(BridgeError):
    """The call is deliberately not made (or is dropped); the offset still counts as done."""

    reason: str = "skipped"
    attempts: int = 0  # requests made for the call before it was skipped (0: none was sent)


class Unsubscribed(SkipOutcome):
    reason = "unsubscribed"


class StaleEvent(SkipOutcome):
    reason = "stale"


class Suppressed(SkipOutcome):
    reason = "suppressed"


class AlreadyEnrolled(SkipOutcome):
    """Meisa refused an enroll because the contact is already active or paused in the sequence.

    At-least-once delivery re-sends an enroll after a crash, a rebalance or a redrive: the
    contact being enrolled is what the call wanted, so it is done, not poison."""

    reason = "already_enrolled"


class AlreadySent(SkipOutcome):
    """A trigger whose idempotency key the sent-email ledger holds: Meisa accepted it before,
    possibly longer ago than Meisa's own one-hour idempotency window."""

    reason = "already_sent"


class HaltError(BridgeError):
    """Stop consuming, commit only what is done, exit non-zero. Never routed to the DLQ."""


class Unauthorized(HaltError):
    """401."""


class Forbidden(HaltError):
    """403: the key lacks a scope."""


class MissingScopes(HaltError):
    """The rules need scopes the API key does not have."""


class WrongBaseUrl(HaltError):
    """meisa.base_url does not lead to the API: it answered with a redirect (the client follows
    none, since every call would take it), or GET /ping is not there."""


class TlsError(HaltError):
    """The TLS handshake refused the certificate of Meisa or of the proxy: an unknown issuer (a
    private CA: `meisa.ca_file`), a wrong host name, an expired certificate. Unlike a reset or a
    timeout it does not go away by retrying, so start-up refuses at once and a running bridge
    halts instead of retrying every call against it."""


class DlqBreakerTripped(HaltError):
    """Too many poison messages: a bad deploy should halt, not drain a topic into the DLQ."""


class DeadLetterWriteFailed(HaltError):
    """The DLQ record was not acknowledged; the original offset must not be committed."""


class NoDeadLetterTopic(HaltError):
    """A message is poison and no dead_letter_topic is configured: halt rather than drop it."""


class ShadowWriteRefused(HaltError):
    """A shadow run must never change Meisa: its transport refuses every write request."""


class UnexpectedDeliveryError(HaltError):
    """The delivery layer raised something outside the error tree: halt rather than guess."""


class InternalError(BridgeError, ValueError):
    """Raised and caught inside the bridge; translated into a tree error before it leaves."""


class ExpressionError(InternalError):
    """An expression that does not compile; the message says why."""


class EvaluationError(InternalError):
    """An expression that compiled but failed on this event (e.g. a function got a wrong type)."""


class FieldValueError(InternalError):
    """A field's value has the wrong type or is not one of the allowed values."""


class OffsetOrderError(InternalError):
    """An offset arrived that is not after the partition's last tracked offset."""


class CallAbandoned(InternalError):
    """The messages of a call were revoked or lost while it waited for a slot or a retry."""


class SendAlone(CallAbandoned):
    """A bulk request left with one call when it got its slot: that call goes on its own, as
    the plain call (bridge.pipeline.bulk)."""
