"""Metrics, redacting logging and health state (the HTTP server is tested in integration/)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import get_args

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bridge.config import BridgeConfig
from bridge.observability import (
    REDACTED,
    HealthState,
    MetricName,
    Metrics,
    NullMetrics,
    RepeatLimiter,
    clear_secrets,
    configure_logging,
    mask_email,
    register_config_secrets,
    register_secret,
)
from bridge.settings import LoggingSettings, MeisaSettings, SecretStr

LIVE_KEY = "meisa_live_4f9aQ2xZ_k81"


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    clear_secrets()
    yield
    clear_secrets()
    root.handlers[:] = handlers
    root.setLevel(level)


def _log_lines(settings_: LoggingSettings, emit: object) -> list[str]:
    stream = io.StringIO()
    configure_logging(settings_, stream=stream)
    assert callable(emit)
    emit(logging.getLogger("bridge.test"))
    return stream.getvalue().splitlines()


def _json_log(emit: object, **kw: object) -> list[dict[str, object]]:
    lines = _log_lines(LoggingSettings(format="json", **kw), emit)  # type: ignore[arg-type]
    return [json.loads(line) for line in lines]


# ------------------------------------------------------------------------------------- metrics


def _sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_events_counter_counts_by_topic_type_and_outcome() -> None:
    metrics = Metrics()
    metrics.events("app.users", "user.signed_up", "ok")
    metrics.events("app.users", "user.signed_up", "ok", 2)
    metrics.events("app.users", "user.signed_up", "dlq")
    ok = {"topic": "app.users", "type": "user.signed_up", "outcome": "ok"}
    assert _sample(metrics, "meisa_bridge_events_total", **ok) == 3
    assert _sample(metrics, "meisa_bridge_events_total", **{**ok, "outcome": "dlq"}) == 1


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.coalesced(5)
    assert _sample(first, "meisa_bridge_coalesced_total") == 5
    assert _sample(second, "meisa_bridge_coalesced_total") == 0


def test_every_method_lands_in_its_metric() -> None:
    m = Metrics()
    m.calls("contacts.upsert", 429)
    m.call_latency("contacts.upsert", 0.2)
    m.in_flight(7)
    m.in_flight_limit(12)
    m.dlq("app.users", "decode")
    m.consumer_lag("app.users", 3, 42)
    m.committed("app.users", 3, 1000)
    m.governor_wait(1.5)
    m.governor_rate(30)
    m.governor_throttled("retry_after")
    m.retries("events.track", "rate_limited")
    m.skipped("unsubscribed")
    m.assigned_partitions(4)
    m.halted(True)
    text = m.render().decode()
    assert 'meisa_bridge_calls_total{endpoint="contacts.upsert",status="429"} 1.0' in text
    assert 'meisa_bridge_call_duration_seconds_count{endpoint="contacts.upsert"} 1.0' in text
    assert "meisa_bridge_in_flight 7.0" in text
    assert "meisa_bridge_in_flight_limit 12.0" in text
    assert 'meisa_bridge_dlq_total{stage="decode",topic="app.users"} 1.0' in text
    assert 'meisa_bridge_consumer_lag{partition="3",topic="app.users"} 42.0' in text
    assert 'meisa_bridge_committed_offset{partition="3",topic="app.users"} 1000.0' in text
    assert "meisa_bridge_governor_wait_seconds_sum 1.5" in text
    assert "meisa_bridge_governor_rate_per_minute 30.0" in text
    assert 'meisa_bridge_governor_throttled{reason="retry_after"} 1.0' in text
    assert 'meisa_bridge_governor_throttled{reason="repeated_429"} 0.0' in text
    assert 'meisa_bridge_retries_total{endpoint="events.track",reason="rate_limited"} 1.0' in text
    assert 'meisa_bridge_skipped_total{reason="unsubscribed"} 1.0' in text
    assert "meisa_bridge_assigned_partitions 4.0" in text
    assert "meisa_bridge_halted 1.0" in text
    assert 'meisa_bridge_build_info{version="' in text
    assert "_created" not in text


def test_governor_rate_of_none_keeps_the_last_value() -> None:
    metrics = Metrics()
    metrics.governor_rate(60)
    metrics.governor_rate(None)
    assert _sample(metrics, "meisa_bridge_governor_rate_per_minute") == 60


def test_governor_throttled_clears_when_the_governor_lets_calls_go() -> None:
    metrics = Metrics()
    metrics.governor_throttled("limit_lower")
    metrics.governor_throttled(None)
    text = metrics.render().decode()
    assert 'meisa_bridge_governor_throttled{reason="limit_lower"} 0.0' in text


def test_metric_name_literal_lists_exactly_the_registered_metrics() -> None:
    families = {metric.name for metric in Metrics().registry.collect()}
    declared = {name.removesuffix("_total") for name in get_args(MetricName)}
    assert families == declared


@pytest.mark.parametrize("value", ["sarah@example.com", LIVE_KEY, "meisa_test_sandbox_00"])
def test_labels_never_carry_an_email_or_an_api_key(value: str) -> None:
    metrics = Metrics()
    metrics.events(value, value, "ok")
    metrics.skipped(value)
    text = metrics.render().decode()
    assert value not in text
    assert 'type="redacted"' in text
    assert 'reason="redacted"' in text


def test_null_metrics_accepts_every_call_and_records_nothing() -> None:
    m = NullMetrics()
    m.events("t", "x", "ok")
    m.calls("contacts.upsert", 200)
    m.call_latency("contacts.upsert", 0.1)
    m.in_flight(3)
    m.coalesced()
    m.dlq("t", "map")
    m.consumer_lag("t", 0, 1)
    m.committed("t", 0, 1)
    m.governor_wait(1.0)
    m.governor_rate(60)
    m.retries("e", "r")
    m.skipped("r")
    m.assigned_partitions(1)
    m.halted(True)
    text = m.render().decode()
    assert "meisa_bridge_events_total{" not in text
    assert "meisa_bridge_in_flight 0.0" in text
    assert "meisa_bridge_halted 0.0" in text


# ------------------------------------------------------------------------------------- logging


def test_json_log_line_has_ts_level_logger_msg_and_extras() -> None:
    [line] = _json_log(lambda log: log.info("sent %d calls", 3, extra={"topic": "app.users"}))
    assert line["level"] == "INFO"
    assert line["logger"] == "bridge.test"
    assert line["msg"] == "sent 3 calls"
    assert line["topic"] == "app.users"
    assert str(line["ts"]).endswith("Z")


def test_one_json_object_per_line_even_with_a_multiline_traceback() -> None:
    def emit(log: logging.Logger) -> None:
        try:
            raise ValueError("line one\nline two")
        except ValueError:
            log.exception("failed")

    [line] = _json_log(emit)
    assert "ValueError: line one\nline two" in str(line["exc"])


def test_api_keys_are_redacted_everywhere_in_a_record() -> None:
    def emit(log: logging.Logger) -> None:
        try:
            raise RuntimeError(f"auth failed for {LIVE_KEY}")
        except RuntimeError:
            log.exception("key %s", LIVE_KEY, extra={"header": f"Bearer {LIVE_KEY}"})

    lines = _log_lines(LoggingSettings(format="json"), emit)
    assert LIVE_KEY not in "\n".join(lines)
    assert REDACTED in json.loads(lines[0])["header"]


def test_extras_named_like_a_secret_are_dropped_whatever_their_value() -> None:
    [line] = _json_log(lambda log: log.info("x", extra={"sasl_password": "pw", "token": "t"}))
    assert line["sasl_password"] == REDACTED
    assert line["token"] == REDACTED


def test_emails_are_masked_in_message_args_and_nested_extras() -> None:
    [line] = _json_log(
        lambda log: log.warning(
            "dlq for %s", "sarah@example.com", extra={"call": {"to": ["bob@corp.io"]}}
        )
    )
    assert line["msg"] == "dlq for s***@example.com"
    assert line["call"] == {"to": ["b***@corp.io"]}


def test_email_masking_can_be_turned_off_but_keys_stay_redacted() -> None:
    [line] = _json_log(
        lambda log: log.info("%s %s", "sarah@example.com", LIVE_KEY), mask_emails=False
    )
    assert line["msg"] == f"sarah@example.com {REDACTED}"


def test_text_format_is_redacted_too() -> None:
    lines = _log_lines(
        LoggingSettings(format="text"),
        lambda log: log.error("to %s", "sarah@example.com", extra={"key": LIVE_KEY}),
    )
    assert len(lines) == 1
    assert "ERROR bridge.test: to s***@example.com key=[REDACTED]" in lines[0]


def test_configure_logging_twice_keeps_one_handler() -> None:
    stream = io.StringIO()
    configure_logging(LoggingSettings(), stream=io.StringIO())
    configure_logging(LoggingSettings(level="debug"), stream=stream)
    logging.getLogger("bridge.test").debug("once")
    assert len(stream.getvalue().splitlines()) == 1


def test_mask_email() -> None:
    assert mask_email("sarah@example.com") == "s***@example.com"
    assert mask_email("from <Sarah.O'Neil@example.com>, cc x@y.org") == (
        "from <S***@example.com>, cc x***@y.org"
    )
    assert mask_email("no address here @ all") == "no address here @ all"


def test_register_config_secrets_covers_api_key_and_kafka_credentials() -> None:
    config = BridgeConfig(
        meisa=MeisaSettings(api_key=SecretStr("plain-looking-key-123")),
        kafka={"sasl.password": "kafka-pass-456", "ssl.key.password": "keypass-789"},
    )
    register_config_secrets(config)
    [line] = _json_log(
        lambda log: log.info("plain-looking-key-123 kafka-pass-456 keypass-789 group.id")
    )
    assert line["msg"] == f"{REDACTED} {REDACTED} {REDACTED} group.id"


def test_register_config_secrets_covers_the_proxy_password() -> None:
    proxy = SecretStr("http://bridge:pr%40xy-pass-321@proxy.internal:3128")
    register_config_secrets(BridgeConfig(meisa=MeisaSettings(proxy=proxy)))
    [line] = _json_log(lambda log: log.info("pr@xy-pass-321 and pr%40xy-pass-321 at proxy"))
    assert line["msg"] == f"{REDACTED} and {REDACTED} at proxy"


SECRET = st.text(
    alphabet=st.characters(categories=["L", "N"], include_characters="_-+/=.!$%"),
    min_size=8,
    max_size=40,
).filter(lambda s: s not in REDACTED)  # the marker itself is in every redacted line


@settings(max_examples=150, deadline=None)
@given(secrets=st.lists(SECRET, min_size=1, max_size=3), prefix=st.text(max_size=10))
def test_no_registered_secret_survives_formatting(secrets: list[str], prefix: str) -> None:
    clear_secrets()
    for secret in secrets:
        register_secret(secret)

    def emit(log: logging.Logger) -> None:
        joined = prefix.join(secrets)
        try:
            raise RuntimeError(joined)
        except RuntimeError:
            log.exception("%s|%s", prefix, joined, extra={"detail": {"v": [joined]}})

    for fmt in ("json", "text"):
        out = "\n".join(_log_lines(LoggingSettings(format=fmt), emit))  # type: ignore[arg-type]
        for secret in secrets:
            assert secret not in out
            assert json.dumps(secret)[1:-1] not in out


@settings(max_examples=150, deadline=None)
@given(email=st.emails(), before=st.sampled_from(["", " ", "to ", "<", "email="]))
def test_emails_never_reach_the_log_unmasked(email: str, before: str) -> None:
    local, domain = email.rsplit("@", 1)
    assume(local.strip("*"))  # "**@d" masks to "****@d", which contains it by coincidence
    lines = _log_lines(
        LoggingSettings(), lambda log: log.info("%s%s>", before, email, extra={"email": email})
    )
    assert email not in "\n".join(lines)
    assert json.loads(lines[0])["email"] == f"{local[0]}***@{domain}"


# -------------------------------------------------------------------------------------- health


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _ready_state(clock: FakeClock) -> HealthState:
    state = HealthState(clock=clock, stall_seconds=60)
    state.started = True
    state.on_assignment(3)
    state.meisa_reachable = True
    state.beat()
    return state


def test_live_until_the_loop_stops_beating() -> None:
    clock = FakeClock()
    state = HealthState(clock=clock, stall_seconds=60)
    assert state.live()  # still starting: no beat yet
    state.beat()
    clock.now += 60
    assert state.live()
    clock.now += 1
    assert not state.live()
    state.beat()
    assert state.live()


def test_ready_needs_start_join_and_a_reachable_meisa() -> None:
    clock = FakeClock()
    assert _ready_state(clock).ready()
    for field, value in [
        ("started", False),
        ("consumer_joined", False),
        ("meisa_reachable", None),
        ("meisa_reachable", False),
    ]:
        state = _ready_state(clock)
        setattr(state, field, value)
        assert not state.ready(), field


def test_a_replica_with_zero_partitions_is_ready() -> None:
    state = _ready_state(FakeClock())
    state.on_assignment(0)
    assert state.ready()
    assert state.snapshot()["assigned_partitions"] == 0


def test_halted_is_live_but_not_ready_and_says_why_without_the_key() -> None:
    state = _ready_state(FakeClock())
    state.halt(f"401 Unauthorized for key {LIVE_KEY}")
    assert state.live()
    assert not state.ready()
    snap = state.snapshot()
    assert snap["halted"] is True
    assert snap["halt_reason"] == f"401 Unauthorized for key {REDACTED}"


def test_a_stalled_loop_is_neither_live_nor_ready() -> None:
    clock = FakeClock()
    state = _ready_state(clock)
    clock.now += 61
    assert not state.live()
    assert not state.ready()
    assert state.snapshot()["last_beat_age_seconds"] == 61.0


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_uvicorn_terminal_colour_copy_of_a_message_is_not_logged(fmt: str) -> None:
    colour = "Started server process [\x1b[36m%d\x1b[0m]"
    lines = _log_lines(
        LoggingSettings(format=fmt),  # type: ignore[arg-type]
        lambda log: log.info("Started server process [%d]", 7, extra={"color_message": colour}),
    )
    assert len(lines) == 1
    assert "Started server process [7]" in lines[0]
    assert "color_message" not in lines[0]


def test_repeat_limiter_reports_once_per_interval_with_the_count_held_back() -> None:
    now = [0.0]
    limiter = RepeatLimiter(30.0, clock=lambda: now[0])
    assert limiter.allow("transport") == 0
    seen = []
    for _ in range(5):
        now[0] += 1.0
        seen.append(limiter.allow("transport"))
    assert seen == [None] * 5
    assert limiter.allow("other") == 0, "each key has its own interval"
    now[0] = 30.0
    assert limiter.allow("transport") == 5
    assert limiter.allow("transport") is None


def test_the_monitoring_metrics_land_in_their_series() -> None:
    m = Metrics()
    m.call_outcome("trigger", "retry")
    m.request("POST")
    m.rate_limit("minute", 60)
    m.rate_limit("hour", None)  # an unlimited key: no series to compare with
    m.trigger_wait(0.5)
    m.dlq_breaker(0.25, 0.5)
    m.scope_missing("emails:trigger", True)
    m.scope_missing("contacts:write", False)
    text = m.render().decode()
    assert 'meisa_bridge_call_outcomes_total{kind="trigger",outcome="retry"} 1.0' in text
    assert 'meisa_bridge_requests_total{method="POST"} 1.0' in text
    assert 'meisa_bridge_rate_limit{window="minute"} 60.0' in text
    assert 'window="hour"' not in text
    assert "meisa_bridge_trigger_wait_seconds_sum 0.5" in text
    assert 'meisa_bridge_dlq_breaker_fill{check="ratio"} 0.5' in text
    assert 'meisa_bridge_scope_missing{scope="emails:trigger"} 1.0' in text
    assert 'meisa_bridge_scope_missing{scope="contacts:write"} 0.0' in text


def test_a_released_partition_leaves_no_frozen_lag_behind() -> None:
    m = Metrics()
    m.consumer_lag("app.users", 3, 42)
    m.committed("app.users", 3, 1000)
    m.consumer_lag("app.users", 4, 7)
    m.forget_partition("app.users", 3)
    m.forget_partition("app.users", 9)  # never reported: nothing to drop
    text = m.render().decode()
    assert 'partition="3"' not in text
    assert 'meisa_bridge_consumer_lag{partition="4",topic="app.users"} 7.0' in text
    m.consumer_lag("app.users", 3, 5)  # assigned again later
    assert 'meisa_bridge_consumer_lag{partition="3",topic="app.users"} 5.0' in m.render().decode()


def test_one_attempt_records_what_its_four_series_would_one_by_one() -> None:
    together, apart = Metrics(), Metrics()
    for status, outcome, seconds in ((200, "ok", 0.02), (503, "retry", 0.4), (200, "ok", 0.03)):
        together.attempt("upsert", status, outcome, seconds, 0.001)
        apart.calls("upsert", status)
        apart.call_outcome("upsert", outcome)
        apart.call_latency("upsert", seconds)
        apart.governor_wait(0.001)
    assert together.render() == apart.render()
    assert b'meisa_bridge_calls_total{endpoint="upsert",status="200"} 2.0' in together.render()
    NullMetrics().attempt("upsert", 200, "ok", 0.02, 0.0)  # records nothing, raises nothing


_BOUNDARIES = st.sampled_from([0.0, 0.001, 0.005, 0.01, 0.5, 1.0, 30.0, 300.0, 301.0])
_SECONDS = st.one_of(_BOUNDARIES, st.floats(min_value=0, max_value=400, allow_nan=False))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["upsert", "track"]), st.sampled_from([200, 429]), _SECONDS),
        max_size=30,
    ),
    st.integers(min_value=0, max_value=30),
)
def test_attempts_held_between_collections_show_what_observe_would(
    attempts: list[tuple[str, int, float]], scrape_at: int
) -> None:
    held, observed = Metrics(), Metrics()
    for n, (kind, status, seconds) in enumerate(attempts):
        if n == scrape_at:
            held.render()  # a scrape in between hands over what was held so far
        held.attempt(kind, status, "ok", seconds, seconds / 2)
        observed.calls(kind, status)
        observed.call_outcome(kind, "ok")
        observed.call_latency(kind, seconds)
        observed.governor_wait(seconds / 2)
    # Sums are added up in another order: equal up to float rounding; everything else exactly.
    assert _samples(held, exact=True) == _samples(observed, exact=True)
    assert _samples(held, exact=False) == pytest.approx(_samples(observed, exact=False))


def _samples(metrics: Metrics, *, exact: bool) -> dict[tuple[str, str], float]:
    return {
        (sample.name, repr(sorted(sample.labels.items()))): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name.endswith("_sum") != exact
    }


def test_a_held_attempt_is_seen_by_every_collection_of_the_registry() -> None:
    metrics = Metrics()
    metrics.attempt("track", 200, "ok", 0.02, 0.0)
    assert _sample(metrics, "meisa_bridge_governor_wait_seconds_count") == 1
    assert _sample(metrics, "meisa_bridge_calls_total", endpoint="track", status="200") == 1
