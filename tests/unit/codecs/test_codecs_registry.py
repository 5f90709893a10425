"""The Confluent wire format of Avro, Protobuf and JSON Schema through the registry client, with
values made by confluent-kafka's own serialisers, against a stub registry over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import message_factory
from stub_registry import StubRegistry, stub_registry

from bridge.codecs import build_decoder
from bridge.codecs.protobuf import new_pool
from bridge.codecs.protoparse import parse_proto
from bridge.errors import DecodeError, SchemaPending, TransportError
from bridge.events import Envelope, Record
from bridge.settings import CodecSettings, SecretStr

ROOT = Path(__file__).resolve().parents[3]
CTX = SerializationContext("app.users", MessageField.VALUE)
AVRO = (ROOT / "schemas" / "invoice.paid.avsc").read_text()
INVOICE = {
    "type": "invoice.paid",
    "id": "evt_9",
    "time": "2026-03-02T10:00:00Z",
    "source": None,
    "data": {
        "user_id": "u1",
        "email": "a@b.c",
        "invoice_id": "in_1",
        "amount_cents": 900,
        "currency": "EUR",
    },
}
PROTO = """
syntax = "proto3";
package acme.users;
message Envelope { string id = 1; }
message SignedUp {
  string user_id = 1;
  int64 visits = 2;
  enum Plan { FREE = 0; PRO = 1; }
  Plan plan = 3;
}
"""
JSON_SCHEMA = '{"title": "acme.users.Updated", "type": "object"}'


@pytest.fixture
def stub() -> Iterator[StubRegistry]:
    with stub_registry() as registry:
        yield registry


def _client(stub: StubRegistry) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": stub.url})


def _decode(decoder: Any, value: bytes, topic: str = "app.users") -> Envelope:
    return decoder.decode(
        topic=topic, partition=0, offset=1, key=None, value=value, headers=None, timestamp=None
    )


def _signed_up_class() -> Any:
    pool = new_pool()
    pool.Add(parse_proto(PROTO, "acme/users.proto"))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("acme.users.SignedUp"))


def _protobuf_value(stub: StubRegistry) -> bytes:
    cls = _signed_up_class()
    serialise = ProtobufSerializer(cls, _client(stub), {"use.deprecated.format": False})
    value: bytes = serialise(cls(user_id="usr_1", visits=2**40, plan=1), CTX)
    return value


def test_confluents_serialisers_in_all_three_formats_decode_in_auto(stub: StubRegistry) -> None:
    avro = AvroSerializer(_client(stub), AVRO)(INVOICE, CTX)
    json_value = JSONSerializer(JSON_SCHEMA, _client(stub))({"user_id": "usr_2", "n": 1}, CTX)
    decoder = build_decoder(CodecSettings(schema_registry_url=stub.url))
    paid = _decode(decoder, avro)
    assert (paid.type, paid.id, paid.data) == ("invoice.paid", "evt_9", INVOICE["data"])
    signed = _decode(decoder, _protobuf_value(stub))
    assert signed.type == "acme.users.SignedUp"  # no type field: the message's full name
    assert signed.data == {"user_id": "usr_1", "visits": 2**40, "plan": "PRO"}
    updated = _decode(decoder, json_value)
    assert (updated.type, updated.data) == ("acme.users.Updated", {"user_id": "usr_2", "n": 1})


def test_each_schema_is_fetched_once_per_id(stub: StubRegistry) -> None:
    value = _protobuf_value(stub)
    decoder = build_decoder(CodecSettings(schema_registry_url=stub.url))
    for _ in range(3):
        _decode(decoder, value)
    assert stub.gets() == ["/schemas/ids/1?format=serialized"]


def test_an_explicit_format_refuses_another_schema_type(stub: StubRegistry) -> None:
    value = _protobuf_value(stub)
    decoder = build_decoder(CodecSettings(schema_registry_url=stub.url, format="avro"))
    with pytest.raises(DecodeError, match="schema id 1 is Protobuf, not Avro"):
        _decode(decoder, value)
    protobuf = build_decoder(CodecSettings(schema_registry_url=stub.url, format="protobuf"))
    assert _decode(protobuf, value).data["user_id"] == "usr_1"
    with pytest.raises(DecodeError, match="not Protobuf"):
        _decode(protobuf, b'{"type": "x"}')


def test_a_protobuf_schema_registered_as_text_decodes(stub: StubRegistry) -> None:
    schema_id = stub.register("text-value", {"schema": PROTO, "schemaType": "PROTOBUF"})
    body = _signed_up_class()(user_id="usr_3", visits=7).SerializeToString()
    value = b"\x00" + schema_id.to_bytes(4, "big") + b"\x02\x02" + body  # indexes [1]
    decoder = build_decoder(CodecSettings(schema_registry_url=stub.url))
    assert _decode(decoder, value).data == {"user_id": "usr_3", "visits": 7, "plan": "FREE"}


def test_a_protobuf_schema_with_a_reference_decodes(stub: StubRegistry) -> None:
    common = 'syntax = "proto3"; package acme; message Address { string city = 1; }'
    stub.register("acme/common.proto", {"schema": common, "schemaType": "PROTOBUF"})
    main = (
        'syntax = "proto3"; package acme.users; import "acme/common.proto";'
        " message Moved { acme.Address to = 1; }"
    )
    ref = {"name": "acme/common.proto", "subject": "acme/common.proto", "version": 1}
    schema_id = stub.register(
        "moved", {"schema": main, "schemaType": "PROTOBUF", "references": [ref]}
    )
    value = b"\x00" + schema_id.to_bytes(4, "big") + b"\x00" + b"\x0a\x06\x0a\x04Oslo"
    decoder = build_decoder(CodecSettings(schema_registry_url=stub.url))
    assert _decode(decoder, value).data == {"to": {"city": "Oslo"}}


def test_an_unknown_schema_id_is_poison_and_asked_once(stub: StubRegistry) -> None:
    decoder = build_decoder(CodecSettings(schema_registry_url=stub.url))
    for _ in range(2):
        with pytest.raises(DecodeError, match="schema id 42 is not in the schema registry"):
            _decode(decoder, b"\x00\x00\x00\x00\x2a{}")
    assert len(stub.gets()) == 1


def test_an_unreachable_registry_is_retryable_not_poison() -> None:
    decoder = build_decoder(CodecSettings(schema_registry_url="http://127.0.0.1:9"))
    with pytest.raises(TransportError, match="schema registry unreachable"):
        _decode(decoder, b"\x00\x00\x00\x00\x07{}")


def test_a_registry_error_answer_is_retryable_not_poison(stub: StubRegistry) -> None:
    stub.status = 503
    decoder = build_decoder(CodecSettings(schema_registry_url=stub.url))
    with pytest.raises(TransportError, match="answered 503"):
        _decode(decoder, b"\x00\x00\x00\x00\x07{}")


def test_basic_auth_is_sent_and_kept_out_of_messages(stub: StubRegistry) -> None:
    stub.require_auth = "Basic " + base64.b64encode(b"reader:s3cret-pw").decode()
    schema_id = stub.register("x", {"schema": JSON_SCHEMA, "schemaType": "JSON"})
    value = b"\x00" + schema_id.to_bytes(4, "big") + b'{"a": 1}'
    settings = CodecSettings(
        schema_registry_url=stub.url,
        schema_registry_user="reader",
        schema_registry_password=SecretStr("s3cret-pw"),
    )
    assert _decode(build_decoder(settings), value).data == {"a": 1}
    assert "s3cret" not in repr(settings) + repr(build_decoder(settings).registry)
    wrong = CodecSettings(
        schema_registry_url=stub.url,
        schema_registry_user="reader",
        schema_registry_password=SecretStr("wrong-pw"),
    )
    with pytest.raises(TransportError, match="answered 401") as caught:
        _decode(build_decoder(wrong), value)
    assert "wrong-pw" not in str(caught.value)


def test_a_bearer_token_is_sent(stub: StubRegistry) -> None:
    stub.require_auth = "Bearer tok-123"
    schema_id = stub.register("x", {"schema": JSON_SCHEMA, "schemaType": "JSON"})
    value = b"\x00" + schema_id.to_bytes(4, "big") + b'{"a": 2}'
    settings = CodecSettings(
        schema_registry_url=stub.url, schema_registry_token=SecretStr("tok-123")
    )
    assert _decode(build_decoder(settings), value).data == {"a": 2}


async def test_on_a_running_loop_a_miss_is_pending_until_prefetched(stub: StubRegistry) -> None:
    value = _protobuf_value(stub)
    decoder = build_decoder(CodecSettings(schema_registry_url=stub.url))
    with pytest.raises(SchemaPending, match="schema id 1"):
        _decode(decoder, value)
    assert stub.gets() == []  # nothing was asked on the loop
    await decoder.prefetch([Record("app.users", 0, 1, None, value)])
    assert _decode(decoder, value).data["user_id"] == "usr_1"


async def test_prefetch_leaves_the_loop_free_while_the_registry_is_slow(stub: StubRegistry) -> None:
    value = _protobuf_value(stub)
    stub.delay = 0.5
    decoder = build_decoder(CodecSettings(schema_registry_url=stub.url))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await decoder.prefetch([Record("app.users", 0, 1, None, value)])
    ticker.cancel()
    assert ticks >= 10  # the loop ran on while the fetch waited half a second
    assert _decode(decoder, value).type == "acme.users.SignedUp"


async def test_a_failed_prefetch_reports_the_registry_not_pending() -> None:
    decoder = build_decoder(CodecSettings(schema_registry_url="http://127.0.0.1:9"))
    value = b"\x00\x00\x00\x00\x07{}"
    await decoder.prefetch([Record("t", 0, 1, None, value)])
    with pytest.raises(TransportError, match="unreachable"):
        _decode(decoder, value)


def test_a_private_ca_file_verifies_the_registry(tmp_path: Path) -> None:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with stub_registry(tls=server) as stub:
        schema_id = stub.register("x", {"schema": JSON_SCHEMA, "schemaType": "JSON"})
        value = b"\x00" + schema_id.to_bytes(4, "big") + b'{"a": 3}'
        trusted = CodecSettings(schema_registry_url=stub.url, schema_registry_ca_file=str(ca_file))
        assert _decode(build_decoder(trusted), value).data == {"a": 3}
        untrusted = build_decoder(CodecSettings(schema_registry_url=stub.url))
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            _decode(untrusted, value)


def test_a_binary_mode_cloudevent_may_carry_wire_format_data(stub: StubRegistry) -> None:
    value = _protobuf_value(stub)
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"evt_7"),
        ("ce_source", b"/users"),
        ("ce_type", b"user.signed_up"),
        ("content-type", b"application/protobuf"),
    ]
    decoder = build_decoder(CodecSettings(schema_registry_url=stub.url))
    env = decoder.decode(
        topic="t", partition=0, offset=1, key=None, value=value, headers=headers, timestamp=None
    )
    assert (env.type, env.id) == ("user.signed_up", "evt_7")  # the CloudEvent's attributes
    assert env.data == {"user_id": "usr_1", "visits": 2**40, "plan": "PRO"}
