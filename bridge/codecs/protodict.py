"""A Protobuf message -> plain Python data, the `data` rules see.

Close to protobuf's JSON mapping, but with the field names of the .proto file and integers kept
as integers:

- every field without presence (proto3 scalars, repeated fields, maps) appears, with its default
  when unset; a field with presence (a message, a proto3 `optional`, a oneof member, any proto2
  singular field) appears only when set, so only the set member of a oneof is there;
- 32- and 64-bit integers are ints, floats are floats, bools are bools;
- an enum is the name of its value (a number the schema does not name stays a number);
- bytes are standard base64 text;
- a map is a dict with string keys (as in JSON);
- well-known types as in the JSON mapping: Timestamp is RFC 3339 text in UTC
  (`2026-03-02T09:00:00Z`), Duration `"1.5s"`, the wrappers their value, Struct/Value/ListValue
  their JSON, FieldMask its text, Any `{"@type": url, ...}`, Empty `{}`.

A converter is built once per message type and kept (a list of per-field functions), so a
message costs one pass over its fields.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

Convert = Callable[[Any], Any]
_CONVERTERS: dict[Descriptor, Callable[[Message], dict[str, Any]]] = {}
_WRAPPERS = frozenset(
    f"google.protobuf.{n}Value"
    for n in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
_AS_TEXT = frozenset(f"google.protobuf.{n}" for n in ("Duration", "FieldMask"))
_JSON_MAPPED = frozenset(
    f"google.protobuf.{n}" for n in ("Struct", "Value", "ListValue", "Any", "Empty")
)


def to_dict(message: Message) -> dict[str, Any]:
    return converter(message.DESCRIPTOR)(message)


def converter(descriptor: Descriptor) -> Callable[[Message], dict[str, Any]]:
    """The message -> dict function of this type, built once."""
    found = _CONVERTERS.get(descriptor)
    if found is None:
        found = _CONVERTERS[descriptor] = _build(descriptor)
    return found


def _build(descriptor: Descriptor) -> Callable[[Message], dict[str, Any]]:
    plain: list[tuple[str, Convert]] = []  # always present
    present: list[tuple[str, Convert]] = []  # only when set
    for field in descriptor.fields:
        value = _field_value(field)
        (present if field.has_presence else plain).append((field.name, value))

    def convert(message: Message) -> dict[str, Any]:
        out = {name: value(getattr(message, name)) for name, value in plain}
        for name, value in present:
            if message.HasField(name):
                out[name] = value(getattr(message, name))
        return out

    return convert


def _field_value(field: FieldDescriptor) -> Convert:
    if _is_map(field):
        key = _single(field.message_type.fields_by_name["key"])
        value = _single(field.message_type.fields_by_name["value"])
        return lambda m: {_map_key(key(k)): value(v) for k, v in m.items()}
    single = _single(field)
    if field.is_repeated:
        return lambda items: [single(v) for v in items]
    return single


def _single(field: FieldDescriptor) -> Convert:  # noqa: PLR0911 (a branch per kind)
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        name = field.message_type.full_name
        if name in _WRAPPERS:
            inner = _single(field.message_type.fields_by_name["value"])
            return lambda m: inner(m.value)
        if name == "google.protobuf.Timestamp":
            return _timestamp
        if name in _AS_TEXT:
            return _as_text
        if name in _JSON_MAPPED:
            return _json_mapped
        return lambda m: converter(m.DESCRIPTOR)(m)
    if kind == FieldDescriptor.TYPE_ENUM:
        names = {v.number: v.name for v in field.enum_type.values}
        return lambda n: names.get(n, n)
    if kind == FieldDescriptor.TYPE_BYTES:
        return _base64
    return _same


def _timestamp(message: Message) -> str:
    """RFC 3339 in UTC with 0, 3, 6 or 9 fraction digits, as protobuf's JSON mapping writes it
    (its own ToJsonString costs several times as much)."""
    seconds, nanos = message.seconds, message.nanos
    try:
        t = time.gmtime(seconds)
    except (OverflowError, OSError, ValueError):
        return _as_text(message)
    date = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    text = f"{date}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    if not nanos:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


def _as_text(message: Message) -> str:
    text: str = message.ToJsonString()  # the type's own JSON text: cheaper than json_format
    return text


def _json_mapped(message: Message) -> Any:
    try:
        return json_format.MessageToDict(message, preserving_proto_field_name=True)
    except (TypeError, KeyError, ValueError):  # an Any whose type the pool does not hold
        raw = message.SerializeToString()
        return {"@type": getattr(message, "type_url", ""), "value": _base64(raw)}


def _is_map(field: FieldDescriptor) -> bool:
    message = field.message_type
    return bool(field.is_repeated and message is not None and message.GetOptions().map_entry)


def _map_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _same(value: Any) -> Any:
    return value
