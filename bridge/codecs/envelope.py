"""Turn a decoded event object into an Envelope (shared by the JSON and Avro codecs)."""

from __future__ import annotations

from typing import Any, NamedTuple

from bridge.errors import DecodeError
from bridge.events import Envelope, Headers


class Where(NamedTuple):
    """The Kafka coordinates and metadata of one message (a tuple: built for every message)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: Headers
    timestamp: int | None


def _text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise DecodeError(f"event field {name!r} must be a string, got {type(value).__name__}")


def event_type(obj: dict[str, Any], type_field: str, checked: tuple[str, ...]) -> str | None:
    """The type `from_object` would give the event, with its other attributes (`checked`: the
    id, source, subject and time fields) checked as it checks them, DecodeError alike, without
    building the Envelope. Runs for every event no rule maps: plain strings skip `_text`."""
    get = obj.get
    for name in checked:
        value = get(name)
        if value is not None and type(value) is not str:
            _text(value, name)
    value = get(type_field)
    return value if value is None or type(value) is str else _text(value, type_field)


def from_object(
    obj: Any,
    where: Where,
    *,
    type_field: str,
    id_field: str,
    time_field: str,
    default_type: str | None = None,
) -> Envelope:
    """A plain event: `type`, `id`, `time` (configurable names), optional `source`/`subject`.

    `data` is the object's `data` member when it has one, otherwise the whole object, so both
    `{"type": ..., "data": {...}}` and flat `{"type": ..., "email": ...}` events work. An object
    without a type takes `default_type` (a schema's name).
    """
    if not isinstance(obj, dict):
        raise DecodeError(f"expected an event object, got {type(obj).__name__}")
    # Built for every event with calls: attributes that are strings or absent skip `_text`.
    get = obj.get
    id_, type_, source, subject, time_ = (
        get(id_field),
        get(type_field),
        get("source"),
        get("subject"),
        get(time_field),
    )
    return Envelope(
        topic=where.topic,
        partition=where.partition,
        offset=where.offset,
        data=get("data", obj),
        id=id_ if id_ is None or type(id_) is str else _text(id_, id_field),
        type=default_type if type_ is None else _text(type_, type_field),
        source=source if source is None or type(source) is str else _text(source, "source"),
        subject=subject if subject is None or type(subject) is str else _text(subject, "subject"),
        time=time_ if time_ is None or type(time_) is str else _text(time_, time_field),
        key=where.key,
        timestamp=where.timestamp,
        headers=where.headers,
    )
