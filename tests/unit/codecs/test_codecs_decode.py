"""Decoding: plain JSON, CloudEvents structured and binary, Avro single-object and raw."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.codecs import build_decoder
from bridge.codecs.avro import single_object_header
from bridge.errors import DecodeError
from bridge.events import Envelope
from bridge.settings import CodecSettings

ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = ROOT / "schemas"
LOGIN = {
    "type": "user.logged_in",
    "id": "evt_1",
    "time": "2026-03-02T09:00:00Z",
    "source": "app",
    "data": {"user_id": "usr_1", "email": "a@example.com", "signin_count": 3},
}


def _decode(
    value: bytes | None, *, headers: Any = None, topic: str = "t", **settings: Any
) -> Envelope:
    decoder = build_decoder(CodecSettings(**settings))
    return decoder.decode(
        topic=topic, partition=1, offset=9, key=b"usr_1", value=value, headers=headers, timestamp=5
    )


def _avro_body(record: dict[str, Any]) -> tuple[Any, bytes]:
    schema = fastavro.parse_schema(json.loads((SCHEMAS / "user.logged_in.avsc").read_text()))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, {**record, "source": record.get("source")})
    return schema, buf.getvalue()


def test_plain_json_event() -> None:
    env = _decode(orjson.dumps(LOGIN))
    assert (env.type, env.id, env.time, env.source) == (
        "user.logged_in",
        "evt_1",
        LOGIN["time"],
        "app",
    )
    assert env.data == LOGIN["data"]
    assert (env.topic, env.partition, env.offset, env.key, env.timestamp) == (
        "t",
        1,
        9,
        b"usr_1",
        5,
    )


def test_json_with_configured_fields_and_flat_payload() -> None:
    value = orjson.dumps(
        {"event": "signup", "uuid": 7, "at": "2026-01-01T00:00:00Z", "email": "x@y.z"}
    )
    env = _decode(value, format="json", type_field="event", id_field="uuid", time_field="at")
    assert (env.type, env.id, env.time) == ("signup", "7", "2026-01-01T00:00:00Z")
    assert env.data["email"] == "x@y.z"


def test_cloudevents_structured_mode_by_specversion_and_by_content_type() -> None:
    event = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/app",
        "type": "user.logged_in",
        "subject": "usr_1",
        "time": "2026-03-02T09:00:00Z",
        "data": {"email": "a@b.c"},
    }
    env = _decode(orjson.dumps(event))
    assert (env.id, env.type, env.source, env.subject) == (
        "ce-1",
        "user.logged_in",
        "/app",
        "usr_1",
    )
    assert env.data == {"email": "a@b.c"}
    b64 = {
        **event,
        "data_base64": base64.b64encode(b'{"n": 1}').decode(),
        "datacontenttype": "application/json",
    }
    del b64["data"]
    headers = [("content-type", b"application/cloudevents+json; charset=utf-8")]
    assert _decode(orjson.dumps(b64), headers=headers).data == {"n": 1}


def test_cloudevents_binary_mode_reads_ce_headers() -> None:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"ce-2"),
        ("ce_source", b"/billing"),
        ("ce_type", b"invoice.paid"),
        ("ce_time", b"2026-03-02T10:00:00Z"),
        ("ce_subject", "usr_ü".encode()),
        ("content-type", b"application/json"),
    ]
    env = _decode(b'{"invoice_id": "in_1"}', headers=headers)
    assert (env.id, env.type, env.source, env.time) == (
        "ce-2",
        "invoice.paid",
        "/billing",
        "2026-03-02T10:00:00Z",
    )
    assert env.subject == "usr_ü"
    assert env.data == {"invoice_id": "in_1"}
    assert ("ce_id", b"ce-2") in env.headers  # kept for `headers.*` expressions
    text = _decode(b"hello", headers=[*headers[:-1], ("content-type", b"text/plain")])
    assert text.data == "hello"


def test_cloudevents_missing_required_attribute_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="source"):
        _decode(b"{}", headers=[("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_type", b"x")])
    with pytest.raises(DecodeError, match="specversion"):
        _decode(orjson.dumps({"specversion": "0.3", "id": "1", "source": "s", "type": "t"}))


def test_avro_single_object_encoding_resolved_by_fingerprint() -> None:
    schema, body = _avro_body(LOGIN)
    env = _decode(single_object_header(schema) + body, schemas_dir=str(SCHEMAS))
    assert env.type == "user.logged_in"
    assert env.data == LOGIN["data"]


def test_avro_single_object_with_unknown_fingerprint_is_a_decode_error() -> None:
    _, body = _avro_body(LOGIN)
    with pytest.raises(DecodeError, match="fingerprint"):
        _decode(b"\xc3\x01" + b"\x00" * 8 + body, schemas_dir=str(SCHEMAS))


def test_avro_raw_by_topic_mapping() -> None:
    _, body = _avro_body(LOGIN)
    settings = {"schemas_dir": str(SCHEMAS), "topic_schemas": {"logins": "user.logged_in"}}
    env = _decode(body, topic="logins", **settings)
    assert env.id == "evt_1"
    assert env.data["signin_count"] == 3
    with pytest.raises(DecodeError, match="Avro body"):
        _decode(body[:5], topic="logins", **settings)


def test_tombstones_and_garbage_are_decode_errors() -> None:
    with pytest.raises(DecodeError, match="tombstone"):
        _decode(None)
    with pytest.raises(DecodeError, match="JSON"):
        _decode(b"{not json")
    with pytest.raises(DecodeError, match="schema_registry_url"):
        _decode(b"\x00\x00\x00\x00\x01abc")


@given(st.binary(max_size=64), st.sampled_from(["auto", "json", "cloudevents", "avro"]))
def test_any_bytes_decode_or_raise_decode_error(value: bytes, fmt: str) -> None:
    try:
        env = _decode(value, format=fmt, schemas_dir=str(SCHEMAS))
    except DecodeError:
        return
    assert isinstance(env, Envelope)


def test_avro_values_come_out_as_json_would_give_them(tmp_path: Path) -> None:
    import datetime as dt
    import uuid
    from decimal import Decimal

    schema = {
        "type": "record",
        "name": "acme.billing.Refunded",
        "fields": [
            {"name": "user_id", "type": "string"},
            {"name": "big", "type": "long"},
            {"name": "receipt", "type": "bytes"},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "on", "type": {"type": "int", "logicalType": "date"}},
            {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
            {
                "name": "amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            },
            {"name": "currency", "type": {"type": "enum", "name": "C", "symbols": ["EUR"]}},
            {"name": "labels", "type": {"type": "map", "values": "string"}},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    }
    (tmp_path / "refunded.avsc").write_text(json.dumps(schema))
    ref = uuid.UUID("12345678-1234-5678-1234-567812345678")
    record = {
        "user_id": "usr_1",
        "big": 2**62,
        "receipt": b"\x01\x02",
        "at": dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC),
        "on": dt.date(2026, 3, 2),
        "ref": str(ref),
        "amount": Decimal("12.50"),
        "currency": "EUR",
        "labels": {"k": "v"},
        "note": None,
    }
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    env = _decode(
        buf.getvalue(),
        topic="refunds",
        schemas_dir=str(tmp_path),
        topic_schemas={"refunds": "acme.billing.Refunded"},
    )
    assert env.type == "acme.billing.Refunded"  # no type field: the record's full name
    assert env.data == {
        "user_id": "usr_1",
        "big": 2**62,
        "receipt": "AQI=",
        "at": "2026-03-02T09:00:00Z",
        "on": "2026-03-02",
        "ref": str(ref),
        "amount": "12.50",
        "currency": "EUR",
        "labels": {"k": "v"},
        "note": None,
    }
