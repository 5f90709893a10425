from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import DecodeError, HaltError, MappingError, RejectedCall, Unsubscribed
from bridge.events import Envelope, Record
from bridge.kafka.protocols import Batch, Range
from bridge.meisa.calls import DEFAULT_ON_REPLAY, MeisaCall, contact_key
from bridge.replay.runner import ReadPhase, SendPhase
from bridge.replay.state import StateStore

TOPIC = "app.users"


class JsonDecoder:
    def decode(
        self, *, topic: str, partition: int, offset: int, value: bytes | None, **_: Any
    ) -> Envelope:
        if value == b"garbage":
            raise DecodeError("not JSON")
        data = json.loads(value or b"{}")
        return Envelope(
            topic=topic, partition=partition, offset=offset, data=data, time=data.get("time")
        )


class Rules:
    """Each event names the call kind and body it maps to; replay drops skip-policy kinds."""

    def map(self, envelope: Envelope, *, replay: bool = False) -> list[MeisaCall]:
        data = envelope.data
        if data.get("bad"):
            raise MappingError("missing field")
        kind = data["kind"]
        call = MeisaCall(
            kind,
            data["body"],
            contact_key(data["body"]),
            rule="r",
            on_replay=data.get("on_replay", DEFAULT_ON_REPLAY[kind]),
            max_age=data.get("max_age"),
        )
        return [] if replay and call.on_replay == "skip" else [call]


def rec(offset: int, payload: Any, partition: int = 0) -> Record:
    value = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Record(TOPIC, partition, offset, None, value)


def upsert_event(user: int, n: int) -> dict[str, Any]:
    return {
        "kind": "upsert",
        "body": {"email": f"u{user}@x.io", "external_id": f"u{user}", "custom_fields": {"n": n}},
    }


def batches(records: list[Record], start: int = 0, size: int = 7) -> Iterator[Batch]:
    todo = [r for r in records if r.offset >= start]
    for i in range(0, len(todo), size):
        chunk = todo[i : i + size]
        yield Batch(chunk, {(TOPIC, 0): chunk[-1].offset + 1})


def store_for(tmp_path: Path, records: list[Record]) -> StateStore:
    store = StateStore(tmp_path / "run.sqlite")
    store.init_ranges([Range(TOPIC, 0, 0, len(records), 0)])
    return store


class Recorder:
    def __init__(self, fail_at: int | None = None) -> None:
        self.calls: list[MeisaCall] = []
        self.fail_at = fail_at

    async def __call__(self, call: MeisaCall) -> None:
        self.calls.append(call)  # the server got it ...
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise HaltError("killed")  # ... and the process died before marking it done


def send(store: StateStore, deliver: Recorder, workers: int = 4, now: float = 1e9) -> Any:
    return asyncio.run(SendPhase(store, deliver, clock=lambda: now, workers=workers).run())


def test_replay_sends_one_upsert_per_contact_with_its_final_state(tmp_path: Path) -> None:
    records = [rec(i, upsert_event(i % 10, i)) for i in range(500)]
    store = store_for(tmp_path, records)
    ReadPhase(store, JsonDecoder(), Rules()).run(batches(records))
    out = Recorder()
    send(store, out)
    assert len(out.calls) == 10
    assert sorted(c.body["custom_fields"]["n"] for c in out.calls) == list(range(490, 500))
    assert store.counters()["sent.upsert"] == 10


def test_default_policies_send_no_trigger_track_or_enrolment(tmp_path: Path) -> None:
    body = {"email": "a@x.io"}
    records = [rec(0, {"kind": k, "body": body}) for k in ("trigger", "track", "enroll", "upsert")]
    records = [Record(TOPIC, 0, i, None, r.value) for i, r in enumerate(records)]
    store = store_for(tmp_path, records)
    ReadPhase(store, JsonDecoder(), Rules()).run(batches(records))
    out = Recorder()
    send(store, out)
    assert [c.kind for c in out.calls] == ["upsert"]


def test_a_track_with_on_replay_send_goes_out_after_the_folded_state(tmp_path: Path) -> None:
    track = {"kind": "track", "body": {"email": "a@x.io", "event_name": "e"}, "on_replay": "send"}
    records = [rec(0, track), rec(1, {"kind": "upsert", "body": {"email": "a@x.io"}})]
    store = store_for(tmp_path, records)
    ReadPhase(store, JsonDecoder(), Rules()).run(batches(records))
    out = Recorder()
    send(store, out)
    assert [c.kind for c in out.calls] == ["upsert", "track"]


def test_a_stale_trigger_is_skipped_and_dry_run_counts_agree(tmp_path: Path) -> None:
    def trig(t: str) -> dict[str, Any]:
        return {
            "kind": "trigger",
            "body": {"to_email": "a@x.io", "trigger_key": "otp"},
            "on_replay": "send",
            "max_age": 600,
            "time": t,
        }

    records = [rec(0, trig("2020-01-01T00:00:00Z")), rec(1, trig("2030-01-01T00:00:00Z"))]
    store = store_for(tmp_path, records)
    ReadPhase(store, JsonDecoder(), Rules()).run(batches(records))
    now = 1_893_456_000.0 + 60  # one minute after the second event
    planned, stale = store.planned_by_endpoint(now)
    out = Recorder()
    send(store, out, now=now)
    assert (planned, stale) == ({"trigger": 1}, 1)
    assert len(out.calls) == 1
    assert store.counters()["skip.stale"] == 1


def test_decode_and_map_errors_are_counted_not_sent(tmp_path: Path) -> None:
    records = [rec(0, b"garbage"), rec(1, {"bad": True}), rec(2, upsert_event(1, 1))]
    store = store_for(tmp_path, records)
    ReadPhase(store, JsonDecoder(), Rules()).run(batches(records))
    counters = store.counters()
    assert (counters["error.decode"], counters["error.map"], counters["events"]) == (1, 1, 3)


def test_rejected_and_skipped_calls_are_counted_and_marked_done(tmp_path: Path) -> None:
    records = [rec(i, upsert_event(i, i)) for i in range(3)]
    store = store_for(tmp_path, records)
    ReadPhase(store, JsonDecoder(), Rules()).run(batches(records))
    outcomes = iter([RejectedCall("bad", status=400, endpoint="x"), Unsubscribed("u"), None])

    async def deliver(call: MeisaCall) -> None:
        err = next(outcomes)
        if err is not None:
            raise err

    asyncio.run(SendPhase(store, deliver, clock=lambda: 0.0, workers=1).run())
    counters = store.counters()
    assert (counters["failed.upsert"], counters["skip.unsubscribed"], counters["sent.upsert"]) == (
        1,
        1,
        1,
    )
    assert store.left() == (0, 3)


def test_read_phase_killed_midway_resumes_to_the_same_state(tmp_path: Path) -> None:
    records = [rec(i, upsert_event(i % 7, i)) for i in range(300)]
    full = store_for(tmp_path / "a", records)
    ReadPhase(full, JsonDecoder(), Rules()).run(batches(records))

    store = store_for(tmp_path / "b", records)

    def dying() -> Iterator[Batch]:
        for i, batch in enumerate(batches(records)):
            if i == 30:
                raise KeyboardInterrupt
            yield batch

    with pytest.raises(KeyboardInterrupt):
        ReadPhase(store, JsonDecoder(), Rules(), flush_every=50).run(dying())
    (rng,) = store.ranges()
    assert 0 < rng.position < 300
    ReadPhase(store, JsonDecoder(), Rules()).run(batches(records, start=rng.position))
    assert store.planned_by_endpoint(0) == full.planned_by_endpoint(0)
    a, b = Recorder(), Recorder()
    send(full, a)
    send(store, b)
    assert sorted(map(repr, a.calls)) == sorted(map(repr, b.calls))
    assert store.counters()["events"] == 300


def test_memory_bound_spills_folds_and_still_sends_each_contact_once(tmp_path: Path) -> None:
    records = [rec(i, upsert_event(i % 50, i)) for i in range(1000)]
    store = store_for(tmp_path, records)
    ReadPhase(store, JsonDecoder(), Rules(), max_contacts=5).run(batches(records))
    out = Recorder()
    send(store, out)
    assert len(out.calls) == 50
    assert {c.body["custom_fields"]["n"] for c in out.calls} == set(range(950, 1000))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 60), st.integers(1, 8))
def test_send_killed_and_resumed_resends_at_most_the_calls_in_flight(
    tmp_path_factory: pytest.TempPathFactory, kill_at: int, workers: int
) -> None:
    records = [rec(i, upsert_event(i % 60, i)) for i in range(240)]
    tags = [
        rec(240 + i, {"kind": "remove_tag", "body": {"external_id": f"u{i}", "tag_name": "t"}})
        for i in range(20)
    ]
    records += [Record(TOPIC, 0, r.offset, None, r.value) for r in tags]
    store = store_for(tmp_path_factory.mktemp("s"), records)
    ReadPhase(store, JsonDecoder(), Rules()).run(batches(records))
    planned = sum(store.planned_by_endpoint(0)[0].values())
    first = Recorder(fail_at=kill_at)
    with pytest.raises(HaltError):
        send(store, first, workers=workers)
    second = Recorder()
    send(store, second, workers=workers)
    total = len(first.calls) + len(second.calls)
    assert planned <= total <= planned + workers
    assert store.left() == (0, planned)


def test_state_file_reports_by_endpoint_what_the_send_phase_sends(tmp_path: Path) -> None:
    records = [
        rec(0, upsert_event(1, 1)),
        rec(1, {"kind": "add_tag", "body": {"external_id": "u2", "tag_name": "t"}}),
        rec(2, {"kind": "remove_tag", "body": {"external_id": "u1", "tag_name": "t"}}),
    ]
    store = store_for(tmp_path, records)
    ReadPhase(store, JsonDecoder(), Rules()).run(batches(records))
    planned, _ = store.planned_by_endpoint(0)
    out = Recorder()
    send(store, out)
    sent: dict[str, int] = {}
    for call in out.calls:
        sent[call.kind] = sent.get(call.kind, 0) + 1
    assert planned == sent == {"upsert": 1, "add_tag": 1, "remove_tag": 1}
