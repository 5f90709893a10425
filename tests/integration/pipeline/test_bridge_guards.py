"""Suppression and max_age end to end: triggers that must not be sent never reach Meisa."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from bridge_harness import (
    ConfigFactory,
    bridge_in_process,
    committed,
    end_offsets,
    event,
    produce,
    read_all,
    wait_for,
    write_config,
)
from bridge_probes import metrics, ready, sample

from bridge.sandbox.config import SCOPES
from bridge.sandbox.testing import SandboxHandle, SandboxPool, free_port

pytestmark = pytest.mark.integration

TRIGGERS = "/api/v1/emails/trigger/"
UNSUBSCRIBED = "user1@example.com"
OTHER = "user2@example.com"
NO_READ_KEY = "meisa_test_no_contacts_read_00000000000"


def _otps() -> list[dict[str, Any]]:
    return [event("auth.otp", 1, 0, code="111111"), event("auth.otp", 2, 0, code="222222")]


def _server(port: int) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port}


def _run_until_committed(
    path: Path, bootstrap: str, group: str, topic: str, *, events: list[dict[str, Any]], port: int
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Start the bridge, produce once it is ready, wait for the commit; returns /metrics."""
    with bridge_in_process(path) as bridge:
        wait_for(lambda: ready(port), 30, "/readyz 200")
        produce(bootstrap, topic, events)
        ends = end_offsets(bootstrap, topic, 1)
        wait_for(lambda: committed(bootstrap, group, topic, 1) == ends, 30, "offsets committed")
        samples = metrics(port)
        assert bridge.running
    assert bridge.exit_code == 0
    return samples


def test_a_trigger_to_a_suppressed_address_is_skipped_and_another_is_sent(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic, group, port = make_topic(partitions=1), "g-suppressed", free_port()
    sandbox.set_status(UNSUBSCRIBED, "unsubscribed")
    path = bridge_config(
        topic,
        group,
        sections={
            "suppression": {"enabled": True, "interval_seconds": 60},
            "server": _server(port),
        },
    )
    samples = _run_until_committed(path, kafka_bootstrap, group, topic, events=_otps(), port=port)
    polled = sandbox.requests(path="/api/v1/contacts/api/unsubscribed-emails/")
    assert [r["status"] for r in polled][:1] == [200]
    assert [r["body"]["to_email"] for r in sandbox.requests(path=TRIGGERS)] == [OTHER]
    assert [s["to_email"] for s in sandbox.sends()] == [OTHER]
    assert sample(samples, "meisa_bridge_skipped_total", reason="suppressed") == 1
    events = "meisa_bridge_events_total"
    assert sample(samples, events, topic=topic, type="auth.otp", outcome="skipped") == 1
    assert sample(samples, events, topic=topic, type="auth.otp", outcome="ok") == 1


def test_a_key_without_contacts_read_warns_once_and_relies_on_the_422(
    kafka_bootstrap: str,
    make_topic: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    sandboxes: SandboxPool,
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge")
    key = {
        "key": NO_READ_KEY,
        "name": "no-contacts-read",
        "environment": "test",
        "scopes": [s for s in SCOPES if s != "contacts:read"],
        "rate_limit_per_minute": None,
        "rate_limit_per_hour": None,
    }
    topic, dlq, group, port = make_topic(partitions=1), make_topic(), "g-no-read", free_port()
    sb = sandboxes.get({"keys": [key]})
    sb.set_status(UNSUBSCRIBED, "unsubscribed")
    path = write_config(
        tmp_path,
        bootstrap=kafka_bootstrap,
        topics=[topic],
        base_url=sb.base_url,
        api_key=NO_READ_KEY,
        group=group,
        dlq=dlq,
        # a short interval: a second poll (and a second warning) would show within the test
        sections={"suppression": {"enabled": True, "interval_seconds": 0.2},
                  "server": _server(port)},
    )  # fmt: skip
    samples = _run_until_committed(path, kafka_bootstrap, group, topic, events=_otps(), port=port)
    polled = sb.requests(path="/api/v1/contacts/api/unsubscribed-emails/")
    triggers = {r["body"]["to_email"]: r["status"] for r in sb.requests(path=TRIGGERS)}
    sends = {s["to_email"]: s["status"] for s in sb.sends()}
    assert [r["status"] for r in polled] == [403]
    warnings = [r for r in caplog.records if "lacks contacts:read" in r.getMessage()]
    assert len(warnings) == 1
    assert triggers[UNSUBSCRIBED] == 422
    assert triggers[OTHER] < 300
    assert sends == {UNSUBSCRIBED: "unsubscribed", OTHER: "sent"}  # the 422 sent nothing
    assert sample(samples, "meisa_bridge_skipped_total", reason="unsubscribed") == 1
    assert read_all(kafka_bootstrap, dlq, expect=0, timeout=2) == []


def test_a_trigger_older_than_max_age_is_skipped_and_a_fresh_one_is_sent(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic, group, port = make_topic(partitions=1), "g-max-age", free_port()
    stale, fresh = _otps()
    # the otp rule's max_age is 10m; this event happened an hour ago
    stale["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    path = bridge_config(topic, group, sections={"server": _server(port)})
    samples = _run_until_committed(
        path, kafka_bootstrap, group, topic, events=[stale, fresh], port=port
    )
    assert [r["body"]["to_email"] for r in sandbox.requests(path=TRIGGERS)] == [OTHER]
    assert [s["to_email"] for s in sandbox.sends()] == [OTHER]
    assert sample(samples, "meisa_bridge_skipped_total", reason="stale") == 1
    events = "meisa_bridge_events_total"
    assert sample(samples, events, topic=topic, type="auth.otp", outcome="skipped") == 1


def test_a_redelivered_enroll_is_skipped_and_never_reaches_the_dlq(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    # At-least-once: after a crash or a redrive the same enroll event is consumed again.
    topic, dlq, group, port = make_topic(partitions=1), make_topic(), "g-reenroll", free_port()
    rule = {
        "name": "onboard",
        "on": "user.signed_up",
        "do": [{"enroll": {"email": "{{ data.email }}", "sequence_slug": "onboarding"}}],
    }
    path = bridge_config(topic, group, dlq=dlq, sections={"rules": [rule], "server": _server(port)})
    signed_up = event("user.signed_up", 1, 0)
    samples = _run_until_committed(
        path, kafka_bootstrap, group, topic, events=[signed_up, signed_up], port=port
    )
    enrolls = sandbox.requests(path="/api/v1/sequences/enroll/")
    assert [r["status"] for r in enrolls] == [201, 400]
    assert len(sandbox.enrollments(email="user1@example.com")) == 1
    assert sample(samples, "meisa_bridge_skipped_total", reason="already_enrolled") == 1
    assert read_all(kafka_bootstrap, dlq, expect=0, timeout=2) == []
