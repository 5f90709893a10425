"""Protobuf without generated classes: message types built at run time from descriptors.

confluent-kafka's ProtobufDeserializer returns instances of a generated class the caller passes
in; the bridge knows no message classes ahead of time, so it builds them with protobuf's own
`descriptor_pool` and `message_factory` from what it is given:

- a registry schema: a serialized FileDescriptorProto (base64, what a registry answers to
  `format=serialized` and what confluent-kafka's serialiser registers) or .proto text
  (bridge.codecs.protoparse), with the files it references;
- local files in `codec.schemas_dir`: `.proto` files (imports resolved among them) and
  descriptor sets (`protoc --include_imports --descriptor_set_out=x.desc`).

Each registry schema gets a pool of its own (two versions of one file cannot share one), which
also holds the well-known types, and Confluent's and Google's common types when installed, since
producers do not register those as references. In the Confluent wire format a Protobuf value
carries, after the schema id, the message indexes (zigzag varints: a count, then the index of the
message at each nesting level; a lone 0 means the file's first message) that name the message.
"""

from __future__ import annotations

import base64
import binascii
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError as ProtobufDecodeError

from bridge.codecs.protodict import converter
from bridge.codecs.protoparse import parse_proto
from bridge.errors import DecodeError

DESCRIPTOR_SET_SUFFIXES = (".desc", ".binpb", ".pb")
MAX_INDEXES = 64  # deeper message nesting than this is a corrupt header, not a schema
_COMMON_TYPES = (  # files a producer's serialiser never registers as references; imports first
    *(
        f"google.protobuf.{m}_pb2"
        for m in (
            "any",
            "source_context",
            "type",
            "api",
            "duration",
            "empty",
            "field_mask",
            "struct",
            "timestamp",
            "wrappers",
            "descriptor",
        )
    ),
    "confluent_kafka.schema_registry.confluent.meta_pb2",
    "confluent_kafka.schema_registry.confluent.type.decimal_pb2",
    *(f"google.type.{m}_pb2" for m in ("date", "money", "timeofday", "dayofweek", "latlng")),
)


def _common_files() -> list[bytes]:
    files = []
    for name in _COMMON_TYPES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # googleapis-common-protos is optional
            continue
        files.append(module.DESCRIPTOR.serialized_pb)
    return files


_COMMON: list[bytes] | None = None


def new_pool() -> descriptor_pool.DescriptorPool:
    """A pool holding the common types."""
    global _COMMON  # noqa: PLW0603 (imported once, on first use)
    if _COMMON is None:
        _COMMON = _common_files()
    pool = descriptor_pool.DescriptorPool()
    for serialized in _COMMON:
        pool.AddSerializedFile(serialized)
    return pool


@dataclass(frozen=True, slots=True)
class MessageReader:
    """Bytes of one message type -> dict (bridge.codecs.protodict)."""

    descriptor: Descriptor
    new: Any = field(repr=False)
    convert: Any = field(repr=False)

    def read(self, body: bytes) -> dict[str, Any]:
        message = self.new()
        try:
            message.ParseFromString(body)
        except (ProtobufDecodeError, RuntimeError, ValueError) as exc:
            name = self.descriptor.full_name
            raise DecodeError(f"Protobuf body does not match {name}: {exc}") from None
        result: dict[str, Any] = self.convert(message)
        return result


def reader_for(descriptor: Descriptor) -> MessageReader:
    new = message_factory.GetMessageClass(descriptor)
    return MessageReader(descriptor, new, converter(descriptor))


@dataclass(frozen=True)
class ProtoFile:
    """One registry schema: its pool and its file; messages are found by their indexes."""

    pool: descriptor_pool.DescriptorPool
    proto: descriptor_pb2.FileDescriptorProto
    _readers: dict[tuple[int, ...], MessageReader] = field(default_factory=dict, repr=False)

    def reader(self, indexes: tuple[int, ...]) -> MessageReader:
        found = self._readers.get(indexes)
        if found is None:
            found = self._readers[indexes] = reader_for(self._message(indexes))
        return found

    def _message(self, indexes: tuple[int, ...]) -> Descriptor:
        messages: Sequence[descriptor_pb2.DescriptorProto] = self.proto.message_type
        path: list[str] = []
        for index in indexes:
            if not 0 <= index < len(messages):
                raise DecodeError(f"message index {index} out of range in {self.proto.name}")
            path.append(messages[index].name)
            messages = messages[index].nested_type
        package = self.proto.package
        name = ".".join([package, *path] if package else path)
        return self.pool.FindMessageTypeByName(name)


def file_proto(schema: str, name: str) -> descriptor_pb2.FileDescriptorProto:
    """A schema as a registry gives it: a base64 serialized descriptor or .proto text."""
    try:
        raw = base64.b64decode(schema, validate=True)
    except (binascii.Error, ValueError):
        return parse_proto(schema, name)  # text always has spaces or ';', never valid base64
    proto = descriptor_pb2.FileDescriptorProto()
    proto.ParseFromString(raw)
    if not proto.name:
        proto.name = name
    return proto


def proto_file(schema: str, references: Mapping[str, str]) -> ProtoFile:
    """A registry schema and the files it references (import path -> schema), in a new pool.
    Raises ValueError or TypeError (protobuf's) when it does not build."""
    pool = new_pool()
    for path, text in references.items():
        proto = file_proto(text, path)
        proto.name = path  # the importing file names it by its reference name
        _add(pool, proto)
    main = file_proto(schema, "schema.proto")
    _add(pool, main)
    return ProtoFile(pool, main)


def _add(pool: descriptor_pool.DescriptorPool, proto: descriptor_pb2.FileDescriptorProto) -> None:
    try:
        pool.FindFileByName(proto.name)
    except KeyError:
        pool.Add(proto)


def read_indexes(value: bytes, pos: int) -> tuple[tuple[int, ...], int]:
    """The message indexes at `pos` of a Confluent Protobuf value, and where the body starts."""
    count, pos = _zigzag(value, pos)
    if count == 0:
        return (0,), pos
    if not 0 < count <= MAX_INDEXES:
        raise DecodeError(f"Protobuf message index count {count} is not valid")
    indexes = []
    for _ in range(count):
        index, pos = _zigzag(value, pos)
        indexes.append(index)
    return tuple(indexes), pos


def _zigzag(value: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(value) or shift > 63:
            raise DecodeError("Protobuf message indexes end early")
        byte = value[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos


def _is_proto(path: Path) -> bool:
    return path.suffix == ".proto" or path.suffix in DESCRIPTOR_SET_SUFFIXES


class LocalProtos:
    """The messages of the `.proto` files and descriptor sets in a folder, by full name."""

    def __init__(self, folder: str | Path | None) -> None:
        self.pool: descriptor_pool.DescriptorPool | None = None
        self._readers: dict[str, MessageReader] = {}
        root = Path(folder) if folder is not None else None
        if root is None or not any(_is_proto(p) for p in root.rglob("*")):
            return  # most deployments have no local Protobuf: no pool to build
        self.pool = new_pool()
        for path in sorted(p for p in root.iterdir() if p.suffix in DESCRIPTOR_SET_SUFFIXES):
            self._descriptor_set(path)
        texts = {str(p.relative_to(root)): p for p in sorted(root.rglob("*.proto"))}
        protos: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        for name, path in texts.items():
            try:
                protos[name] = parse_proto(path.read_text(encoding="utf-8"), name)
            except (ValueError, OSError) as exc:
                raise DecodeError(f"{path}: not a usable .proto file: {exc}") from None
        for name in protos:
            self._add_with_imports(name, protos, root, set())

    def _descriptor_set(self, path: Path) -> None:
        assert self.pool is not None
        files = descriptor_pb2.FileDescriptorSet()
        try:
            files.ParseFromString(path.read_bytes())
            for proto in files.file:
                _add(self.pool, proto)
        except (ProtobufDecodeError, TypeError, ValueError, OSError) as exc:
            raise DecodeError(f"{path}: not a usable descriptor set: {exc}") from None

    def _add_with_imports(
        self,
        name: str,
        protos: Mapping[str, descriptor_pb2.FileDescriptorProto],
        root: Path,
        seen: set[str],
    ) -> None:
        assert self.pool is not None
        if name in seen:
            return
        seen.add(name)
        proto = protos[name]
        for dependency in proto.dependency:
            if dependency in protos:
                self._add_with_imports(dependency, protos, root, seen)
        try:
            _add(self.pool, proto)
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"{root / name}: {exc}") from None

    def reader(self, full_name: str) -> MessageReader | None:
        found = self._readers.get(full_name)
        if found is None:
            if self.pool is None:
                return None
            try:
                descriptor = self.pool.FindMessageTypeByName(full_name)
            except KeyError:
                return None
            found = self._readers[full_name] = reader_for(descriptor)
        return found
