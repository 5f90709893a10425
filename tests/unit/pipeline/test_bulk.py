"""Enrolments to one sequence go as one bulk-enroll; each message ends as its own call would."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.errors import RejectedCall
from bridge.events import Record
from bridge.meisa.calls import MeisaCall, bulk_of
from bridge.meisa.models import CallResult
from bridge.pipeline.bulk import ALONE, batch_key, verdicts
from bridge.pipeline.dispatcher import Dispatcher, Slot
from bridge.pipeline.message import InFlight, Sending

WINDOW = 0.05  # seconds: real time, short enough for a unit test


def msg(offset: int) -> InFlight:
    return InFlight(Record("t", 0, offset, b"k", b"v"))


def enroll(who: str, slug: str = "onboarding", **extra: Any) -> MeisaCall:
    body = {"email": f"{who}@x.io", "sequence_slug": slug, **extra}
    return MeisaCall(kind="enroll", body=body, contact_key=who)


def track(who: str) -> MeisaCall:
    return MeisaCall(
        kind="track", body={"email": f"{who}@x.io", "event_name": "e"}, contact_key=who
    )


class FakeMeisa:
    """Answers a bulk-enroll like the sandbox; `skip` gives an address a skip reason."""

    def __init__(self) -> None:
        self.sent: list[MeisaCall] = []
        self.skip: dict[str, str] = {}
        self.refuse_bulk = False

    async def deliver(self, call: MeisaCall, slot: Slot, sending: Sending) -> object:
        async with slot:
            self.sent.append(call)
            await asyncio.sleep(0)
        if call.kind != "bulk_enroll":
            return CallResult(201, {})
        if self.refuse_bulk:
            raise RejectedCall("sequence is not active", status=400, endpoint=call.endpoint)
        emails = call.body["emails"]
        skipped = [{"email": e, "reason": self.skip[e]} for e in emails if e in self.skip]
        enrolled = [e for e in emails if e not in self.skip]
        return CallResult(200, {"enrolled_emails": enrolled, "skipped_emails": skipped})


def dispatcher(fake: FakeMeisa, finished: list[InFlight]) -> Dispatcher:
    return Dispatcher(deliver=fake.deliver, on_finished=finished.append, enroll_window=WINDOW)


async def test_enrolments_to_one_sequence_within_the_window_go_as_one_call() -> None:
    fake, finished = FakeMeisa(), []
    d = dispatcher(fake, finished)
    messages = [msg(i) for i in range(4)]
    for i, m in enumerate(messages[:3]):
        d.submit(m, [enroll(f"p{i}")])
    d.submit(messages[3], [enroll("p3", slug="win-back")])
    assert await d.join(5.0)
    assert d.coalesced == 2  # three enrolments, one request
    kinds = sorted((c.kind, c.body.get("sequence_slug", "")) for c in fake.sent)
    assert kinds == [("bulk_enroll", "onboarding"), ("enroll", "win-back")]  # a batch of one
    [bulk] = [c for c in fake.sent if c.kind == "bulk_enroll"]
    assert bulk.body == {
        "sequence_slug": "onboarding",
        "emails": ["p0@x.io", "p1@x.io", "p2@x.io"],
    }
    assert set(finished) == set(messages)
    assert all(m.failure is None and not m.skipped for m in messages)


async def test_already_enrolled_and_unsubscribed_are_done_an_invalid_address_goes_alone() -> None:
    fake, finished = FakeMeisa(), []
    fake.skip = {"p0@x.io": "already_enrolled", "p1@x.io": "bounced", "p2@x.io": "invalid_email"}
    d = dispatcher(fake, finished)
    messages = [msg(i) for i in range(4)]
    for i, m in enumerate(messages):
        d.submit(m, [enroll(f"p{i}")])
    assert await d.join(5.0)
    assert [c.kind for c in fake.sent] == ["bulk_enroll", "enroll"]
    assert fake.sent[1].body["email"] == "p2@x.io"  # its own answer decides
    assert messages[0].skipped == ["already_enrolled"]
    assert messages[1].skipped == ["unsubscribed"]
    assert not messages[2].skipped
    assert not messages[3].skipped
    assert set(finished) == set(messages)
    assert all(m.failure is None for m in messages)


async def test_a_person_s_later_call_sends_their_batch_at_once_and_after_it() -> None:
    fake, finished = FakeMeisa(), []
    d = Dispatcher(deliver=fake.deliver, on_finished=finished.append, enroll_window=60.0)
    d.submit(msg(0), [enroll("p0")])
    d.submit(msg(1), [enroll("p1")])
    await asyncio.sleep(0.01)
    assert fake.sent == []  # waiting in the batch, far from the end of its window
    d.submit(msg(2), [track("p1")])
    assert await d.join(5.0), "the track did not wait out the 60 s window"
    assert [c.kind for c in fake.sent] == ["bulk_enroll", "track"]


async def test_a_batch_refused_as_a_whole_sends_each_enrolment_on_its_own() -> None:
    fake, finished = FakeMeisa(), []
    fake.refuse_bulk = True
    d = dispatcher(fake, finished)
    messages = [msg(i) for i in range(3)]
    for i, m in enumerate(messages):
        d.submit(m, [enroll(f"p{i}")])
    assert await d.join(5.0)
    assert [c.kind for c in fake.sent] == ["bulk_enroll", "enroll", "enroll", "enroll"]
    assert set(finished) == set(messages)


async def test_a_batch_holds_at_most_500_addresses() -> None:
    fake, finished = FakeMeisa(), []
    d = dispatcher(fake, finished)
    for i in range(501):
        d.submit(msg(i), [enroll(f"p{i}")])
    assert await d.join(5.0)
    assert sorted(len(c.body.get("emails", [c])) for c in fake.sent) == [1, 500]
    assert len(finished) == 501


async def test_no_window_sends_every_enrolment_on_its_own() -> None:
    fake, finished = FakeMeisa(), []
    d = Dispatcher(deliver=fake.deliver, on_finished=finished.append)
    for i in range(3):
        d.submit(msg(i), [enroll(f"p{i}")])
    assert await d.join(5.0)
    assert [c.kind for c in fake.sent] == ["enroll"] * 3


def test_only_plain_enrolments_go_in_bulk() -> None:
    assert batch_key(enroll("a")) == ("onboarding", False)
    assert batch_key(enroll("a", override_unsubscribe=True)) == ("onboarding", True)
    assert batch_key(enroll("a", metadata={"plan": "pro"})) is None
    assert batch_key(enroll("a", trigger_source="signup")) is None
    aged = MeisaCall(kind="enroll", body=enroll("a").body, contact_key="a", max_age=60.0)
    opted_out = MeisaCall(kind="enroll", body=enroll("a").body, contact_key="a", coalesce=False)
    assert batch_key(aged) is None
    assert batch_key(opted_out) is None
    assert batch_key(track("a")) is None


def test_a_bulk_call_names_each_address_once() -> None:
    call = bulk_of([enroll("a", override_unsubscribe=True), enroll("A"), enroll("b")])
    assert call.kind == "bulk_enroll"
    assert call.body == {
        "sequence_slug": "onboarding",
        "emails": ["a@x.io", "b@x.io"],
        "override_unsubscribe": True,
    }


def test_verdicts_read_each_address_and_take_an_unknown_answer_as_done() -> None:
    answer = CallResult(
        200,
        {
            "enrolled_emails": ["New@x.io"],
            "skipped_emails": [
                {"email": "old@x.io", "reason": "already_enrolled"},
                {"email": "bad", "reason": "invalid_email"},
            ],
        },
    )
    found = verdicts(answer)
    assert found["new@x.io"] is None
    assert type(found["old@x.io"]).__name__ == "AlreadyEnrolled"
    assert found["bad"] == ALONE
    assert verdicts(CallResult(200, {"enrolled": 3})) == {}  # no per-address lists: all done
    assert verdicts(None) == {}  # a shadow run answers nothing


async def test_a_later_call_queued_before_the_enrolment_joined_also_sends_the_batch() -> None:
    fake, finished = FakeMeisa(), []
    d = Dispatcher(deliver=fake.deliver, on_finished=finished.append, enroll_window=60.0)
    d.submit(msg(0), [enroll("p0")])
    d.submit(msg(1), [enroll("p1")])
    d.submit(msg(2), [track("p1")])  # queued behind p1's enrolment before its lane ran
    assert await d.join(5.0), "the enrolment waited out the 60 s window"
    assert [c.kind for c in fake.sent] == ["bulk_enroll", "track"]
    assert fake.sent[0].body["emails"] == ["p0@x.io", "p1@x.io"]


async def test_enrolments_that_come_while_the_batch_waits_for_a_slot_go_with_it() -> None:
    fake, finished = FakeMeisa(), []
    release = asyncio.Event()

    async def deliver(call: MeisaCall, slot: Slot, sending: Sending) -> object:
        if call.kind == "track":  # holds the only slot, like a call waiting for the budget
            async with slot:
                await release.wait()
            return None
        return await fake.deliver(call, slot, sending)

    d = Dispatcher(
        deliver=deliver, on_finished=finished.append, max_in_flight=1, enroll_window=WINDOW
    )
    d.submit(msg(0), [track("busy")])
    d.submit(msg(1), [enroll("p0")])
    await asyncio.sleep(WINDOW * 2)  # the batch goes, and waits for the slot
    d.submit(msg(2), [enroll("p1")])
    d.submit(msg(3), [enroll("p2")])
    await asyncio.sleep(0.01)
    release.set()
    assert await d.join(5.0)
    assert [c.body["emails"] for c in fake.sent] == [["p0@x.io", "p1@x.io", "p2@x.io"]]
    assert len(finished) == 4


async def test_each_enrolment_sent_in_bulk_reports_its_own_outcome() -> None:
    fake, finished = FakeMeisa(), []
    fake.skip = {"p1@x.io": "already_enrolled"}
    outcomes: list[tuple[str, object]] = []
    d = Dispatcher(
        deliver=fake.deliver,
        on_finished=finished.append,
        enroll_window=WINDOW,
        on_outcome=lambda parts, answer: outcomes.extend(
            (c.body["email"], answer) for c, _ in parts
        ),
    )
    for i in range(2):
        d.submit(msg(i), [enroll(f"p{i}")])
    assert await d.join(5.0)
    found = dict(outcomes)
    assert isinstance(found["p0@x.io"], CallResult)
    assert found["p0@x.io"].status == 200  # type: ignore[attr-defined]
    assert type(found["p1@x.io"]).__name__ == "AlreadyEnrolled"


def test_verdicts_read_an_answer_wrapped_with_its_attempts() -> None:
    from bridge.pipeline.outcomes import Answered

    answer = CallResult(200, {"skipped_emails": [{"email": "a@x.io", "reason": "bounced"}]})
    skip = verdicts(Answered(answer, 3))["a@x.io"]
    assert type(skip).__name__ == "Unsubscribed"
    assert skip.attempts == 3  # type: ignore[union-attr]
