"""Avro with fastavro: Confluent wire format, single-object encoding and raw per-topic schemas.

- Confluent: magic byte 0, a 4-byte big-endian schema id, then the Avro body; the schema comes
  from the Schema Registry (bridge.codecs.registry).
- Single-object encoding (Avro spec): C3 01, the 8-byte little-endian CRC-64-AVRO fingerprint
  of the schema's parsing canonical form, then the body; the schema is found among the local
  `.avsc` files by fingerprint.
- Raw: no header at all; `codec.topic_schemas` names the local schema for the topic.
Every schema is parsed once, when the decoder is built or first fetched.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from bridge.codecs.registry import SchemaRegistry
from bridge.errors import DecodeError

CONFLUENT_MAGIC = b"\x00"
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_EMPTY64 = 0xC15D213AA4D7A795


def _crc64_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY64 & -(fp & 1))
        table.append(fp)
    return tuple(table)


_TABLE = _crc64_table()


def fingerprint(schema: Any) -> bytes:
    """CRC-64-AVRO of the parsing canonical form: the 8 little-endian bytes on the wire."""
    fp = _EMPTY64
    for byte in to_parsing_canonical_form(schema).encode("utf-8"):
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


def single_object_header(schema: Any) -> bytes:
    return SINGLE_OBJECT_MAGIC + fingerprint(schema)


def has_framing(value: bytes) -> bool:
    """The value starts with a Confluent or a single-object header."""
    return value[:1] == CONFLUENT_MAGIC or value[:2] == SINGLE_OBJECT_MAGIC


class LocalSchemas:
    """Every `.avsc` in a folder, parsed once; found by full name, file stem or fingerprint."""

    def __init__(self, folder: str | Path | None) -> None:
        self.by_name: dict[str, Any] = {}
        self.by_fingerprint: dict[bytes, Any] = {}
        if folder is None:
            return
        for path in sorted(Path(folder).glob("*.avsc")):
            try:
                schema = fastavro.parse_schema(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, fastavro.schema.SchemaParseException) as exc:
                raise DecodeError(f"{path}: not a usable Avro schema: {exc}") from None
            self.by_name[path.stem] = schema
            if isinstance(schema, dict) and "name" in schema:
                self.by_name[schema["name"]] = schema
            self.by_fingerprint[fingerprint(schema)] = schema

    def named(self, name: str) -> Any:
        try:
            return self.by_name[name]
        except KeyError:
            raise DecodeError(f"no local Avro schema named {name!r}") from None


def read_body(body: bytes, schema: Any) -> Any:
    try:
        return fastavro.schemaless_reader(io.BytesIO(body), schema, None)
    except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
        reason = str(exc) or type(exc).__name__
        raise DecodeError(f"Avro body does not match its schema: {reason}") from None


class AvroReader:
    """Decodes the three Avro framings to Python values (records become dicts)."""

    def __init__(self, *, local: LocalSchemas, registry: SchemaRegistry | None) -> None:
        self.local = local
        self.registry = registry

    def confluent(self, value: bytes) -> Any:
        if len(value) < 5:
            raise DecodeError("Confluent wire format needs at least 5 bytes")
        if self.registry is None:
            raise DecodeError("Confluent wire format but codec.schema_registry_url is not set")
        schema_id = int.from_bytes(value[1:5], "big")
        return read_body(value[5:], self.registry.get(schema_id))

    def single_object(self, value: bytes) -> Any:
        if len(value) < 10:
            raise DecodeError("single-object encoding needs at least 10 bytes")
        schema = self.local.by_fingerprint.get(value[2:10])
        if schema is None:
            raise DecodeError(f"no local Avro schema with fingerprint {value[2:10].hex()}")
        return read_body(value[10:], schema)

    def raw(self, value: bytes, schema_name: str) -> Any:
        return read_body(value, self.local.named(schema_name))

    def any_framing(self, value: bytes) -> Any:
        if value[:1] == CONFLUENT_MAGIC:
            return self.confluent(value)
        if value[:2] == SINGLE_OBJECT_MAGIC:
            return self.single_object(value)
        raise DecodeError("Avro value without a Confluent or single-object header")
