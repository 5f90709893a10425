"""Codecs: Kafka message bytes -> Envelope.

`build_decoder(settings)` returns a Decoder for `codec.format`:

    auto         per message: ce_* headers -> CloudEvents binary; topic in topic_schemas -> raw
                 Avro or Protobuf; magic byte 0 -> the Confluent wire format, Avro, Protobuf or
                 JSON Schema as the registry says; C3 01 -> Avro single-object; JSON with
                 `specversion` (or content-type application/cloudevents+json) -> CloudEvents
                 structured; any other JSON object -> plain JSON event
    json         plain JSON events only
    cloudevents  binary mode when ce_* headers are present, else structured mode
    avro         Confluent wire format (an Avro schema), single-object encoding or raw per-topic
    protobuf     Confluent wire format (a Protobuf schema) or raw per-topic
    json_schema  Confluent wire format (a JSON Schema)

A message that cannot be decoded raises DecodeError (stage "decode"); a schema registry that
cannot be reached raises TransportError, and a schema not fetched yet on a running event loop
SchemaPending (both retryable: never dead-lettered). `Decoder.prefetch(records)` fetches the
schemas a batch names off the loop, so that decoding it does not meet SchemaPending
(bridge.codecs.registry).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Any, Final, Literal

import orjson

from bridge.codecs import cloudevents
from bridge.codecs.avro import AvroReader, LocalSchemas, has_single_object_header
from bridge.codecs.envelope import Where
from bridge.codecs.framed import Expect, FramedReader
from bridge.codecs.jsoncodec import JsonDecoder, loads
from bridge.codecs.protobuf import LocalProtos
from bridge.codecs.registry import SchemaRegistry
from bridge.errors import ConfigError, DecodeError
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
            registry = SchemaRegistry.from_settings(settings)
        self.registry = registry
        self.framed = FramedReader(registry)
        self.avro = AvroReader(local=LocalSchemas(settings.schemas_dir))
        self.protos = LocalProtos(settings.schemas_dir)
        self.topic_schemas = _topic_schemas(settings, self.avro.local, self.protos)
        # The value `plain_type` parsed last and what it parsed to: a mapped event is decoded
        # right after, and parsing its JSON once instead of twice saves a tenth of decoding.
        self._parsed: tuple[bytes, Any] | None = None
        self._expect: Expect = _EXPECT.get(self.format)

    async def prefetch(self, records: Iterable[Record]) -> None:
        """Fetch, off the event loop, the registry schemas these records name that are not
        cached yet; a registry that does not answer is left for `decode` to report."""
        if self.registry is not None:  # raw topics of local schemas name no registry id
            local = self.topic_schemas
            await self.registry.prefetch(r.value for r in records if r.topic not in local)

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
            event_type = self.json.event_type(obj)
            self._parsed = (value, obj)
            return event_type
        except (ValueError, DecodeError):  # orjson.JSONDecodeError is a ValueError
            return UNDECIDED

    def _decode(self, value: bytes | None, where: Where) -> Envelope:
        fmt = self.format
        if fmt in ("auto", "cloudevents") and cloudevents.is_binary(where.headers):
            return cloudevents.from_binary(value, where, other=self._binary_data)
        if fmt == "json":
            return self.json.from_object(self._loads(value), where)
        if value is None:
            raise DecodeError("message has no value (tombstone)")
        if fmt != "cloudevents":
            found = self._schema_data(value, where.topic)
            if found is not None:
                return self.json.from_object(found[0], where, default_type=found[1])
            if fmt != "auto":
                raise DecodeError(f"not {_FORMAT_NAMES[fmt]}: {_WHAT_IT_NEEDS[fmt]}")
        return self._json_or_structured(value, where, require_ce=fmt == "cloudevents")

    def _schema_data(self, value: bytes, topic: str) -> tuple[Any, str | None] | None:
        """(data, schema name) of a value a schema reads, None for other values."""
        local = self.topic_schemas.get(topic)
        if local is not None:
            kind, name = local
            if kind == "protobuf":
                reader = self.protos.reader(name)
                assert reader is not None  # checked when the decoder was built
                return reader.read(value), reader.descriptor.full_name
            return self.avro.raw(value, name)
        if value[:1] == b"\x00":
            return self.framed.read(value, self._expect)
        if has_single_object_header(value) and self.format in ("auto", "avro"):
            return self.avro.single_object(value)
        return None

    def _binary_data(self, value: bytes, content_type: str) -> Any:
        """CloudEvents binary-mode data in a schema format (cloudevents.from_binary asks)."""
        if value[:1] == b"\x00":
            return self.framed.read(value)[0]
        if has_single_object_header(value):
            return self.avro.single_object(value)[0]
        raise DecodeError(f"data of content type {content_type!r} without a schema header")

    def _loads(self, value: bytes | None) -> Any:
        """The value's JSON, as `plain_type` just parsed it when it did (the same bytes)."""
        parsed, self._parsed = self._parsed, None
        if parsed is not None and parsed[0] is value:
            return parsed[1]
        return loads(value)

    def _json_or_structured(self, value: bytes, where: Where, *, require_ce: bool) -> Envelope:
        obj = self._loads(value)
        structured = _structured(where.headers)
        if structured or require_ce or (isinstance(obj, dict) and "specversion" in obj):
            return cloudevents.from_structured(obj, where)
        return self.json.from_object(obj, where)


def _structured(headers: tuple[tuple[str, bytes | None], ...]) -> bool:
    """A content type that says structured-mode CloudEvent (raises DecodeError if not UTF-8)."""
    content_type = cloudevents.header(headers, "content-type") or ""
    return content_type.startswith(cloudevents.STRUCTURED_CONTENT_TYPE)


_EXPECT: dict[str, Expect] = {"avro": "AVRO", "protobuf": "PROTOBUF", "json_schema": "JSON"}
_FORMAT_NAMES = {"avro": "Avro", "protobuf": "Protobuf", "json_schema": "JSON Schema"}
_WHAT_IT_NEEDS = {
    "avro": "no Confluent or single-object header, no topic schema",
    "protobuf": "no Confluent header, no topic schema",
    "json_schema": "no Confluent header",
}


def _topic_schemas(
    settings: CodecSettings, avro: LocalSchemas, protos: LocalProtos
) -> dict[str, tuple[str, str]]:
    """Topic -> ("avro" | "protobuf", schema name), each name found among the local schemas."""
    out: dict[str, tuple[str, str]] = {}
    for topic, name in settings.topic_schemas.items():
        in_avro, in_proto = name in avro.by_name, protos.reader(name) is not None
        kind = "protobuf" if in_proto else "avro"
        problem = None
        if in_avro and in_proto:
            problem = f"{name!r} is both an Avro and a Protobuf schema"
        elif not (in_avro or in_proto):
            problem = f"no Avro or Protobuf schema named {name!r} in schemas_dir"
        elif settings.format not in ("auto", kind):
            problem = f"{name!r} is {kind}, and codec.format is {settings.format}"
        if problem is not None:
            raise ConfigError(problem, field=f"codec.topic_schemas.{topic}")
        out[topic] = (kind, name)
    return out


def build_decoder(settings: CodecSettings, *, registry: SchemaRegistry | None = None) -> Decoder:
    """The decoder for these settings; local schemas are parsed here, once."""
    return Decoder(settings, registry=registry)


__all__ = ["UNDECIDED", "Decoder", "SchemaRegistry", "Undecided", "build_decoder"]
