"""Plain JSON events (orjson)."""

from __future__ import annotations

from typing import Any

import orjson

from bridge.codecs.envelope import Where, event_type, from_object
from bridge.errors import DecodeError
from bridge.events import Envelope
from bridge.settings import CodecSettings


def loads(value: bytes | None) -> Any:
    if value is None:
        raise DecodeError("message has no value (tombstone)")
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from None


class JsonDecoder:
    """`{"type": ..., "id": ..., "time": ..., "data": {...}}` with configurable field names."""

    def __init__(self, settings: CodecSettings) -> None:
        self.type_field = settings.type_field
        self.id_field = settings.id_field
        self.time_field = settings.time_field or "time"
        self._checked = (self.id_field, "source", "subject", self.time_field)

    def event_type(self, obj: dict[str, Any]) -> str | None:
        return event_type(obj, self.type_field, self._checked)

    def from_object(self, obj: Any, where: Where, default_type: str | None = None) -> Envelope:
        return from_object(
            obj,
            where,
            type_field=self.type_field,
            id_field=self.id_field,
            time_field=self.time_field,
            default_type=default_type,
        )

    def decode_value(self, value: bytes | None, where: Where) -> Envelope:
        return self.from_object(loads(value), where)
