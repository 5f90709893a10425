from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.config import BridgeConfig
from bridge.dlq import DeadLetter, DeadLetterProducer, Failure, dlq_record_headers
from bridge.dlq_admin.commands import list_records
from bridge.dlq_admin.records import (
    DlqRecord,
    Selection,
    collect,
    decode,
    marker_headers,
    parse_offsets,
    show,
    table,
)
from bridge.dlq_admin.redrive import Redriver
from bridge.errors import ConfigError, MappingError, RejectedCall, SpecFieldError
from bridge.events import Envelope, Record
from bridge.kafka.memory import MemoryBroker, MemoryProducer, MemoryRangeReader
from bridge.meisa.calls import MeisaCall
from bridge.settings import DlqSettings


def letter(offset: int, **kw: Any) -> DeadLetter:
    """Flat keywords: those of the Record, then those of the Failure."""
    record: dict[str, Any] = {
        "topic": "app.users",
        "partition": 2,
        "offset": offset,
        "key": b"k",
        "value": json.dumps({"email": "ann@example.com", "n": offset}).encode(),
        "headers": (("trace", b"abc"),),
        "timestamp": 1_700_000_000_000,
    }
    failure: dict[str, Any] = {"error": MappingError("missing data.plan"), "stage": "map"}
    failure["rule"] = "profile"
    for name, value in kw.items():
        (record if name in record else failure)[name] = value
    return DeadLetter(Record(**record), Failure(**failure))


def raw(dlq_offset: int, dl: DeadLetter, partition: int = 0) -> Record:
    return Record(
        "dlq",
        partition,
        dlq_offset,
        dl.record.key,
        dl.record.value,
        tuple(dlq_record_headers(dl)),
        1_700_000_100_000,
    )


def test_headers_decode_into_the_record_and_the_original_message_is_restored() -> None:
    rec = decode(raw(9, letter(41, attempts=3)))
    assert isinstance(rec, DlqRecord)
    assert (rec.error_class, rec.rule, rec.stage, rec.origin, rec.attempts) == (
        "MappingError",
        "profile",
        "map",
        "app.users/2/41",
        3,
    )
    assert rec.headers == (("trace", b"abc"),)
    assert rec.origin_timestamp == 1_700_000_000_000


@given(st.integers(0, 10**9), st.integers(0, 50), st.integers(1, 99))
def test_origin_and_attempts_round_trip_through_the_headers(offset: int, part: int, n: int) -> None:
    rec = decode(raw(0, letter(offset, partition=part, attempts=n)))
    assert isinstance(rec, DlqRecord)
    assert (rec.origin_partition, rec.origin_offset, rec.attempts) == (part, offset, n)


def test_markers_hide_and_flag_redriven_records() -> None:
    records = [raw(i, letter(i)) for i in range(3)]
    first = decode(records[1])
    assert isinstance(first, DlqRecord)
    mark = Record("dlq", 0, 3, None, b"", tuple(marker_headers(first, "ok", 0)))
    out = collect([*records, mark])
    assert [(r.offset, r.redriven) for r in out] == [(0, None), (1, "ok"), (2, None)]
    assert [r.offset for r in out if Selection()(r)] == [0, 2]
    assert [r.offset for r in out if Selection(include_redriven=True)(r)] == [0, 1, 2]


def test_a_message_dead_lettered_twice_across_a_crash_is_listed_once() -> None:
    # Written, then the bridge died before committing the original offset: written again.
    first, again, other = raw(0, letter(7)), raw(1, letter(7)), raw(2, letter(8))
    marker = Record("dlq", 0, 3, None, None, tuple(marker_headers(decode(again), "ok", 0)), 0)
    records = collect([first, again, other, marker])
    assert [(r.offset, r.origin_offset, r.copies) for r in records] == [(0, 7, 2), (2, 8, 1)]
    assert records[0].redriven == "ok"  # redriving either copy counts for the message
    assert records[1].redriven is None


def test_selection_by_offsets_error_class_rule_and_origin_topic() -> None:
    recs = collect(
        [
            raw(0, letter(0)),
            raw(1, letter(1, error=SpecFieldError("tags"), rule="other")),
            raw(2, letter(2, error=RejectedCall("no", status=400, endpoint="x"), stage="deliver")),
            raw(3, letter(3, topic="app.billing")),
        ]
    )

    def pick(**kw: Any) -> list[int]:
        return [r.offset for r in recs if Selection(**kw)(r)]

    assert pick(offsets=(1, 2)) == [1, 2]
    assert pick(error_class="MappingError") == [0, 1, 3]  # SpecFieldError is a MappingError
    assert pick(error_class="rejectedcall") == [2]
    assert pick(rule="other") == [1]
    assert pick(origin_topic="app.billing") == [3]


def test_parse_offsets() -> None:
    assert parse_offsets("5-9") == (5, 9)
    assert parse_offsets("7") == (7, 7)
    assert parse_offsets("3-")[0] == 3
    with pytest.raises(ConfigError):
        parse_offsets("a-b")


def test_table_and_show_render_and_mask() -> None:
    rec = decode(raw(4, letter(8)))
    assert isinstance(rec, DlqRecord)
    text = table([rec])
    assert "app.users/2/8" in text
    assert "MappingError" in text
    assert "1 record(s)" in text
    shown = show(rec, {"email": "ann@example.com"}, reveal=False)
    assert "ann@example.com" not in shown
    assert json.loads(shown)["attempts"] == 1
    assert "ann@example.com" in show(rec, {"email": "ann@example.com"}, reveal=True)


class Decoder:
    def decode(
        self, *, topic: str, partition: int, offset: int, value: bytes | None, **_: Any
    ) -> Envelope:
        return Envelope(
            topic=topic, partition=partition, offset=offset, data=json.loads(value or b"{}")
        )


class Rules:
    def __init__(self, broken: bool) -> None:
        self.broken = broken

    def map(self, envelope: Envelope, *, replay: bool = False) -> list[MeisaCall]:
        if self.broken:
            raise MappingError("still broken", rule="profile")
        # the default idempotency key is derived from the ORIGINAL origin
        key = f"{envelope.origin}:profile:0"
        return [MeisaCall("trigger", {"to_email": "a@x.io", "idempotency_key": key}, "a@x.io")]


def test_redrive_uses_the_original_origin_and_requeues_failures_with_attempts_plus_one() -> None:
    recs = list(collect([raw(0, letter(41)), raw(1, letter(42, attempts=2))]))
    sent: list[MeisaCall] = []
    dead: list[DeadLetter] = []
    marks: list[tuple[int, str]] = []

    async def deliver(call: MeisaCall) -> None:
        sent.append(call)

    async def dead_letter(dl: DeadLetter) -> None:
        dead.append(dl)

    def run(broken: bool) -> Any:
        redriver = Redriver(
            Decoder(),
            Rules(broken),
            deliver=deliver,
            dead_letter=dead_letter,
            mark=lambda r, o: marks.append((r.offset, o)),
            clock=lambda: 0.0,
        )
        return asyncio.run(redriver.run(recs))

    run(broken=False)
    assert [c.body["idempotency_key"] for c in sent] == [
        "app.users/2/41:profile:0",
        "app.users/2/42:profile:0",
    ]
    run(broken=True)
    assert [
        (d.record.offset, d.failure.attempts, d.failure.stage, d.record.headers) for d in dead
    ] == [
        (41, 2, "map", (("trace", b"abc"),)),
        (42, 3, "map", (("trace", b"abc"),)),
    ]
    assert marks == [(0, "ok"), (1, "ok"), (0, "failed"), (1, "failed")]


def test_redrive_dry_run_sends_and_marks_nothing() -> None:
    recs = collect([raw(0, letter(1))])
    redriver = Redriver(
        Decoder(), Rules(False), deliver=None, dead_letter=None, mark=None, clock=lambda: 0.0
    )
    summary = asyncio.run(redriver.run(recs))
    assert (summary.selected, summary.calls, summary.outcomes) == (1, {"trigger": 1}, {"ok": 1})


async def test_dlq_list_reads_the_topic_through_the_reader_it_is_given() -> None:
    broker = MemoryBroker()
    broker.create_topic("dlq")
    producer = DeadLetterProducer(MemoryProducer(broker), "dlq")
    await producer.send(letter(41))
    await producer.send(letter(42, stage="decode", rule="", error=ConfigError("x")))
    config = BridgeConfig(dlq=DlqSettings(topic="dlq"))
    out = io.StringIO()

    code = list_records(
        config, Selection(rule="profile"), "json", out=out, reader=MemoryRangeReader(broker)
    )

    assert code == 0
    assert [r["origin"] for r in json.loads(out.getvalue())] == ["app.users/2/41"]
