"""Prometheus metrics: one method per metric on a dedicated registry.

The registry is never prometheus_client's global one, so tests and replays can hold several.
Labels never carry an email, a contact key or an API key: a label value that looks like one is
replaced by ``redacted``. Labelled children are cached, so a method call is a dict lookup + inc.

Delivery attempts, one or more for every Meisa call, and HTTP requests are counted in plain
Python and handed to the Prometheus series when the registry is collected (a scrape, `render`):
each attempt updates two counters and two histograms, six locked increments in
prometheus_client, about a third of the deliverer's own CPU per call. What a scrape sees is the
same, counted up to that moment (bridge.observability.held).
"""

from __future__ import annotations

from typing import Any, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from bridge import __version__
from bridge.observability.held import BeforeCollect, HeldAttempts
from bridge.observability.redaction import API_KEY_RE

# The *_created series double what Prometheus stores and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

MetricName = Literal[
    # Kafka messages handled, by topic, event type and outcome
    # (ok|skipped|dlq|halted|no_match|stale|suppressed|unsubscribed).
    "meisa_bridge_events_total",
    # Meisa API calls, by endpoint and HTTP status (or timeout|transport for no response).
    "meisa_bridge_calls_total",
    # Seconds per Meisa API call attempt, by endpoint.
    "meisa_bridge_call_duration_seconds",
    # Meisa calls currently in flight.
    "meisa_bridge_in_flight",
    # Calls other than triggers that may be on the wire at once now (pipeline.adaptive_in_flight).
    "meisa_bridge_in_flight_limit",
    # Calls saved: upserts merged into an adjacent upsert for the same contact, add_tags folded
    # into one, enrolments sent together in a bulk-enroll.
    "meisa_bridge_coalesced_total",
    # Records written to the dead-letter topic, by source topic and stage (decode|map|deliver).
    "meisa_bridge_dlq_total",
    # Messages between the committed offset and the high watermark, by topic and partition.
    "meisa_bridge_consumer_lag",
    # Last committed offset, by topic and partition.
    "meisa_bridge_committed_offset",
    # Bytes of fetched messages not finished yet (read ahead), by topic and partition: key, value
    # and headers plus an estimate of what the bridge builds from each (pipeline.read_ahead_bytes).
    "meisa_bridge_read_ahead_bytes",
    # Fetched messages not finished yet (read ahead), by topic and partition.
    "meisa_bridge_read_ahead_messages",
    # Seconds a call waited for the rate governor before it was sent.
    "meisa_bridge_governor_wait_seconds",
    # The governor's current request budget per minute (lowered by repeated 429s, then back).
    "meisa_bridge_governor_rate_per_minute",
    # 1 while the governor holds calls back, by reason (retry_after: a pause every call waits
    # out; repeated_429 / limit_lower: a lowered budget climbing back), else 0.
    "meisa_bridge_governor_throttled",
    # Retries of Meisa calls, by endpoint and reason
    # (rate_limited|server_error|transport|not_found).
    "meisa_bridge_retries_total",
    # Calls or events skipped, by reason (skipped|unsubscribed|stale|suppressed|already_enrolled|
    # already_sent|replay).
    "meisa_bridge_skipped_total",
    # Partitions assigned to this replica.
    "meisa_bridge_assigned_partitions",
    # 1 while the bridge is halted (wrong key, missing scope, DLQ breaker), else 0.
    "meisa_bridge_halted",
    # 404 answers (contact not found), by endpoint: each one is budget spent on a missing contact.
    "meisa_bridge_contact_not_found_total",
    # Calls waiting for their contact to appear (parked after a 404; they hold no slot).
    "meisa_bridge_contact_waits",
    # Messages fetched and waiting in the event-time lockstep for older partitions to catch up.
    "meisa_bridge_lockstep_buffered",
    # This replica's share of the API key's rate budget (follows its partitions unless fixed).
    "meisa_bridge_rate_share",
    # Always 1; the version label says which build runs.
    "meisa_bridge_build_info",
    # Meisa call attempts by call kind and outcome (ok|skipped|retry|poison|halt).
    "meisa_bridge_call_outcomes_total",
    # HTTP requests sent to Meisa, by method: each spends the API key's rate budget.
    "meisa_bridge_requests_total",
    # The API key's rate limit (whole key, before this replica's share), by window (minute|hour).
    "meisa_bridge_rate_limit",
    # Seconds a trigger waited for the rate governor before it was sent.
    "meisa_bridge_trigger_wait_seconds",
    # How close the DLQ breaker is to tripping, by check (consecutive|ratio): 1 = at its limit.
    "meisa_bridge_dlq_breaker_fill",
    # 1 for a scope the rules (or the unsubscribed list) need that the API key lacks, else 0.
    "meisa_bridge_scope_missing",
    # Calls a shadow run would have made, by call kind and rule (nothing was sent).
    "meisa_bridge_shadow_calls_total",
    # Always 1, for the rules in use; the version label is their content hash.
    "meisa_bridge_rules_version",
    # Rules reloads, by result (ok|invalid|missing_scope).
    "meisa_bridge_rules_reloads_total",
    # 1 while the last rules reload was refused (the rules before it are still in use), else 0.
    "meisa_bridge_rules_reload_failed",
    # Outcome-topic records, by result (written|failed: the broker refused or did not
    # acknowledge it|dropped: more than outcomes.max_pending were waiting).
    "meisa_bridge_outcome_records_total",
]

THROTTLE_REASONS = ("retry_after", "repeated_429", "limit_lower")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Governor waits range from nothing to a Retry-After pause of minutes.
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


def _safe_label(value: object) -> str:
    """A label value that cannot leak an email or a key (cardinality and privacy)."""
    text = str(value)
    if "@" in text or API_KEY_RE.search(text):
        return "redacted"
    return text


PARTITION_SERIES: tuple[MetricName, ...] = (
    "meisa_bridge_consumer_lag",
    "meisa_bridge_committed_offset",
    "meisa_bridge_read_ahead_bytes",
    "meisa_bridge_read_ahead_messages",
)


class Metrics:
    """One method per metric. Labelled children are cached so a call is a dict lookup + inc."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._children: dict[tuple[object, ...], Any] = {}
        # (kind, status, outcome) -> the three children an attempt updates: one lookup a call
        self._attempts: dict[tuple[str, int | str, str], tuple[Any, Any, Any]] = {}
        self._m: dict[MetricName, Any] = {}
        self._held = HeldAttempts(LATENCY_BUCKETS, WAIT_BUCKETS)
        # Registered before the metrics: a collection hands the held attempts over first.
        self.registry.register(BeforeCollect(self.flush))
        self._define()

    def _add(self, kind: type[Any], name: MetricName, doc: str, *labels: str, **kw: Any) -> None:
        # prometheus_client appends _total to counters itself.
        metric_name = name.removesuffix("_total") if kind is Counter else name
        self._m[name] = kind(metric_name, doc, labels, registry=self.registry, **kw)

    def _define(self) -> None:
        add = self._add
        add(
            Counter,
            "meisa_bridge_events_total",
            "Kafka messages handled",
            "topic",
            "type",
            "outcome",
        )
        add(Counter, "meisa_bridge_calls_total", "Meisa API calls", "endpoint", "status")
        add(Histogram, "meisa_bridge_call_duration_seconds", "Meisa call latency", "endpoint",
            buckets=LATENCY_BUCKETS)  # fmt: skip
        add(Gauge, "meisa_bridge_in_flight", "Meisa calls in flight")
        add(Gauge, "meisa_bridge_in_flight_limit", "Meisa calls allowed on the wire at once")
        add(Counter, "meisa_bridge_coalesced_total", "Calls saved by merging")
        add(Counter, "meisa_bridge_dlq_total", "Dead-lettered records", "topic", "stage")
        add(Gauge, "meisa_bridge_consumer_lag", "Consumer lag", "topic", "partition")
        add(Gauge, "meisa_bridge_committed_offset", "Committed offset", "topic", "partition")
        add(Gauge, "meisa_bridge_read_ahead_bytes", "Bytes read ahead, not finished", "topic",
            "partition")  # fmt: skip
        add(Gauge, "meisa_bridge_read_ahead_messages", "Messages read ahead, not finished",
            "topic", "partition")  # fmt: skip
        add(Histogram, "meisa_bridge_governor_wait_seconds", "Rate governor wait",
            buckets=WAIT_BUCKETS)  # fmt: skip
        add(Gauge, "meisa_bridge_governor_rate_per_minute", "Governor budget per minute")
        add(Gauge, "meisa_bridge_governor_throttled", "1 while the governor holds calls back",
            "reason")  # fmt: skip
        add(Counter, "meisa_bridge_retries_total", "Meisa call retries", "endpoint", "reason")
        add(Counter, "meisa_bridge_skipped_total", "Skipped calls or events", "reason")
        add(Gauge, "meisa_bridge_assigned_partitions", "Partitions assigned to this replica")
        add(Gauge, "meisa_bridge_halted", "1 while halted")
        add(Counter, "meisa_bridge_contact_not_found_total", "404 contact not found", "endpoint")
        add(Gauge, "meisa_bridge_contact_waits", "Calls waiting for their contact")
        add(Gauge, "meisa_bridge_lockstep_buffered", "Messages held by the event-time lockstep")
        add(Gauge, "meisa_bridge_rate_share", "Share of the key's rate budget")
        add(Gauge, "meisa_bridge_build_info", "Build information", "version")
        add(Counter, "meisa_bridge_call_outcomes_total", "Call attempts by outcome", "kind",
            "outcome")  # fmt: skip
        add(Counter, "meisa_bridge_requests_total", "HTTP requests sent to Meisa", "method")
        add(Gauge, "meisa_bridge_rate_limit", "The API key's rate limit", "window")
        add(Histogram, "meisa_bridge_trigger_wait_seconds", "Trigger wait at the rate governor",
            buckets=WAIT_BUCKETS)  # fmt: skip
        add(Gauge, "meisa_bridge_dlq_breaker_fill", "DLQ breaker fill (1 = at its limit)", "check")
        add(Gauge, "meisa_bridge_scope_missing", "Scope the API key lacks", "scope")
        add(Counter, "meisa_bridge_shadow_calls_total", "Calls a shadow run would make", "kind",
            "rule")  # fmt: skip
        add(Gauge, "meisa_bridge_rules_version", "The rules in use", "version")
        add(Counter, "meisa_bridge_rules_reloads_total", "Rules reloads", "result")
        add(Gauge, "meisa_bridge_rules_reload_failed", "1 while the last rules reload failed")
        add(Counter, "meisa_bridge_outcome_records_total", "Outcome-topic records", "result")
        self._m["meisa_bridge_build_info"].labels(__version__).set(1)

    def _child(self, name: MetricName, *labels: object) -> Any:
        key = (name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._m[name].labels(*(_safe_label(v) for v in labels))
            self._children[key] = child
        return child

    def events(self, topic: str, event_type: str | None, outcome: str, n: int = 1) -> None:
        self._child("meisa_bridge_events_total", topic, event_type or "", outcome).inc(n)

    def calls(self, endpoint: str, status: int | str) -> None:
        self._child("meisa_bridge_calls_total", endpoint, status).inc()

    def attempt(
        self, kind: str, status: int | str, outcome: str, seconds: float, waited: float
    ) -> None:
        """One delivery attempt: `calls`, `call_outcome`, `call_latency` and `governor_wait` at
        once, held until the next collection (every Meisa call records one)."""
        self._held.add(kind, status, outcome, seconds, waited)

    def flush(self) -> None:
        """Hand the attempts held since the last collection to their series."""
        counts, latencies, waits, requests = self._held.take()
        for method, n in requests.items():
            self._child("meisa_bridge_requests_total", method).inc(n)
        for key, n in counts.items():
            children = self._attempts.get(key)
            if children is None:
                kind, status, outcome = key
                children = self._attempts[key] = (
                    self._child("meisa_bridge_calls_total", kind, status),
                    self._child("meisa_bridge_call_outcomes_total", kind, outcome),
                    self._child("meisa_bridge_call_duration_seconds", kind),
                )
            children[0].inc(n)
            children[1].inc(n)
        for kind, held in latencies.items():
            held.add_to(self._child("meisa_bridge_call_duration_seconds", kind))
        if waits.count:
            waits.add_to(self._m["meisa_bridge_governor_wait_seconds"])

    def call_latency(self, endpoint: str, seconds: float) -> None:
        self._child("meisa_bridge_call_duration_seconds", endpoint).observe(seconds)

    def in_flight(self, value: int) -> None:
        self._m["meisa_bridge_in_flight"].set(value)

    def in_flight_limit(self, value: int) -> None:
        self._m["meisa_bridge_in_flight_limit"].set(value)

    def coalesced(self, n: int = 1) -> None:
        self._m["meisa_bridge_coalesced_total"].inc(n)

    def dlq(self, topic: str, stage: str) -> None:
        self._child("meisa_bridge_dlq_total", topic, stage).inc()

    def consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        self._child("meisa_bridge_consumer_lag", topic, partition).set(lag)

    def committed(self, topic: str, partition: int, offset: int) -> None:
        self._child("meisa_bridge_committed_offset", topic, partition).set(offset)

    def read_ahead(self, topic: str, partition: int, size: int, messages: int) -> None:
        self._child("meisa_bridge_read_ahead_bytes", topic, partition).set(size)
        self._child("meisa_bridge_read_ahead_messages", topic, partition).set(messages)

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop a released partition's per-partition series: its new owner reports them, and a
        frozen copy here would count its lag twice in every sum over the replicas."""
        for name in PARTITION_SERIES:
            if self._children.pop((name, topic, partition), None) is not None:
                self._m[name].remove(_safe_label(topic), _safe_label(partition))

    def governor_wait(self, seconds: float) -> None:
        self._m["meisa_bridge_governor_wait_seconds"].observe(seconds)

    def governor_rate(self, per_minute: float | None) -> None:
        """None (limits not known yet, e.g. before GET /ping) leaves the gauge as it is."""
        if per_minute is not None:
            self._m["meisa_bridge_governor_rate_per_minute"].set(per_minute)

    def governor_throttled(self, reason: str | None) -> None:
        """The reason the governor holds calls back now (None: it does not)."""
        for each in THROTTLE_REASONS:
            self._child("meisa_bridge_governor_throttled", each).set(1 if each == reason else 0)

    def retries(self, endpoint: str, reason: str) -> None:
        self._child("meisa_bridge_retries_total", endpoint, reason).inc()

    def skipped(self, reason: str) -> None:
        self._child("meisa_bridge_skipped_total", reason).inc()

    def assigned_partitions(self, count: int) -> None:
        self._m["meisa_bridge_assigned_partitions"].set(count)

    def halted(self, flag: bool) -> None:
        self._m["meisa_bridge_halted"].set(1 if flag else 0)

    def contact_not_found(self, endpoint: str) -> None:
        self._child("meisa_bridge_contact_not_found_total", endpoint).inc()

    def contact_waits(self, count: int) -> None:
        self._m["meisa_bridge_contact_waits"].set(count)

    def lockstep_buffered(self, count: int) -> None:
        self._m["meisa_bridge_lockstep_buffered"].set(count)

    def call_outcome(self, kind: str, outcome: str) -> None:
        self._child("meisa_bridge_call_outcomes_total", kind, outcome).inc()

    def request(self, method: str) -> None:
        """One HTTP request to Meisa, held until the next collection as attempts are."""
        self._held.request(method)

    def rate_limit(self, window: str, limit: int | None) -> None:
        """None (an unlimited key) sets no series: there is nothing to compare with."""
        if limit is not None:
            self._child("meisa_bridge_rate_limit", window).set(limit)

    def trigger_wait(self, seconds: float) -> None:
        self._m["meisa_bridge_trigger_wait_seconds"].observe(seconds)

    def dlq_breaker(self, consecutive: float, ratio: float) -> None:
        self._child("meisa_bridge_dlq_breaker_fill", "consecutive").set(consecutive)
        self._child("meisa_bridge_dlq_breaker_fill", "ratio").set(ratio)

    def scope_missing(self, scope: str, missing: bool) -> None:
        self._child("meisa_bridge_scope_missing", scope).set(1 if missing else 0)

    def shadow_call(self, kind: str, rule: str) -> None:
        self._child("meisa_bridge_shadow_calls_total", kind, rule).inc()

    def rate_share(self, share: float) -> None:
        self._m["meisa_bridge_rate_share"].set(share)

    def rules_version(self, version: str) -> None:
        """The one series of the rules in use: the previous version's series goes."""
        self._m["meisa_bridge_rules_version"].clear()
        self._m["meisa_bridge_rules_version"].labels(_safe_label(version)).set(1)

    def rules_reload(self, result: str) -> None:
        self._child("meisa_bridge_rules_reloads_total", result).inc()

    def rules_reload_failed(self, failed: bool) -> None:
        self._m["meisa_bridge_rules_reload_failed"].set(1 if failed else 0)

    def outcome_records(self, result: str, n: int = 1) -> None:
        self._child("meisa_bridge_outcome_records_total", result).inc(n)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class NullMetrics(Metrics):
    """Discards everything: for tools and tests that do not care about metrics."""

    def __init__(self) -> None:
        super().__init__(CollectorRegistry())

    def _child(self, name: MetricName, *labels: object) -> Any:
        return _NULL

    def in_flight(self, value: int) -> None:
        pass

    def in_flight_limit(self, value: int) -> None:
        pass

    def coalesced(self, n: int = 1) -> None:
        pass

    def governor_wait(self, seconds: float) -> None:
        pass

    def attempt(
        self, kind: str, status: int | str, outcome: str, seconds: float, waited: float
    ) -> None:
        pass

    def request(self, method: str) -> None:
        pass

    def governor_rate(self, per_minute: float | None) -> None:
        pass

    def assigned_partitions(self, count: int) -> None:
        pass

    def contact_waits(self, count: int) -> None:
        pass

    def rate_share(self, share: float) -> None:
        pass

    def lockstep_buffered(self, count: int) -> None:
        pass

    def halted(self, flag: bool) -> None:
        pass

    def trigger_wait(self, seconds: float) -> None:
        pass

    def rules_version(self, version: str) -> None:
        pass

    def rules_reload_failed(self, failed: bool) -> None:
        pass


class _NullChild:
    def inc(self, n: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float) -> None:
        pass


_NULL = _NullChild()
