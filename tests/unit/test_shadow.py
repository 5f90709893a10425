"""Shadow run pieces without a broker: the consumer group it uses, and what it records."""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace

import orjson
import pytest

from bridge.config import BridgeConfig, LedgerSettings
from bridge.dlq import DeadLetter, DlqBreaker, Failure
from bridge.errors import AlreadySent, ConfigError, DecodeError, DlqBreakerTripped, StaleEvent
from bridge.events import Envelope, Record
from bridge.meisa.calls import MeisaCall
from bridge.observability import Metrics
from bridge.pipeline.message import InFlight, Sending
from bridge.shadow import (
    ShadowDeadLetters,
    ShadowOptions,
    ShadowRecorder,
    shadow_config,
    shadow_deliver,
)

LIVE = BridgeConfig(kafka={"group.id": "bridge", "group.instance.id": "pod-0", "acks": "all"})
CALL = MeisaCall(
    kind="trigger",
    body={"trigger_key": "otp", "to_email": "a@example.com"},
    contact_key="a@example.com",
    rule="otp",
)


def test_the_shadow_group_is_derived_and_never_the_live_one() -> None:
    config = shadow_config(LIVE, ShadowOptions())
    assert config.kafka["group.id"] == "bridge.shadow"
    assert config.kafka["group.instance.id"] == "pod-0.shadow"
    assert config.kafka["auto.offset.reset"] == "latest"
    assert config.kafka["acks"] == "all"
    named = shadow_config(LIVE, ShadowOptions(group_id="try-new-rules", start="earliest"))
    assert (named.kafka["group.id"], named.kafka["auto.offset.reset"]) == (
        "try-new-rules",
        "earliest",
    )
    with pytest.raises(ConfigError, match="must differ from the live group 'bridge'"):
        shadow_config(LIVE, ShadowOptions(group_id="bridge"))


def _message(offset: int) -> InFlight:
    record = Record(topic="app", partition=1, offset=offset, key=None, value=b"{}")
    return InFlight(record, envelope=Envelope(topic="app", partition=1, offset=offset, data={}))


class Governor:
    def __init__(self) -> None:
        self.asked: list[int] = []

    async def acquire(self, priority: int, tokens: int = 1) -> float:
        self.asked.append(priority)
        return 0.25

    def on_success(self) -> None:
        pass

    def on_rate_limited(self, retry_after: float | None) -> None:
        pass


class Ledger:
    def __init__(self, sent: set[str]) -> None:
        self.sent = sent
        self.recorded: list[MeisaCall] = []

    def check(self, call: MeisaCall) -> None:
        if call.body.get("idempotency_key") in self.sent:
            raise AlreadySent("sent before")

    async def record(self, call: MeisaCall) -> None:
        self.recorded.append(call)


class FreeSlot:
    """The dispatcher's slot, always free (bridge.meisa.delivery.Slot)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def granted(self) -> None:
        return None


async def test_the_live_deliverer_paces_guards_and_records_without_sending() -> None:
    out, metrics = io.BytesIO(), Metrics()
    recorder = ShadowRecorder(metrics, out, clock=lambda: 0.0)
    governor, ledger = Governor(), Ledger({"sent-before"})

    def guard(call: MeisaCall, event_time: float | None) -> None:
        if call.rule == "stale":
            raise StaleEvent("old")

    deliver = shadow_deliver(
        recorder, governor=governor, guard=guard, metrics=metrics, ledger=ledger
    )
    sending = Sending((_message(7),))
    result = await deliver(CALL, FreeSlot(), sending)
    stale = MeisaCall(kind="track", body={}, contact_key="x", rule="stale")
    with pytest.raises(StaleEvent):
        await deliver(stale, FreeSlot(), sending)
    again = replace(CALL, body={**CALL.body, "idempotency_key": "sent-before"})
    with pytest.raises(AlreadySent):
        await deliver(again, FreeSlot(), sending)
    assert result.reason == "shadow: not sent"
    assert governor.asked == [0, 1], "paced as live; the ledger skips before the governor"
    assert ledger.recorded == [], "the live ledger is read, never written"
    [line] = out.getvalue().splitlines()
    record = orjson.loads(line)
    assert record["time"] == "1970-01-01T00:00:00.000Z"
    assert (record["record"], record["kind"], record["rule"]) == ("call", "trigger", "otp")
    assert record["body"] == dict(CALL.body)
    assert record["events"] == [
        {"topic": "app", "partition": 1, "offset": 7, "id": None, "type": None}
    ]
    text = metrics.render().decode()
    assert 'meisa_bridge_shadow_calls_total{kind="trigger",rule="otp"} 1.0' in text
    assert "meisa_bridge_trigger_wait_seconds_sum 0.25" in text


def test_poison_is_recorded_instead_of_dead_lettered() -> None:
    out = io.BytesIO()
    sink = ShadowDeadLetters(ShadowRecorder(Metrics(), out))
    consumed = Record(topic="app", partition=0, offset=3, key=None, value=b"{")
    letter = DeadLetter(
        consumed, Failure(error=DecodeError("invalid JSON"), stage="decode", attempts=0)
    )
    asyncio.run(sink.send(letter))
    record = orjson.loads(out.getvalue())
    assert (record["record"], record["stage"], record["error"]) == (
        "dead_letter",
        "decode",
        "DecodeError",
    )
    assert record["events"] == [{"topic": "app", "partition": 0, "offset": 3}]


def test_breaker_fill_reaches_one_where_it_trips() -> None:
    breaker = DlqBreaker(max_consecutive=4, max_ratio=0.5, window=4)
    for _ in range(2):
        breaker.record(True)
    assert breaker.fill() == (0.5, 1.0)
    breaker.record(False)
    assert breaker.fill() == (0.0, 1.0)
    with pytest.raises(DlqBreakerTripped):
        breaker.record(True)  # 3 of the last 4 are poison: more than half
    assert DlqBreaker(max_consecutive=0, max_ratio=0, window=10).fill() == (0.0, 0.0)


def test_shadow_flags_without_shadow_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.cli import main

    assert main(["run", "--config", "x.yaml", "--shadow-output", "calls.jsonl"]) == 2
    assert "--shadow-output only apply with --shadow" in capsys.readouterr().err


def test_output_dash_writes_to_stdout_and_leaves_it_open(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    recorder = ShadowRecorder.open(Metrics(), "-")
    recorder.call(CALL, [_message(1)])
    recorder.close()
    line = capsysbinary.readouterr().out
    assert orjson.loads(line)["rule"] == "otp"


def test_the_shadow_reads_the_live_deployments_ledger_not_one_named_from_its_group() -> None:
    assert shadow_config(LIVE, ShadowOptions()).ledger.topic == "bridge.sent-emails"
    named = shadow_config(LIVE, ShadowOptions(group_id="try-new-rules"))
    assert named.ledger.topic_for(named.kafka) == "bridge.sent-emails"
    off = replace(LIVE, ledger=LedgerSettings(enabled=False))
    assert shadow_config(off, ShadowOptions()).ledger.topic_for({"group.id": "x"}) is None
