"""Dispatcher: per-contact order, concurrency across contacts, and the outcome of each answer."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import (
    ContactNotFound,
    ContactWaitExpired,
    RejectedCall,
    StaleEvent,
    Unauthorized,
)
from bridge.events import Record
from bridge.meisa.calls import MeisaCall
from bridge.meisa.retry import ContactWait
from bridge.pipeline.dispatcher import Dispatcher, Slot
from bridge.pipeline.message import InFlight, Sending

WAIT_LONG = ContactWait(seconds=300.0, base_seconds=60.0)  # a parked call stays parked in a test


def msg(offset: int, partition: int = 0) -> InFlight:
    return InFlight(Record("t", partition, offset, b"k", b"v"))


def call(kind: Any, key: str, n: int = 0, **body: Any) -> MeisaCall:
    return MeisaCall(kind=kind, body={"email": f"{key}@x.io", "n": n, **body}, contact_key=key)


class FakeMeisa:
    """Records calls; each call blocks until released, unless `auto` is set."""

    def __init__(self, *, auto: bool = True) -> None:
        self.sent: list[MeisaCall] = []
        self.auto = auto
        self.gates: list[asyncio.Event] = []
        self.fail: dict[int, Exception] = {}

    async def deliver(self, c: MeisaCall, slot: Slot, sending: Sending) -> object:
        async with slot:
            self.sent.append(c)
            if not self.auto:
                gate = asyncio.Event()
                self.gates.append(gate)
                await gate.wait()
            exc = self.fail.get(c.body.get("n", -1))
            if exc is not None:
                raise exc
            await asyncio.sleep(0)
            return None


def make(fake: FakeMeisa, finished: list[InFlight], **kw: Any) -> Dispatcher:
    return Dispatcher(deliver=fake.deliver, on_finished=finished.append, **kw)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_message_finishes_only_after_all_its_calls() -> None:
    fake, finished = FakeMeisa(auto=False), []
    d = make(fake, finished)
    m = msg(0)
    d.submit(m, [call("upsert", "a"), call("track", "b")])
    await settle()
    assert len(fake.gates) == 2
    fake.gates[0].set()
    await settle()
    assert finished == []
    fake.gates[1].set()
    await settle()
    assert finished == [m]


async def test_one_contact_runs_one_call_at_a_time_others_concurrently() -> None:
    fake, finished = FakeMeisa(auto=False), []
    d = make(fake, finished, max_in_flight=8)
    d.submit(msg(0), [call("track", "a", 0)])
    d.submit(msg(1), [call("track", "a", 1)])
    d.submit(msg(2), [call("track", "b", 2)])
    await settle()
    assert [c.body["n"] for c in fake.sent] == [0, 2]
    fake.gates[0].set()
    await settle()
    assert [c.body["n"] for c in fake.sent] == [0, 2, 1]


async def test_max_in_flight_bounds_concurrency() -> None:
    fake, finished = FakeMeisa(auto=False), []
    d = make(fake, finished, max_in_flight=2)
    for i in range(5):
        d.submit(msg(i), [call("track", f"c{i}", i)])
    await settle()
    assert len(fake.sent) == 2


async def test_trigger_lane_overtakes_a_saturated_upsert_lane() -> None:
    fake, finished = FakeMeisa(auto=False), []
    d = make(fake, finished, max_in_flight=1)
    d.submit(msg(0), [call("upsert", "a", 0)])
    d.submit(msg(1), [call("upsert", "b", 1)])
    d.submit(msg(2), [call("trigger", "c", 2)])
    await settle()
    assert [c.kind for c in fake.sent] == ["upsert", "trigger"]


async def test_waiting_upserts_coalesce_into_one_call() -> None:
    fake, finished = FakeMeisa(auto=False), []
    d = make(fake, finished, max_in_flight=1)
    d.submit(msg(0), [call("upsert", "a", 0)])
    d.submit(msg(1), [call("upsert", "b", 1, first_name="X")])
    d.submit(msg(2), [call("upsert", "b", 2, last_name="Y")])
    await settle()
    fake.gates[0].set()
    await settle()
    assert fake.sent[1].body == {"email": "b@x.io", "n": 2, "first_name": "X", "last_name": "Y"}
    fake.gates[1].set()
    await settle()
    assert sorted(m.offset for m in finished) == [0, 1, 2]
    assert d.coalesced == 1


async def test_poison_in_merged_upsert_fails_only_its_own_message() -> None:
    fake, finished = FakeMeisa(), []
    fake.fail[2] = RejectedCall("bad", status=400, endpoint="upsert")
    d = make(fake, finished, max_in_flight=1)
    blocker = msg(0)
    d.submit(blocker, [call("track", "z", 0)])
    ok, bad = msg(1), msg(2)
    d.submit(ok, [call("upsert", "a", 1, first_name="X")])
    d.submit(bad, [call("upsert", "a", 2, last_name="Y")])
    await d.join(5)
    assert {m.offset for m in finished} == {0, 1, 2}
    assert ok.failure is None
    assert bad.failure is not None
    assert bad.failure.stage == "deliver"
    assert isinstance(bad.failure.error, RejectedCall)


async def test_other_calls_of_a_poison_message_still_run() -> None:
    fake, finished = FakeMeisa(), []
    fake.fail[1] = RejectedCall("bad", status=400, endpoint="track")
    d = make(fake, finished)
    m = msg(0)
    d.submit(m, [call("track", "a", 1), call("upsert", "b", 2)])
    await d.join(5)
    assert len(fake.sent) == 2
    assert finished == [m]
    assert m.failure is not None


async def test_skip_outcome_finishes_and_counts_reason() -> None:
    fake, finished, reasons = FakeMeisa(), [], []
    d = make(fake, finished, on_skip=reasons.append)
    fake.fail[0] = StaleEvent("old")
    m = msg(0)
    d.submit(m, [call("trigger", "a", 0)])
    await d.join(5)
    assert finished == [m]
    assert m.failure is None
    assert reasons == ["stale"]


async def test_guard_skip_means_nothing_is_sent() -> None:
    fake, finished = FakeMeisa(), []

    def guard(c: MeisaCall, event_time: float | None) -> None:
        raise StaleEvent("too old")

    d = make(fake, finished, guard=guard)
    d.submit(msg(0), [call("trigger", "a")])
    await d.join(5)
    assert fake.sent == []
    assert finished[0].skipped == ["stale"]


async def test_halt_stops_sending_and_leaves_messages_unfinished() -> None:
    fake, finished = FakeMeisa(), []
    fake.fail[0] = Unauthorized("401")
    d = make(fake, finished, max_in_flight=1)
    d.submit(msg(0), [call("track", "a", 0)])
    d.submit(msg(1), [call("track", "a", 1)])
    await d.join(5)
    assert isinstance(d.halted, Unauthorized)
    assert finished == []
    assert len(fake.sent) == 1
    d.submit(msg(2), [call("track", "b", 2)])
    await settle()
    assert len(fake.sent) == 1


async def test_calls_of_cancelled_messages_are_dropped() -> None:
    fake, finished = FakeMeisa(auto=False), []
    d = make(fake, finished, max_in_flight=1)
    d.submit(msg(0), [call("track", "a", 0)])
    late = msg(1)
    d.submit(late, [call("track", "b", 1)])
    late.cancel()
    await settle()
    fake.gates[0].set()
    await d.join(5)
    assert [c.body["n"] for c in fake.sent] == [0]


@settings(max_examples=40, deadline=None)
@given(
    plan=st.lists(
        st.lists(
            st.tuples(st.sampled_from(["upsert", "track", "trigger"]), st.sampled_from("abcd")),
            max_size=3,
        ),
        min_size=1,
        max_size=25,
    ),
    width=st.integers(1, 4),
)
def test_per_contact_order_is_submission_order(
    plan: list[list[tuple[str, str]]], width: int
) -> None:
    async def scenario() -> None:
        fake, finished = FakeMeisa(), []
        d = make(fake, finished, max_in_flight=width)
        for key in "abcd":  # known contacts: no upsert is moved ahead of a track
            d.known.add(f"m:{key}@x.io")
        expected: dict[str, list[int]] = {}
        n = 0
        for offset, calls in enumerate(plan):
            batch = []
            for kind, key in calls:
                batch.append(call(kind, key, n))
                expected.setdefault(key, []).append(n)
                n += 1
            d.submit(msg(offset), batch)
        assert await d.join(10)
        assert sorted(m.offset for m in finished) == list(range(len(plan)))
        seen: dict[tuple[str, bool], list[int]] = {}
        for c in fake.sent:  # a person's triggers run in a lane of their own
            seen.setdefault((c.contact_key, c.kind == "trigger"), []).append(c.body["n"])
        for (key, _), ns in seen.items():
            # a merged upsert carries the latest n; order must still follow submission
            assert ns == sorted(ns)
            assert set(ns) <= set(expected[key])

    asyncio.run(scenario())


async def test_one_persons_calls_from_several_partitions_share_one_lane() -> None:
    # Kafka orders nothing across partitions and topics; the lane does: one call at a time.
    fake, finished = FakeMeisa(auto=False), []
    d = make(fake, finished, max_in_flight=8)
    d.known.add("m:a@x.io")
    d.submit(msg(0, partition=0), [call("track", "a", 0)])
    d.submit(msg(0, partition=1), [call("track", "a", 1)])
    d.submit(msg(1, partition=0), [call("track", "a", 2)])
    await settle()
    assert [c.body["n"] for c in fake.sent] == [0]
    for n in range(3):
        fake.gates[n].set()
        await settle()
    assert [c.body["n"] for c in fake.sent] == [0, 1, 2]
    assert len(finished) == 3


async def test_an_upsert_queued_behind_a_track_of_an_unknown_contact_goes_first() -> None:
    # Never ask Meisa about a contact the bridge is still creating: the track waits.
    fake, finished = FakeMeisa(), []
    d = make(fake, finished)
    d.submit(msg(0, partition=0), [call("track", "a", 0)])
    d.submit(msg(1, partition=0), [call("track", "a", 1)])
    d.submit(msg(0, partition=1), [call("upsert", "a", 2)])
    await d.join(1)
    assert [c.body["n"] for c in fake.sent] == [2, 0, 1]
    assert len(finished) == 3


async def test_revoked_messages_send_nothing_new_while_the_call_in_progress_finishes() -> None:
    # On revoke only the calls already being sent may finish (and be committed); queued calls of
    # the partition are dropped unsent and their messages never count as done.
    fake, finished = FakeMeisa(auto=False), []
    d = make(fake, finished, max_in_flight=8)
    first, second, third = msg(0), msg(1), msg(2)
    d.submit(first, [call("track", "a", 0)])
    d.submit(second, [call("track", "a", 1)])
    d.submit(third, [call("track", "b", 2), call("track", "a", 3)])
    await settle()
    assert [c.body["n"] for c in fake.sent] == [0, 2]
    for m in (first, second, third):
        m.revoke()
    fake.gates[0].set()
    fake.gates[1].set()
    await d.join(1)
    assert [c.body["n"] for c in fake.sent] == [0, 2]
    assert [m for m in finished if not m.cancelled] == [first]
    assert second.cancelled
    assert third.cancelled


async def test_releasing_a_partition_cancels_its_calls_in_progress() -> None:
    # After a lost partition (or a revoke whose grace ran out) the new owner sends these calls;
    # a late copy from the old owner could land after newer ones. The lane goes on with the
    # calls of partitions still owned.
    fake, finished = FakeMeisa(auto=False), []
    d = make(fake, finished, max_in_flight=8)
    d.known.add("m:a@x.io")
    gone, kept = msg(0, partition=0), msg(0, partition=1)
    d.submit(gone, [call("track", "a", 0)])
    d.submit(msg(1, partition=0), [call("track", "a", 1)])
    d.submit(kept, [call("track", "a", 2)])
    await settle()
    gone.cancel()
    await d.release([("t", 0)])
    await settle()
    fake.gates[1].set()
    await d.join(1)
    assert [c.body["n"] for c in fake.sent] == [0, 2]
    assert finished == [kept]
    d.submit(msg(5, partition=0), [call("track", "a", 5)])  # assigned again later
    await settle()
    fake.gates[2].set()
    await d.join(1)
    assert [c.body["n"] for c in fake.sent] == [0, 2, 5]


async def test_a_lane_survives_repeated_releases_and_still_closes() -> None:
    # release() cancels the lane's task around the running call and takes the cancel back:
    # the lane must go on after each release, and closing must still stop it.
    fake, finished = FakeMeisa(auto=False), []
    d = make(fake, finished, max_in_flight=8)
    d.known.add("m:a@x.io")
    for n in range(3):
        lost = msg(n, partition=0)
        d.submit(lost, [call("track", "a", n)])
        await settle()
        lost.cancel()
        await d.release([("t", 0)])
    kept = msg(9, partition=1)
    d.submit(kept, [call("track", "a", 9)])
    await settle()
    fake.gates[-1].set()
    await d.join(1)
    assert [c.body["n"] for c in fake.sent] == [0, 1, 2, 9]
    assert finished == [kept]
    d.submit(msg(10, partition=1), [call("track", "a", 10)])
    await settle()
    await d.terminate()
    assert await d.join(1)
    assert len(finished) == 1


async def test_closing_while_a_release_cancels_the_same_call_stops_the_lane() -> None:
    fake, finished = FakeMeisa(auto=False), []
    d = make(fake, finished, max_in_flight=8)
    d.known.add("m:a@x.io")
    lost = msg(0, partition=0)
    d.submit(lost, [call("track", "a", 0)])
    d.submit(msg(1, partition=1), [call("track", "a", 1)])
    await settle()
    lost.cancel()
    release = asyncio.create_task(d.release([("t", 0)]))
    closing = asyncio.create_task(d.terminate())
    await asyncio.gather(release, closing)
    await settle()
    assert [c.body["n"] for c in fake.sent] == [0], "the closed lane starts nothing more"
    assert finished == []


async def test_an_error_outside_the_error_tree_halts_instead_of_stranding_the_message() -> None:
    # A bug or an unmapped library error must not kill the contact's queue silently: the
    # message would never finish and its partition's commits would stop without a word.
    fake, finished, halts = FakeMeisa(), [], []
    fake.fail[0] = RuntimeError("unexpected")
    d = make(fake, finished, on_halt=halts.append)
    d.submit(msg(0), [call("track", "a", 0)])
    await d.join(1)
    assert finished == []
    assert [type(h).__name__ for h in halts] == ["UnexpectedDeliveryError"]
    assert "RuntimeError: unexpected" in str(halts[0])


def not_found() -> ContactNotFound:
    return ContactNotFound("contact not found", status=404, endpoint="POST /events/track/")


async def test_a_404_parks_the_call_without_holding_a_slot_and_an_upsert_wakes_it() -> None:
    fake, finished, misses = FakeMeisa(), [], []
    fake.fail[0] = not_found()
    d = make(fake, finished, max_in_flight=1, on_not_found=misses.append, contact_wait=WAIT_LONG)
    d.submit(msg(0), [call("track", "a", 0)])
    await settle()
    assert d.parked() == 1
    d.submit(msg(1), [call("track", "b", 1)])  # the only slot is free for another person
    await settle()
    assert [c.body["n"] for c in fake.sent] == [0, 1]
    del fake.fail[0]
    d.submit(msg(0, partition=1), [call("upsert", "a", 2)])  # someone creates the contact
    assert await d.join(1)  # the parked track retries at once, not after its back-off
    assert [c.body["n"] for c in fake.sent] == [0, 1, 2, 0]
    assert d.parked() == 0, "the call that went is no longer counted as parked"
    assert misses == ["track"]
    assert len(finished) == 3
    assert all(m.failure is None for m in finished)


async def test_calls_needing_the_contact_stay_behind_a_parked_head_triggers_pass() -> None:
    fake, finished = FakeMeisa(), []
    fake.fail[0] = not_found()
    d = make(fake, finished, contact_wait=WAIT_LONG)
    d.submit(msg(0), [call("track", "a", 0)])
    d.submit(msg(1), [call("add_tag", "a", 1)])
    d.submit(
        msg(2),
        [MeisaCall(kind="trigger", body={"to_email": "a@x.io", "n": 2}, contact_key="a@x.io")],
    )
    await settle()
    sent = [c.body["n"] for c in fake.sent]
    assert sent[:2] == [0, 2]  # the trigger went; its success shows the contact, so the track
    assert 1 not in sent  # retried (and 404'd again); the tag stays behind it
    assert [m.offset for m in finished] == [2]
    await d.terminate()


async def test_a_404_past_the_contact_wait_is_poison_with_a_reason() -> None:
    fake, finished = FakeMeisa(), []
    fake.fail[0] = not_found()
    wait = ContactWait(seconds=0.05, base_seconds=0.01, cap_seconds=0.02)
    d = make(fake, finished, contact_wait=wait)
    m = msg(0)
    d.submit(m, [call("track", "a", 0)])
    assert await d.join(2)
    assert finished == [m]
    assert m.failure is not None
    assert isinstance(m.failure.error, ContactWaitExpired)
    assert "no contact after waiting" in str(m.failure.error)
    assert m.failure.attempts == len(fake.sent) > 1


async def test_create_contact_upserts_a_minimal_contact_then_sends_again() -> None:
    fake, finished = FakeMeisa(), []
    track = MeisaCall(
        kind="track",
        body={"email": "a@x.io", "external_id": "u1", "event_name": "e", "n": 0},
        contact_key="u1",
        create_contact=True,
    )

    async def deliver(c: MeisaCall, slot: Slot, sending: Sending) -> object:
        fake.sent.append(c)
        if c.kind == "track" and not any(s.kind == "upsert" for s in fake.sent):
            raise not_found()
        return None

    d = Dispatcher(deliver=deliver, on_finished=finished.append)
    d.submit(msg(0), [track])
    assert await d.join(1)
    assert [(c.kind, dict(c.body)) for c in fake.sent[1:]] == [
        ("upsert", {"email": "a@x.io", "external_id": "u1"}),
        ("track", dict(track.body)),
    ]
    assert finished[0].failure is None


async def test_an_email_only_lane_folds_into_the_persons_lane_when_the_link_appears() -> None:
    fake, finished = FakeMeisa(auto=False), []
    d = make(fake, finished, max_in_flight=8)
    by_email = MeisaCall(
        kind="add_tag", body={"email": "a@x.io", "tag_name": "t", "n": 0}, contact_key="a@x.io"
    )
    by_id = MeisaCall(
        kind="track", body={"external_id": "u1", "event_name": "e", "n": 1}, contact_key="u1"
    )
    both = MeisaCall(
        kind="upsert", body={"email": "a@x.io", "external_id": "u1", "n": 2}, contact_key="u1"
    )
    later = MeisaCall(
        kind="track", body={"email": "a@x.io", "event_name": "e", "n": 3}, contact_key="a@x.io"
    )
    d.submit(msg(0), [by_email])
    d.submit(msg(1), [by_id])
    await settle()
    assert [c.body["n"] for c in fake.sent] == [0, 1]  # two lanes: no link known yet
    d.submit(msg(2), [both])  # links u1 and a@x.io: one person, one lane from now on
    d.submit(msg(3), [later])
    await settle()
    fake.gates[1].set()
    await settle()
    assert [c.body["n"] for c in fake.sent] == [0, 1]  # waits for the folded lane's call
    fake.gates[0].set()
    await settle()
    assert [c.body["n"] for c in fake.sent] == [0, 1, 2]
    fake.gates[2].set()
    await settle()
    fake.gates[3].set()
    assert await d.join(1)
    assert [c.body["n"] for c in fake.sent] == [0, 1, 2, 3]
    assert len(finished) == 4


async def test_a_call_queued_for_a_slot_when_the_fence_closes_waits_for_it_to_open() -> None:
    """The fence is asked once the slot is held: a call that got past an open fence and then
    queued for a slot must not go out after the fence closed (commits failing meanwhile)."""
    fake, finished = FakeMeisa(auto=False), []
    fence_open = asyncio.Event()
    fence_open.set()

    async def fence() -> None:
        await fence_open.wait()

    d = make(fake, finished, max_in_flight=1, fence=fence)
    d.submit(msg(0), [call("track", "a")])
    d.submit(msg(1), [call("track", "b")])
    await settle()
    assert [c.contact_key for c in fake.sent] == ["a"]  # b waits for the only slot
    fence_open.clear()  # e.g. a commit was refused
    fake.gates[0].set()
    await settle()
    assert [c.contact_key for c in fake.sent] == ["a"]
    fence_open.set()
    await settle()
    assert [c.contact_key for c in fake.sent] == ["a", "b"]


async def test_a_call_cancelled_while_it_waits_at_the_fence_gives_its_slot_back() -> None:
    """A lost partition's calls waiting at a closed fence (after a freeze) are cancelled with
    their lanes; each held a slot, and every one must come back, or no call starts again."""
    fake, finished = FakeMeisa(auto=True), []
    fence_open = asyncio.Event()

    async def fence() -> None:
        await fence_open.wait()

    d = make(fake, finished, max_in_flight=2, fence=fence)
    lost = [msg(i, partition=0) for i in range(2)]
    for i, m in enumerate(lost):
        d.submit(m, [call("track", f"p{i}", i)])
    await settle()  # both hold a slot and wait at the fence
    for m in lost:
        m.cancel()
    await d.release([("t", 0)])
    await settle()
    fence_open.set()
    kept = msg(0, partition=1)
    d.submit(kept, [call("track", "q", 9)])
    await d.join(1)
    assert [c.body["n"] for c in fake.sent] == [9]
    assert finished == [kept]


async def test_closed_it_finishes_the_calls_under_way_and_takes_no_new_message() -> None:
    fake, finished = FakeMeisa(auto=False), []
    d = make(fake, finished)
    running, late = msg(0), msg(1)
    d.submit(running, [call("track", "a")])
    await settle()
    d.close()
    d.submit(late, [call("track", "b")])
    assert not await d.join(0.05), "the call under way is waited for"
    fake.gates[0].set()
    assert await d.join(1)
    assert finished == [running]
    assert (len(fake.sent), late.remaining) == (1, 0), "the late message is left to be read again"
