"""Request and response models of the Meisa API, carrying only the spec's fields.

Request bodies are plain mappings, sent as JSON exactly as built; FIELDS and REQUIRED list each
endpoint's fields. `check_body` refuses, before any request is sent, a field the spec does not
list for an endpoint, with a dedicated message for the fields the spec says do not exist on
upsert (`name`, `status`, `tags`, `tag_ids`). Missing required fields and wrongly typed values
are refused the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.errors import MappingError, SpecFieldError

Endpoint = Literal["upsert", "track", "tag", "trigger", "enroll", "bulk_enroll"]
Outcome = Literal["ok", "skipped"]

SOURCES: frozenset[str] = frozenset({"api", "import", "manual", "signup", "initial_sync"})
BULK_ENROLL_MAX = 500  # the spec's limit on `emails` per bulk-enroll request


# field -> JSON type it must have when present (None values are left to the server).
_STR, _OBJ, _STRS, _BOOL = "string", "object", "string[]", "bool"
FIELDS: Mapping[Endpoint, Mapping[str, str]] = {
    "upsert": {
        "email": _STR,
        "external_id": _STR,
        "first_name": _STR,
        "last_name": _STR,
        "display_name": _STR,
        "source": _STR,
        "custom_fields": _OBJ,
        "tag_names": _STRS,
    },
    "track": {"event_name": _STR, "email": _STR, "external_id": _STR, "properties": _OBJ},
    "tag": {"tag_name": _STR, "tag_id": _STR},
    "trigger": {
        "trigger_key": _STR,
        "to_email": _STR,
        "variables": _OBJ,
        "recipient": _OBJ,
        "idempotency_key": _STR,
    },
    "enroll": {
        "email": _STR,
        "sequence_slug": _STR,
        "metadata": _OBJ,
        "trigger_source": _STR,
        "override_unsubscribe": _BOOL,
    },
    "bulk_enroll": {"sequence_slug": _STR, "emails": _STRS, "override_unsubscribe": _BOOL},
}

REQUIRED: Mapping[Endpoint, tuple[str, ...]] = {
    "upsert": ("email",),
    "track": ("event_name",),
    "tag": (),
    "trigger": ("trigger_key", "to_email"),
    "enroll": ("email", "sequence_slug"),
    "bulk_enroll": ("sequence_slug", "emails"),
}

# The spec names these as absent on upsert; say so instead of a generic "unknown field".
NOT_ON_UPSERT: Mapping[str, str] = {
    "name": "use first_name / last_name / display_name",
    "status": "status is managed by Meisa",
    "tags": "use tag_names (add-only)",
    "tag_ids": "use tag_names (add-only)",
}


def _type_ok(value: Any, kind: str) -> bool:
    if kind == _STR:
        return isinstance(value, str)
    if kind == _OBJ:
        return isinstance(value, Mapping)
    if kind == _BOOL:
        return isinstance(value, bool)
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def _check_unknown(endpoint: Endpoint, body: Mapping[str, Any]) -> None:
    allowed = FIELDS[endpoint]
    for name in body:
        if name in allowed:
            continue
        if endpoint == "upsert" and name in NOT_ON_UPSERT:
            raise SpecFieldError(
                f"upsert has no field '{name}' in the Meisa spec ({NOT_ON_UPSERT[name]})"
            )
        raise SpecFieldError(
            f"{endpoint} has no field '{name}' in the Meisa spec "
            f"(allowed: {', '.join(sorted(allowed))})"
        )


def _check_present(endpoint: Endpoint, body: Mapping[str, Any]) -> None:
    for name in REQUIRED[endpoint]:
        if body.get(name) in (None, ""):
            raise MappingError(f"{endpoint} requires '{name}'")
    if endpoint == "track" and not (body.get("email") or body.get("external_id")):
        raise MappingError("track requires 'email' or 'external_id'")
    if endpoint == "tag" and sum(bool(body.get(k)) for k in ("tag_name", "tag_id")) != 1:
        raise MappingError("add_tag/remove_tag need exactly one of 'tag_name' or 'tag_id'")


def check_body(endpoint: Endpoint, body: Mapping[str, Any]) -> None:
    """Refuse a body the spec would not accept: unknown fields, missing required, wrong types."""
    _check_unknown(endpoint, body)
    _check_present(endpoint, body)
    fields = FIELDS[endpoint]
    for name, value in body.items():  # a body names a few of its endpoint's many fields
        if value is not None and not _type_ok(value, fields[name]):
            raise MappingError(f"{endpoint} field '{name}' must be a {fields[name]}")
    source = body.get("source")
    if endpoint == "upsert" and source is not None and source not in SOURCES:
        raise MappingError(f"upsert field 'source' must be one of {', '.join(sorted(SOURCES))}")


def _limit(key: Mapping[str, Any], name: str, default: int) -> int | None:
    if name not in key:
        return default
    value = key[name]
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class PingInfo:
    """What GET /ping/ says about the key (limits default to the spec's 60/min, 1,000/h)."""

    name: str = ""
    environment: str = ""
    scopes: frozenset[str] = frozenset()
    # The spec's defaults when /ping does not say; None when it says null (no limit).
    rate_limit_per_minute: int | None = 60
    rate_limit_per_hour: int | None = 1000
    product: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PingInfo:
        key = data.get("api_key") or {}
        product = data.get("product") or {}
        return cls(
            name=str(key.get("name") or ""),
            environment=str(key.get("environment") or ""),
            scopes=frozenset(str(s) for s in key.get("scopes") or ()),
            rate_limit_per_minute=_limit(key, "rate_limit_per_minute", 60),
            rate_limit_per_hour=_limit(key, "rate_limit_per_hour", 1000),
            product=dict(product) if isinstance(product, Mapping) else {},
        )


@dataclass(frozen=True, slots=True)
class CallResult:
    """A call Meisa accepted. `outcome` is "skipped" for 200 {"status": "skipped"}; `reason`
    records why (e.g. conditions_not_met) or that a 202 was scheduled."""

    status: int
    body: Any
    outcome: Outcome = "ok"
    reason: str | None = None
