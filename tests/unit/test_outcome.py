"""The one decode -> map path that run, replay, redrive and plan share (stub codec and rules)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.errors import (
    DecodeError,
    Forbidden,
    MappingError,
    RateLimited,
    RejectedCall,
    ServerError,
    StaleEvent,
)
from bridge.events import Envelope, Record
from bridge.meisa.calls import MeisaCall
from bridge.outcome import Mapped, Unreadable, outcome_of, read_record

CALL = MeisaCall(kind="upsert", body={"email": "a@x.io"}, contact_key="a@x.io", rule="r")


class Decoder:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail

    def decode(self, **kw: Any) -> Envelope:
        if self.fail is not None:
            raise self.fail
        return Envelope(
            topic=kw["topic"],
            partition=kw["partition"],
            offset=kw["offset"],
            data={},
            time="2026-01-01T00:00:00Z",
        )


class Rules:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.replay: list[bool] = []

    def map(self, envelope: Envelope, *, replay: bool = False) -> list[MeisaCall]:
        self.replay.append(replay)
        if self.fail is not None:
            raise self.fail
        return [CALL]


def record(value: bytes | None = b"{}", headers: Any = ()) -> Record:
    return Record("t", 1, 7, None, value, headers=headers)


def test_a_record_maps_to_its_calls_with_the_event_time() -> None:
    rules = Rules()
    read = read_record(record(), Decoder(), rules, replay=True)
    assert isinstance(read, Mapped)
    assert read.calls == [CALL]
    assert read.event_time == 1767225600.0
    assert rules.replay == [True]


def test_a_tombstone_makes_no_call_and_is_not_poison() -> None:
    read = read_record(record(value=None), Decoder(DecodeError("never asked")), Rules())
    assert isinstance(read, Mapped)
    assert read.tombstone
    assert read.calls == []
    binary = record(value=None, headers=(("ce_type", b"x"),))  # a binary CloudEvent, no data
    assert read_record(binary, Decoder(), Rules()).envelope is not None


def test_decode_and_map_errors_are_poison_at_their_stage_naming_the_rule() -> None:
    undecodable = read_record(record(), Decoder(DecodeError("bad bytes")), Rules())
    assert isinstance(undecodable, Unreadable)
    assert (undecodable.stage, undecodable.rule, undecodable.envelope) == ("decode", "", None)
    unmappable = read_record(record(), Decoder(), Rules(MappingError("no email", rule="signup")))
    assert isinstance(unmappable, Unreadable)
    assert (unmappable.stage, unmappable.rule) == ("map", "signup")
    assert unmappable.envelope is not None


def test_an_unexpected_exception_is_poison_of_its_stage_not_a_crash() -> None:
    decode = read_record(record(), Decoder(KeyError("x")), Rules())
    mapped = read_record(record(), Decoder(), Rules(ZeroDivisionError("y")))
    assert isinstance(decode, Unreadable)
    assert isinstance(decode.error, DecodeError)
    assert isinstance(mapped, Unreadable)
    assert isinstance(mapped.error, MappingError)
    assert "unexpected ZeroDivisionError" in str(mapped.error)


def test_a_retryable_error_is_raised_so_the_record_is_read_again_not_dead_lettered() -> None:
    with pytest.raises(ServerError):
        read_record(record(), Decoder(ServerError("registry down")), Rules())


def test_outcome_names_follow_the_error_tree() -> None:
    rejected = RejectedCall("bad", status=400, endpoint="x")
    assert [outcome_of(e) for e in (None, StaleEvent("old"), RateLimited("slow"))] == [
        "ok",
        "skipped",
        "retry",
    ]
    assert [outcome_of(e) for e in (Forbidden("scope"), rejected)] == ["halt", "poison"]


def test_after_attempts_is_a_new_error_of_the_same_kind_and_fields() -> None:
    first = RejectedCall("bad", status=400, endpoint="POST /x")
    later = first.after_attempts(3)
    assert (type(later), str(later), later.status, later.attempts) == (
        RejectedCall,
        str(first),
        400,
        3,
    )
    assert first.attempts == 1
    mapping = MappingError("m", rule="r", action=2, field="f").after_attempts(2)
    assert (mapping.rule, mapping.action, mapping.field, mapping.attempts) == ("r", 2, "f", 2)
