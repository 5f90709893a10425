"""The Confluent wire format of all three registry formats: magic byte 0, a 4-byte big-endian
schema id, then (Protobuf only) the message indexes, then the body.

The registry says which format an id is (its schema type): AVRO is read with fastavro,
PROTOBUF with a message type built from the schema (bridge.codecs.protobuf), JSON (JSON Schema)
with orjson. The body is not validated against a JSON Schema: the producer's serialiser did that,
and the rules check the fields they need. The event type a message gets when it has no type field
of its own is its schema's name: the Avro record's or the Protobuf message's full name, the JSON
Schema's `title`.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from bridge.codecs.avro import read_body
from bridge.codecs.protobuf import read_indexes
from bridge.codecs.registry import SchemaRegistry, framed_id
from bridge.errors import DecodeError

Expect = Literal["AVRO", "PROTOBUF", "JSON"] | None
KIND_NAMES = {"AVRO": "Avro", "PROTOBUF": "Protobuf", "JSON": "JSON Schema"}


class FramedReader:
    """Values in the Confluent wire format -> (plain data, schema name)."""

    def __init__(self, registry: SchemaRegistry | None) -> None:
        self.registry = registry

    def read(self, value: bytes, expect: Expect = None) -> tuple[Any, str | None]:
        schema_id = framed_id(value)
        if schema_id is None:
            raise DecodeError("Confluent wire format needs at least 5 bytes")
        if self.registry is None:
            raise DecodeError("Confluent wire format but codec.schema_registry_url is not set")
        schema = self.registry.get(schema_id)
        if expect is not None and schema.kind != expect:
            got, want = KIND_NAMES[schema.kind], KIND_NAMES[expect]
            raise DecodeError(f"schema id {schema_id} is {got}, not {want} (codec.format)")
        if schema.kind == "AVRO":
            return read_body(value[5:], schema.parsed), schema.name
        if schema.kind == "PROTOBUF":
            indexes, start = read_indexes(value, 5)
            reader = schema.parsed.reader(indexes)
            return reader.read(value[start:]), reader.descriptor.full_name
        try:
            return orjson.loads(value[5:]), schema.name
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"JSON Schema body is not valid JSON: {exc}") from None
