"""CloudEvents 1.0 over Kafka (the Kafka protocol binding): structured and binary mode.

Structured: the value is a JSON CloudEvent (content-type `application/cloudevents+json`, or any
JSON object with `specversion`). Binary: attributes travel as `ce_<attr>` headers with UTF-8
values, the value is the event data and the `content-type` header its datacontenttype.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import orjson

from bridge.codecs.envelope import Where
from bridge.errors import DecodeError
from bridge.events import Envelope

REQUIRED = ("id", "source", "type")
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"


def header(headers: tuple[tuple[str, bytes | None], ...], name: str) -> str | None:
    """The first header with this name (case-insensitive), decoded as UTF-8."""
    for key, value in headers:
        if key.lower() == name and value is not None:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError(f"header {key!r} is not UTF-8") from None
    return None


def is_binary(headers: tuple[tuple[str, bytes | None], ...]) -> bool:
    return bool(headers) and any(k.lower() == "ce_specversion" for k, _ in headers)


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return True  # the binding: absent content type means the data is JSON when it parses
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or media == "text/json"


def _check(attrs: dict[str, Any]) -> None:
    version = attrs.get("specversion")
    if not isinstance(version, str) or not version.startswith("1."):
        raise DecodeError(f"unsupported CloudEvents specversion {version!r}")
    missing = [a for a in REQUIRED if not isinstance(attrs.get(a), str) or not attrs[a]]
    if missing:
        raise DecodeError(f"CloudEvent without required attribute(s): {', '.join(missing)}")


def _envelope(attrs: dict[str, Any], data: Any, where: Where) -> Envelope:
    _check(attrs)
    return Envelope(
        topic=where.topic,
        partition=where.partition,
        offset=where.offset,
        data=data,
        id=attrs["id"],
        type=attrs["type"],
        source=attrs["source"],
        subject=attrs.get("subject"),
        time=attrs.get("time"),
        key=where.key,
        timestamp=where.timestamp,
        headers=where.headers,
    )


def from_structured(event: Any, where: Where) -> Envelope:
    if not isinstance(event, dict):
        raise DecodeError("structured CloudEvent must be a JSON object")
    data = event.get("data")
    if "data_base64" in event:
        try:
            raw = base64.b64decode(event["data_base64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise DecodeError("data_base64 is not valid base64") from None
        data = _binary_data(raw, event.get("datacontenttype"))
    return _envelope(event, data, where)


def _binary_data(raw: bytes, content_type: str | None) -> Any:
    if _is_json(content_type):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            if content_type is not None:
                raise DecodeError(f"data is not valid JSON ({content_type})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"cannot decode data of content type {content_type!r}") from None


def _schema_framed(value: bytes, content_type: str | None) -> bool:
    """Data in a registry's wire format (magic byte 0), or of an Avro or Protobuf type."""
    if value[:1] == b"\x00":
        return True
    media = (content_type or "").lower()
    return "avro" in media or "protobuf" in media


def from_binary(
    value: bytes | None, where: Where, *, other: Callable[[bytes, str], Any] | None = None
) -> Envelope:
    """`other(value, content_type)` decodes data in a schema format (Avro, Protobuf, the
    Confluent wire format)."""
    attrs: dict[str, Any] = {}
    for key, _ in where.headers:
        low = key.lower()
        if low.startswith("ce_"):
            attrs.setdefault(low[3:], header(where.headers, low))
    content_type = header(where.headers, "content-type")
    if value is None:
        data = None
    elif other is not None and _schema_framed(value, content_type):
        data = other(value, content_type or "")
    else:
        data = _binary_data(value, content_type)
    return _envelope(attrs, data, where)
