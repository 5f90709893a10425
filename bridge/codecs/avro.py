"""Avro with fastavro: single-object encoding and raw per-topic schemas (the Confluent wire
format is read by bridge.codecs.framed, with schemas from the registry).

- Single-object encoding (Avro spec): C3 01, the 8-byte little-endian CRC-64-AVRO fingerprint
  of the schema's parsing canonical form, then the body; the schema is found among the local
  `.avsc` files by fingerprint.
- Raw: no header at all; `codec.topic_schemas` names the local schema for the topic.
Every schema is parsed once, when the decoder is built or first fetched.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import fastavro
from fastavro.schema import to_parsing_canonical_form

from bridge.errors import DecodeError

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


def has_single_object_header(value: bytes) -> bool:
    return value[:2] == SINGLE_OBJECT_MAGIC


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
    """The Avro body as plain data: bytes become base64 text, logical types (timestamps, dates,
    decimals, uuids) text, as they would be in JSON (bridge.codecs.protodict says the same of
    Protobuf)."""
    try:
        value = fastavro.schemaless_reader(io.BytesIO(body), schema, None)
    except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
        reason = str(exc) or type(exc).__name__
        raise DecodeError(f"Avro body does not match its schema: {reason}") from None
    return plain(value) if needs_plain(schema) else value


_PLAIN_KEY = "__bridge_needs_plain"  # kept in the parsed schema, as fastavro keeps its own keys


def needs_plain(schema: Any) -> bool:
    """Whether values of this schema can hold anything but JSON's types (decided once for a
    parsed record schema)."""
    if isinstance(schema, dict) and _PLAIN_KEY in schema:
        return bool(schema[_PLAIN_KEY])
    text = json.dumps(schema, default=str)
    found = any(w in text for w in ('"bytes"', '"fixed"', '"logicalType"'))
    if isinstance(schema, dict):
        schema[_PLAIN_KEY] = found
    return found


def plain(value: Any) -> Any:  # noqa: PLR0911 (a branch per type)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    return value


def schema_name(schema: Any) -> str | None:
    """A named schema's full name (a record's), else None."""
    name = schema.get("name") if isinstance(schema, dict) else None
    return name if isinstance(name, str) else None


class AvroReader:
    """Decodes single-object and raw Avro with local schemas to plain values (records: dicts)."""

    def __init__(self, *, local: LocalSchemas) -> None:
        self.local = local

    def single_object(self, value: bytes) -> tuple[Any, str | None]:
        if len(value) < 10:
            raise DecodeError("single-object encoding needs at least 10 bytes")
        schema = self.local.by_fingerprint.get(value[2:10])
        if schema is None:
            raise DecodeError(f"no local Avro schema with fingerprint {value[2:10].hex()}")
        return read_body(value[10:], schema), schema_name(schema)

    def raw(self, value: bytes, schema_name_: str) -> tuple[Any, str | None]:
        schema = self.local.named(schema_name_)
        return read_body(value, schema), schema_name(schema)
