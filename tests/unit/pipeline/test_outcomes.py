"""The outcome topic: what each finished call's record says, that the dispatcher hands over every
finished call (and nothing unfinished), and that a refusing broker is counted, never raised."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest

from bridge.errors import ContactNotFound, RejectedCall, StaleEvent, Unsubscribed
from bridge.events import Envelope, Record
from bridge.kafka.memory import MemoryBroker, MemoryProducer
from bridge.meisa.calls import MeisaCall
from bridge.meisa.models import CallResult
from bridge.meisa.retry import ContactWait
from bridge.observability import Metrics
from bridge.pipeline.dispatcher import Dispatcher, Slot
from bridge.pipeline.message import InFlight, Sending
from bridge.pipeline.outcomes import Answered, OutcomeWriter, outcome_record, with_attempts

AT = 1_780_000_000.25  # 2026-05-28T20:26:40.250Z


def message(offset: int = 7, event_id: str | None = "evt-1") -> InFlight:
    record = Record("app.auth", 2, offset, b"u1", b"{}")
    envelope = Envelope(
        id=event_id, type="auth.otp", topic="app.auth", partition=2, offset=offset, data={}
    )
    return InFlight(record, envelope=envelope if event_id else None)


def trigger(key: str = "ada@example.com") -> MeisaCall:
    body = {"trigger_key": "code", "to_email": key, "idempotency_key": "evt-1:otp:0"}
    return MeisaCall(kind="trigger", body=body, contact_key=key, rule="otp", action=0)


def upsert(key: str, n: int) -> MeisaCall:
    body = {"email": f"{key}@example.com", "external_id": key, "custom_fields": {"n": n}}
    return MeisaCall(kind="upsert", body=body, contact_key=key, rule="profile", action=n)


def test_an_accepted_trigger_names_meisas_ids_status_and_attempts() -> None:
    result = CallResult(200, {"email_send_id": "es_1", "contact_id": "c_1", "status": "sent"})
    doc = outcome_record(trigger(), message(), Answered(result, 2), AT)
    assert doc["outcome"] == "sent"
    assert (doc["email_send_id"], doc["contact_id"], doc["status"], doc["attempts"]) == (
        "es_1",
        "c_1",
        200,
        2,
    )
    assert (doc["event_id"], doc["topic"], doc["partition"], doc["offset"]) == (
        "evt-1",
        "app.auth",
        2,
        7,
    )
    assert (doc["rule"], doc["kind"], doc["email"]) == ("otp", "trigger", "ada@example.com")
    assert doc["idempotency_key"] == "evt-1:otp:0"
    assert doc["time"] == "2026-05-28T20:26:40.250Z"


def test_a_202_is_scheduled_and_meisas_skip_keeps_its_reason() -> None:
    scheduled = CallResult(202, {"email_send_id": "es_2"}, reason="scheduled")
    assert outcome_record(trigger(), message(), Answered(scheduled, 1), AT)["outcome"] == (
        "scheduled"
    )
    skipped = CallResult(200, {"status": "skipped"}, "skipped", "conditions_not_met")
    doc = outcome_record(trigger(), message(), Answered(skipped, 1), AT)
    assert (doc["outcome"], doc["reason"]) == ("skipped", "conditions_not_met")


def test_an_enrolment_names_its_enrolment_id() -> None:
    call = MeisaCall(
        kind="enroll", body={"email": "a@x.io", "sequence_slug": "s"}, contact_key="a@x.io"
    )
    result = CallResult(201, {"id": "enr_9", "status": "active"})
    assert outcome_record(call, message(), Answered(result, 1), AT)["enrollment_id"] == "enr_9"


def test_skips_say_why_and_how_many_requests_they_took() -> None:
    stale = StaleEvent("too old")
    doc = outcome_record(trigger(), message(), stale, AT)
    assert (doc["outcome"], doc["reason"], doc["attempts"], doc["status"]) == (
        "skipped",
        "stale",
        0,
        None,
    )
    refused = Unsubscribed("unsubscribed")
    refused.attempts = 1
    doc = outcome_record(trigger(), message(), refused, AT)
    assert (doc["reason"], doc["status"], doc["attempts"]) == ("unsubscribed", 422, 1)


def test_poison_is_dead_lettered_with_its_error_and_emails_as_they_are() -> None:
    error = RejectedCall("ada@example.com is invalid", status=400, endpoint="trigger", attempts=1)
    doc = outcome_record(trigger(), message(event_id=None), error, AT)
    assert (doc["outcome"], doc["status"], doc["event_id"]) == ("dead_lettered", 400, None)
    assert doc["error"]["class"] == "RejectedCall"
    assert "ada@example.com" in doc["error"]["message"]


async def test_attempts_count_the_slot_entries_of_one_delivery() -> None:
    class Free:
        async def __aenter__(self) -> None:
            return None

        async def __aexit__(self, *exc: object) -> None:
            return None

    async def twice(call: MeisaCall, slot: Slot, sending: Sending) -> object:
        for _ in range(2):
            async with slot:
                pass
        return "ok"

    answer = await with_attempts(twice)(trigger(), Free(), Sending(()))
    assert isinstance(answer, Answered)
    assert (answer.result, answer.attempts) == ("ok", 2)


class Fake:
    """Meisa: an upsert tagged `bad` is rejected, a track answers 404, the rest 200."""

    async def deliver(self, call: MeisaCall, slot: Slot, sending: Sending) -> object:
        async with slot:
            await asyncio.sleep(0)
        if "bad" in call.body.get("tag_names", ()):  # survives a merge: tag_names union
            raise RejectedCall("bad field", status=400, endpoint="upsert")
        if call.kind == "track":
            raise ContactNotFound("no contact", status=404, endpoint="track")
        return CallResult(200, {"contact_id": f"c_{call.contact_key}"})


async def drain(dispatcher: Dispatcher) -> None:
    assert await dispatcher.join(5)


async def test_the_dispatcher_hands_over_each_finished_call_once_per_message() -> None:
    seen: list[tuple[str, int, object]] = []

    def on_outcome(parts: Any, answer: object) -> None:
        seen.extend((call.rule, msg.offset, answer) for call, msg in parts)

    fake = Fake()
    dispatcher = Dispatcher(
        deliver=with_attempts(fake.deliver),
        on_finished=lambda m: None,
        on_outcome=on_outcome,
        contact_wait=ContactWait(seconds=0.05, base_seconds=0.01, cap_seconds=0.01),
    )
    gate = asyncio.Event()
    blocker = MeisaCall(kind="upsert", body={"email": "x@x.io"}, contact_key="bo", rule="block")

    async def slow(call: MeisaCall, slot: Slot, sending: Sending) -> object:
        if call.rule == "block":
            await gate.wait()
        return await with_attempts(fake.deliver)(call, slot, sending)

    dispatcher._deliver = slow
    dispatcher.submit(message(0), [blocker])
    # three upserts coalesce behind the blocker; the one with n=2 is poison
    for n in range(1, 4):
        call = upsert("bo", n)
        if n == 2:
            call = MeisaCall(**{**_fields(call), "body": {**call.body, "tag_names": ["bad"]}})
        dispatcher.submit(message(n), [call])
    track = MeisaCall(
        kind="track", body={"external_id": "zed", "event_name": "e"}, contact_key="zed"
    )
    dispatcher.submit(message(9), [track])
    gate.set()
    await drain(dispatcher)
    by_offset = {offset: answer for _, offset, answer in seen}
    assert sorted(by_offset) == [0, 1, 2, 3, 9]
    assert isinstance(by_offset[1], Answered)
    assert isinstance(by_offset[3], Answered)
    assert isinstance(by_offset[2], RejectedCall)  # the merged upsert re-sent part by part
    assert type(by_offset[9]).__name__ == "ContactWaitExpired"  # the 404 wait ran out
    assert len(seen) == 5


def _fields(call: MeisaCall) -> dict[str, Any]:
    return {name: getattr(call, name) for name in MeisaCall.__slots__}


async def test_records_are_written_keyed_by_person_in_order() -> None:
    broker = MemoryBroker()
    broker.create_topic("outcomes")
    metrics = Metrics()
    writer = OutcomeWriter(MemoryProducer(broker), "outcomes", max_pending=100, metrics=metrics)
    task = asyncio.create_task(writer.run())
    result = Answered(CallResult(200, {"contact_id": "c"}), 1)
    for n in range(3):
        writer.add([(upsert("bo", n), message(n))], result)
    await writer.close(1.0)
    task.cancel()
    records = broker.log("outcomes", 0)
    assert [r.key for r in records] == [b"bo"] * 3
    assert [orjson.loads(r.value or b"")["action"] for r in records] == [0, 1, 2]
    assert (
        metrics.registry.get_sample_value(
            "meisa_bridge_outcome_records_total", {"result": "written"}
        )
        == 3
    )


async def test_a_refusing_broker_is_counted_and_warned_about_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = MemoryBroker()
    broker.create_topic("outcomes")
    producer = MemoryProducer(broker)
    producer.refuse = "TOPIC_AUTHORIZATION_FAILED"
    metrics = Metrics()
    writer = OutcomeWriter(producer, "outcomes", max_pending=2, metrics=metrics)
    result = Answered(CallResult(200, {}), 1)
    with caplog.at_level(logging.WARNING, logger="bridge.outcomes"):
        writer.add([(upsert("bo", n), message(n)) for n in range(3)], result)  # one over
        await writer.close(1.0)

    def count(result: str) -> float | None:
        return metrics.registry.get_sample_value(
            "meisa_bridge_outcome_records_total", {"result": result}
        )

    assert (count("dropped"), count("failed")) == (1, 2)
    assert "record(s) not written" in caplog.text
    assert broker.log("outcomes", 0) == []


async def test_a_message_is_finished_only_once_its_record_is_written() -> None:
    broker = MemoryBroker()
    broker.create_topic("outcomes")
    writer = OutcomeWriter(MemoryProducer(broker), "outcomes", max_pending=10, metrics=Metrics())
    released: list[InFlight] = []
    writer.bind(released.append)
    held = message()
    held.remaining = 1  # the dispatcher's count for its one call
    writer.add([(trigger(), held)], Answered(CallResult(200, {}), 1))
    held.remaining -= 1  # the dispatcher completes the call: not finished yet
    assert released == []
    task = asyncio.create_task(writer.run())
    assert await writer.join(1.0)
    task.cancel()
    assert released == [held]
    assert len(broker.log("outcomes", 0)) == 1


class Silent(MemoryProducer):
    """A broker that never acknowledges."""

    async def send(self, topic: str, **kw: Any) -> None:
        await asyncio.Event().wait()


async def test_an_unacknowledged_record_holds_its_message_only_so_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bridge.pipeline.outcomes.HOLD_SECONDS", 0.05)
    metrics = Metrics()
    writer = OutcomeWriter(Silent(MemoryBroker()), "outcomes", max_pending=10, metrics=metrics)
    released: list[InFlight] = []
    writer.bind(released.append)
    held = message()
    writer.add([(trigger(), held)], Answered(CallResult(200, {}), 1))
    task = asyncio.create_task(writer.run())
    assert await writer.join(1.0)
    assert released == [held]
    await writer.close(0.05)  # the record never came back: counted, not raised
    task.cancel()
    assert (
        metrics.registry.get_sample_value(
            "meisa_bridge_outcome_records_total", {"result": "dropped"}
        )
        == 1
    )
