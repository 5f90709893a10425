"""Codecs: Kafka message bytes -> Envelope.

`build_decoder(settings)` returns a Decoder for `codec.format`:

    auto         per message: ce_* headers -> CloudEvents binary; topic in topic_schemas -> raw
                 Avro; magic byte 0 -> Confluent Avro; C3 01 -> Avro single-object; JSON with
                 `specversion` (or content-type application/cloudevents+json) -> CloudEvents
                 structured; any other JSON object -> plain JSON event
    json         plain JSON events only
    cloudevents  binary mode when ce_* headers are present, else structured mode
    avro         Confluent wire format, single-object encoding or raw per-topic schema

A message that cannot be decoded raises DecodeError (stage "decode"); a schema registry that
cannot be reached raises TransportError (retry, do not dead-letter).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any, Final, Literal

import orjson

from bridge.codecs import cloudevents
from bridge.codecs.avro import AvroReader, LocalSchemas, has_framing
from bridge.codecs.envelope import Where
from bridge.codecs.jsoncodec import JsonDecoder, loads
from bridge.codecs.registry import SchemaRegistry
from bridge.errors import DecodeError
from bridge.events import Envelope, Record
from bridge.settings import CodecSettings

HeaderList = Sequence[tuple[str, bytes | None]] | None


class _Undecided(Enum):
    UNDECIDED = "undecided"


UNDECIDED: Final = _Undecided.UNDECIDED  # Decoder.plain_type: only a full decode can tell
Undecided = Literal[_Undecided.UNDECIDED]


class Decoder:
    """Decodes one Kafka message. Stateless apart from the schema caches; thread-safe."""

    def __init__(self, settings: CodecSettings, *, registry: SchemaRegistry | None = None) -> None:
        self.settings = settings
        self.format = settings.format
        self.json = JsonDecoder(settings)
        if registry is None and settings.schema_registry_url:
            registry = SchemaRegistry(settings.schema_registry_url)
        self.avro = AvroReader(local=LocalSchemas(settings.schemas_dir), registry=registry)
        self.topic_schemas = dict(settings.topic_schemas)

    def decode(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: HeaderList,
        timestamp: int | None,
    ) -> Envelope:
        if type(headers) is not tuple:  # a list, or None; Records carry tuples already
            headers = tuple(headers or ())
        where = Where(topic, partition, offset, key, headers, timestamp)
        try:
            return self._decode(value, where)
        except DecodeError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError) as exc:
            # Belt and braces: nothing a producer sends may crash the consumer loop.
            raise DecodeError(f"undecodable message: {type(exc).__name__}: {exc}") from None

    def plain_type(self, record: Record) -> str | Undecided | None:
        """The type of a plain JSON event, checked as `decode` checks it, without building an
        Envelope: most events of a busy topic are ones no rule maps, and the live pipeline needs
        only their type. UNDECIDED for anything else (a tombstone, CloudEvents, Avro) and for
        what `decode` would refuse: `decode` then says what it is."""
        fmt, value, headers = self.format, record.value, record.headers
        if value is None or fmt not in ("auto", "json") or value[:1] != b"{":
            return UNDECIDED  # neither Avro framing nor a tombstone starts with "{"
        auto = fmt == "auto"
        if auto and (record.topic in self.topic_schemas or cloudevents.is_binary(headers)):
            return UNDECIDED
        try:
            if auto and headers and _structured(headers):
                return UNDECIDED
            obj = orjson.loads(value)
            if not isinstance(obj, dict) or (auto and "specversion" in obj):
                return UNDECIDED
            return self.json.event_type(obj)
        except (ValueError, DecodeError):  # orjson.JSONDecodeError is a ValueError
            return UNDECIDED

    def _decode(self, value: bytes | None, where: Where) -> Envelope:
        fmt = self.format
        if fmt in ("auto", "cloudevents") and cloudevents.is_binary(where.headers):
            return cloudevents.from_binary(value, where, other=self._avro_data)
        if fmt == "json":
            return self.json.decode_value(value, where)
        if value is None:
            raise DecodeError("message has no value (tombstone)")
        if fmt in ("auto", "avro"):
            avro = self._try_avro(value, where)
            if avro is not None:
                return avro
            if fmt == "avro":
                raise DecodeError("not Avro: no Confluent or single-object header, no topic schema")
        return self._json_or_structured(value, where, require_ce=fmt == "cloudevents")

    def _try_avro(self, value: bytes, where: Where) -> Envelope | None:
        schema_name = self.topic_schemas.get(where.topic)
        if schema_name is not None:
            return self.json.from_object(self.avro.raw(value, schema_name), where)
        if has_framing(value):
            return self.json.from_object(self.avro.any_framing(value), where)
        return None

    def _avro_data(self, value: bytes, content_type: str) -> Any:
        return self.avro.any_framing(value)

    def _json_or_structured(self, value: bytes, where: Where, *, require_ce: bool) -> Envelope:
        obj = loads(value)
        structured = _structured(where.headers)
        if structured or require_ce or (isinstance(obj, dict) and "specversion" in obj):
            return cloudevents.from_structured(obj, where)
        return self.json.from_object(obj, where)


def _structured(headers: tuple[tuple[str, bytes | None], ...]) -> bool:
    """A content type that says structured-mode CloudEvent (raises DecodeError if not UTF-8)."""
    content_type = cloudevents.header(headers, "content-type") or ""
    return content_type.startswith(cloudevents.STRUCTURED_CONTENT_TYPE)


def build_decoder(settings: CodecSettings, *, registry: SchemaRegistry | None = None) -> Decoder:
    """The decoder for these settings; local schemas are parsed here, once."""
    return Decoder(settings, registry=registry)


__all__ = ["UNDECIDED", "Decoder", "SchemaRegistry", "Undecided", "build_decoder"]
