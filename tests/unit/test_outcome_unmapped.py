"""`unmapped_type`: the live pipeline's early answer for events no rule maps agrees with
`read_record` on every record it answers for, and leaves everything else to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from bridge.codecs import UNDECIDED, build_decoder
from bridge.config import load_rules
from bridge.events import Record
from bridge.outcome import Mapped, read_record, unmapped_type
from bridge.settings import CodecSettings

ROOT = Path(__file__).resolve().parents[2]
RULES = load_rules(ROOT / "examples" / "rules.yaml")
SCHEMAS = ROOT / "schemas"
VIEW = {"type": "page.viewed", "id": "evt_1", "time": "2026-03-02T09:00:00Z", "data": {"p": "/"}}


def _record(value: bytes | None, headers: Any = (), topic: str = "events") -> Record:
    return Record(topic, 0, 7, b"usr_1", value, tuple(headers), 1700000000000)


def _check(fmt: str = "auto", **settings: Any) -> Any:
    check = unmapped_type(build_decoder(CodecSettings(format=fmt, **settings)), RULES)
    assert check is not None
    return check


def test_a_plain_event_no_rule_maps_is_told_by_its_type() -> None:
    assert _check()(_record(orjson.dumps(VIEW))) == "page.viewed"
    assert _check("json")(_record(orjson.dumps({**VIEW, "type": 42}))) == "42"  # as decode reads it


def test_events_a_rule_maps_and_other_encodings_are_left_to_the_full_path() -> None:
    check = _check()
    signup = {**VIEW, "type": "user.signed_up"}
    undecided = [
        _record(orjson.dumps(signup)),  # a rule maps it
        _record(None),  # a tombstone
        _record(orjson.dumps({**VIEW, "specversion": "1.0"})),  # structured CloudEvent
        _record(orjson.dumps(VIEW), headers=[("ce_specversion", b"1.0")]),  # binary mode
        _record(orjson.dumps(VIEW), headers=[("content-type", b"application/cloudevents+json")]),
        _record(b"{not json"),  # poison: the full path dead-letters it
        _record(orjson.dumps({**VIEW, "id": {"nested": 1}})),  # poison too
        _record(b"[1, 2]"),
    ]
    assert [check(r) for r in undecided] == [UNDECIDED] * len(undecided)
    schemas = {"schemas_dir": str(SCHEMAS), "topic_schemas": {"events": "user.logged_in"}}
    assert _check(**schemas)(_record(orjson.dumps(VIEW))) is UNDECIDED


def test_a_plain_event_with_unrelated_headers_is_still_told_early() -> None:
    headers = [("traceparent", b"00-abc"), ("content-type", b"application/json")]
    assert _check()(_record(orjson.dumps(VIEW), headers=headers)) == "page.viewed"


def test_no_early_answer_without_the_bridges_own_decoder_and_rules() -> None:
    class Other:
        def decode(self, **kw: Any) -> Any: ...

        def map(self, envelope: Any, *, replay: bool = False) -> list[Any]:
            return []

    assert unmapped_type(Other(), RULES) is None
    assert unmapped_type(build_decoder(CodecSettings()), Other()) is None


INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.one_of(st.none(), st.text(max_size=8), INT64, st.booleans(), st.floats(), st.lists(INT64))


@given(
    fields=st.dictionaries(
        st.sampled_from(["type", "id", "time", "source", "subject", "data", "specversion"]),
        st.one_of(TEXT, st.sampled_from(["page.viewed", "user.signed_up", "invoice.paid"])),
    ),
    fmt=st.sampled_from(["auto", "json"]),
)
def test_an_early_answer_is_what_the_full_path_says(fields: dict[str, Any], fmt: str) -> None:
    record = _record(orjson.dumps(fields))
    early = _check(fmt)(record)
    if early is UNDECIDED:
        return
    read = read_record(record, build_decoder(CodecSettings(format=fmt)), RULES)
    assert isinstance(read, Mapped)
    assert read.calls == []
    assert read.envelope is not None
    assert read.envelope.type == early


@given(
    fields=st.dictionaries(
        st.sampled_from(["type", "id", "time", "source", "data", "specversion"]),
        st.one_of(TEXT, st.sampled_from(["page.viewed", "user.signed_up"])),
    ),
    fmt=st.sampled_from(["auto", "json"]),
)
def test_a_record_looked_at_early_decodes_as_one_that_was_not(
    fields: dict[str, Any], fmt: str
) -> None:
    """The early look's parsed JSON is reused by the decode that follows it, for that value only."""
    record, other = _record(orjson.dumps(fields)), _record(orjson.dumps(VIEW))
    looked = build_decoder(CodecSettings(format=fmt))
    looked.plain_type(other)
    looked.plain_type(record)
    fresh = build_decoder(CodecSettings(format=fmt))
    assert _read(record, looked) == _read(record, fresh)
    assert _read(other, looked) == _read(other, fresh)  # another value: parsed anew


def _read(record: Record, decoder: Any) -> Any:
    read = read_record(record, decoder, RULES)
    return read.envelope if isinstance(read, Mapped) else type(read.error)
