"""Request body validation: every failure is a 400 naming the field, in the one error shape."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from bridge.sandbox.model import ApiError

# Deliberately simple: one @, no spaces, a dot in the domain. Real providers are stricter only
# in ways that do not matter to an emulator.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NOT_ON_UPSERT = {
    "name": "use first_name, last_name or display_name",
    "status": "status is managed by Meisa",
    "tags": "use tag_names (add-only)",
    "tag_ids": "use tag_names (add-only)",
}


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, f"{field}: {message}", "invalid", field=field)


def check_media_type(content_type: str | None) -> None:
    """A body must be declared JSON (the spec: all requests are JSON). A missing header is
    tolerated, as many HTTP clients omit it; a different media type is 415."""
    if content_type is None:
        return
    media = content_type.partition(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(
            415,
            f"unsupported Content-Type {media or '(empty)'!r}: send application/json",
            "unsupported_media_type",
        )


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object a POST carries; an empty body counts as {}."""
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON body: {exc}", "malformed_json") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "the JSON body must be an object", "malformed_json")
    return body


def normalize_email(value: Any, field: str = "email") -> str:
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    email = value.strip().lower()
    if not _EMAIL.match(email) or len(email) > 254 or email.index("@") > 64:  # RFC 5321 limits
        raise invalid(field, f"not a valid email address: {value!r}")
    return email


def required_email(body: Mapping[str, Any], field: str = "email") -> str:
    if body.get(field) in (None, ""):
        raise invalid(field, "this field is required")
    return normalize_email(body[field], field)


def required_str(body: Mapping[str, Any], field: str) -> str:
    value = body.get(field)
    if value is None or value == "":
        raise invalid(field, "this field is required")
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    if not value.strip():
        raise invalid(field, "must not be blank")
    return value


def optional_str(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    return value


def optional_object(body: Mapping[str, Any], field: str) -> dict[str, Any] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(field, "must be a JSON object")
    return value


def optional_bool(body: Mapping[str, Any], field: str) -> bool:
    value = body.get(field, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(field, "must be true or false")
    return value


def string_list(body: Mapping[str, Any], field: str) -> list[str] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise invalid(field, "must be an array of non-empty strings")
    return [v.strip() for v in value]


def check_recipient(recipient: Mapping[str, Any]) -> None:
    """A trigger's `recipient` holds contact fields: they carry the types upsert gives them."""
    for name in ("external_id", "first_name", "last_name", "display_name"):
        _nested_str(recipient, name)
    if recipient.get("custom_fields") is not None and not isinstance(
        recipient["custom_fields"], dict
    ):
        raise invalid("recipient.custom_fields", "must be a JSON object")


def _nested_str(recipient: Mapping[str, Any], name: str) -> None:
    value = recipient.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(f"recipient.{name}", "must be a string")


def check_upsert_fields(body: Mapping[str, Any]) -> None:
    """Refuse the fields the spec says do not exist on upsert."""
    for name, hint in _NOT_ON_UPSERT.items():
        if name in body:
            raise invalid(name, f"there is no '{name}' field on upsert ({hint})")
