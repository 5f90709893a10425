"""The sent-email ledger: a trigger delivered again after Meisa's one-hour window emails once.

The second delivery comes two hours later on the sandbox's clock, either because the group's
offsets were rewound (an operator's reset, or a partition stuck that long) or because a second
consumer group reads the same message (as a replay would).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bridge_harness import (
    ConfigFactory,
    bridge_process,
    committed,
    event,
    produce,
    reached_end,
    read_all,
    rewind,
    running,
    wait_for,
)

from bridge.sandbox.testing import SandboxHandle

pytestmark = pytest.mark.integration

TWO_HOURS = 2 * 3600


def _deliver_then_rewind_two_hours_later(
    kafka_bootstrap: str, sandbox: SandboxHandle, topic: str, group: str, config: Path
) -> dict[str, Any]:
    """The OTP is delivered, the sandbox's clock moves on two hours, the group's offsets go back
    to the start and the same deployment runs again until it has committed the OTP once more."""
    otp = event("auth.otp", 1, 1, code="123456")
    produce(kafka_bootstrap, topic, [otp])
    with running(config):
        wait_for(reached_end(kafka_bootstrap, group, topic, 1), 60, "the OTP's offset")
    sandbox.advance_clock(TWO_HOURS)
    rewind(kafka_bootstrap, group, topic, 1)
    assert committed(kafka_bootstrap, group, topic, 1) == {0: 0}
    with running(config):
        wait_for(reached_end(kafka_bootstrap, group, topic, 1), 60, "the OTP's offset again")
    return otp


def test_with_the_default_settings_an_otp_redelivered_two_hours_later_is_sent_once(
    kafka_bootstrap: str,
    sandbox: SandboxHandle,
    make_topic: Any,
    bridge_config: ConfigFactory,
) -> None:
    topic, group = make_topic(1), f"ledger-{uuid.uuid4().hex[:8]}"
    config = bridge_config(topic, group)  # no `ledger:` section
    otp = _deliver_then_rewind_two_hours_later(kafka_bootstrap, sandbox, topic, group, config)
    sends = sandbox.sends(trigger_key="verification_code")
    assert len(sends) == 1
    assert sends[0]["duplicates"] == 0  # the second delivery never reached Meisa
    assert len(sandbox.requests("/api/v1/emails/trigger")) == 1
    (record,) = read_all(kafka_bootstrap, f"{group}.sent-emails", 1)
    assert record.key() == f"otp-{otp['id']}".encode()


def test_with_the_ledger_turned_off_meisa_emails_again_after_its_hour(
    kafka_bootstrap: str,
    sandbox: SandboxHandle,
    make_topic: Any,
    bridge_config: ConfigFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic, group = make_topic(1), f"ledger-{uuid.uuid4().hex[:8]}"
    config = bridge_config(topic, group, extra={"ledger": {"enabled": False}})
    with caplog.at_level(logging.INFO):
        _deliver_then_rewind_two_hours_later(kafka_bootstrap, sandbox, topic, group, config)
    assert len(sandbox.sends(trigger_key="verification_code")) == 2
    warned = [r for r in caplog.records if r.name == "bridge.ledger"]
    assert [r.levelno for r in warned] == [logging.WARNING] * 2  # one per start
    assert "email a person twice" in warned[0].getMessage()


def _deliver_in_two_groups(
    kafka_bootstrap: str,
    sandbox: SandboxHandle,
    topic: str,
    config: Callable[[str], Path],
) -> None:
    otp = event("auth.otp", 1, 1, code="123456")
    produce(kafka_bootstrap, topic, [otp])
    for _ in range(2):
        group = f"ledger-{uuid.uuid4().hex[:8]}"
        with running(config(group)):
            wait_for(reached_end(kafka_bootstrap, group, topic, 1), 60, "the OTP's offset")
        sandbox.advance_clock(TWO_HOURS)


def test_a_ledger_topic_given_in_the_config_is_shared_by_every_group_that_names_it(
    kafka_bootstrap: str,
    sandbox: SandboxHandle,
    make_topic: Any,
    bridge_config: ConfigFactory,
) -> None:
    topic = make_topic(1)
    ledger = {"topic": f"ledger-{uuid.uuid4().hex[:10]}", "partitions": 2}
    _deliver_in_two_groups(
        kafka_bootstrap,
        sandbox,
        topic,
        lambda group: bridge_config(topic, group, extra={"ledger": ledger}),
    )
    sends = sandbox.sends(trigger_key="verification_code")
    assert len(sends) == 1
    assert sends[0]["duplicates"] == 0
    assert len(sandbox.requests("/api/v1/emails/trigger")) == 1


def test_a_ledger_not_loaded_within_its_timeout_refuses_the_start(
    kafka_bootstrap: str,
    sandbox: SandboxHandle,
    make_topic: Any,
    bridge_config: ConfigFactory,
    tmp_path: Path,
) -> None:
    topic, group = make_topic(1), f"ledger-{uuid.uuid4().hex[:8]}"
    produce(kafka_bootstrap, topic, [event("auth.otp", 1, 1, code="123456")])
    with running(bridge_config(topic, group)):  # the default ledger now holds one key
        wait_for(reached_end(kafka_bootstrap, group, topic, 1), 60, "the OTP's offset")
    hurried = bridge_config(topic, group, extra={"ledger": {"load_timeout_seconds": 0}})
    proc = bridge_process(hurried, tmp_path / "bridge.log")
    try:
        assert proc.wait(60) == 2
    finally:
        proc.kill()
    log = (tmp_path / "bridge.log").read_text()
    refusals = [line for line in log.splitlines() if line.startswith("meisa-bridge: refusing")]
    assert len(refusals) == 1, log
    assert f"'{group}.sent-emails' not loaded within 0 s (ledger.load_timeout_seconds)" in log
