"""Replay, redrive and the sent-email ledger: a trigger the live bridge sent is not sent again by a
replay that opts triggers in, or by a redrive, after Meisa's one-hour idempotency window. With the
default settings both read the ledger named from the live group, never from their own reader's."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import replay_env as env

from bridge.config import LedgerSettings
from bridge.dlq import DeadLetter, DeadLetterProducer, Failure
from bridge.errors import MappingError
from bridge.events import Record
from bridge.kafka.ledger import KafkaLedger
from bridge.kafka.producer import KafkaProducer
from bridge.meisa.calls import MeisaCall

pytestmark = pytest.mark.integration


def _record_sent(bootstrap: str, live_group: str, ledger: dict[str, Any], key: str) -> None:
    """What the live bridge of `live_group` wrote after Meisa accepted the trigger `key`, with the
    config's `ledger:` section `ledger`."""
    settings = LedgerSettings(**ledger)
    kafka = {"bootstrap.servers": bootstrap, "group.id": live_group}
    sent = KafkaLedger(kafka, settings)
    sent.open()
    try:
        body = {"trigger_key": "verification_code", "idempotency_key": key}
        asyncio.run(sent.record(MeisaCall(kind="trigger", body=body, contact_key="x")))
    finally:
        sent.close()


LEDGERS = {
    "a topic in the config": lambda: {"topic": f"ledger-{uuid.uuid4().hex[:10]}", "partitions": 1},
    "the default": lambda: {},  # no `ledger:` section: <live group.id>.sent-emails
}


@pytest.mark.parametrize("ledger", sorted(LEDGERS))
def test_replay_does_not_resend_a_trigger_the_ledger_holds(  # noqa: PLR0917 (fixtures)
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: Any,
    replay_config: env.ConfigFactory,
    ledger: str,
) -> None:
    topic, live, section = make_topic(), f"live-{uuid.uuid4().hex[:8]}", LEDGERS[ledger]()
    rules = [dict(r) for r in env.RULES]
    otp = next(r for r in rules if r["name"] == "otp")
    otp["do"] = [{**otp["do"][0], "on_replay": "send"}]
    sent, fresh = env._event("auth.otp", 1, 1, code="1"), env._event("auth.otp", 2, 2, code="2")
    env.produce(kafka_bootstrap, topic, [sent, fresh])
    _record_sent(kafka_bootstrap, live, section, f"{sent['id']}:otp:0")  # the rule's default key
    sandbox.advance_clock(2 * 3600)  # Meisa itself no longer remembers the key
    sections = {"ledger": section} if section else None
    config = replay_config(topic, group=live, rules=rules, sections=sections)
    done = env.cli(
        "replay",
        "--config",
        config,
        "--from",
        "earliest",
        "--state-dir",
        tmp_path / "state",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    json.loads(done.stdout.strip().splitlines()[-1])
    assert [s["to_email"] for s in sandbox.sends()] == [fresh["data"]["email"]]


def test_with_the_default_settings_a_redrive_skips_a_trigger_the_live_bridge_sent(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: Any,
    replay_config: env.ConfigFactory,
) -> None:
    topic, dlq, live = make_topic(), make_topic(), f"live-{uuid.uuid4().hex[:8]}"
    otp = env._event("auth.otp", 1, 1, code="1")
    record = Record(
        topic=topic,
        partition=0,
        offset=0,
        key=otp["data"]["user_id"].encode(),
        value=orjson.dumps(otp),
    )
    letter = DeadLetter(
        record, Failure(error=MappingError("a rule since fixed"), stage="map", rule="otp")
    )

    async def dead_letter() -> None:
        producer = DeadLetterProducer(KafkaProducer({"bootstrap.servers": kafka_bootstrap}), dlq)
        await producer.send(letter)
        producer.close()

    asyncio.run(dead_letter())
    _record_sent(kafka_bootstrap, live, {}, f"{otp['id']}:otp:0")
    sandbox.advance_clock(2 * 3600)
    config = replay_config(topic, group=live, dlq=dlq)  # no `ledger:` section
    done = env.cli("dlq", "redrive", "--config", config, "--format", "json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["selected"], summary["outcomes"]) == (1, {"skipped": 1})
    assert sandbox.sends() == []
    assert env.requests_by_endpoint(sandbox) == {}
