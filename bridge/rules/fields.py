"""The body fields of each action, exactly as the Meisa API defines them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from bridge.meisa.calls import CallKind

FieldType = Literal["string", "object", "string_list", "bool"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    type: FieldType = "string"
    required: bool = False
    choices: tuple[str, ...] = ()


_S = FieldSpec()
_OBJ = FieldSpec(type="object")
_REQ = FieldSpec(required=True)

ACTION_FIELDS: Mapping[CallKind, Mapping[str, FieldSpec]] = {
    "upsert": {
        "email": _REQ,
        "external_id": _S,
        "first_name": _S,
        "last_name": _S,
        "display_name": _S,
        "source": FieldSpec(choices=("api", "import", "manual", "signup", "initial_sync")),
        "custom_fields": _OBJ,
        "tag_names": FieldSpec(type="string_list"),
    },
    "track": {"event_name": _REQ, "email": _S, "external_id": _S, "properties": _OBJ},
    "trigger": {
        "trigger_key": _REQ,
        "to_email": _REQ,
        "variables": _OBJ,
        "recipient": _OBJ,
        "idempotency_key": _S,
    },
    "add_tag": {"email": _S, "external_id": _S, "tag_name": _S, "tag_id": _S},
    "remove_tag": {"email": _S, "external_id": _S, "tag_name": _S, "tag_id": _S},
    "enroll": {
        "email": _REQ,
        "sequence_slug": _REQ,
        "metadata": _OBJ,
        "trigger_source": _S,
        "override_unsubscribe": FieldSpec(type="bool"),
    },
}

# Groups where at least one field must be given (and, for tags, exactly one).
AT_LEAST_ONE: Mapping[CallKind, tuple[tuple[str, ...], ...]] = {
    "track": (("email", "external_id"),),
    "add_tag": (("email", "external_id"), ("tag_name", "tag_id")),
    "remove_tag": (("email", "external_id"), ("tag_name", "tag_id")),
}
EXACTLY_ONE: Mapping[CallKind, tuple[str, ...]] = {
    "add_tag": ("tag_name", "tag_id"),
    "remove_tag": ("tag_name", "tag_id"),
}

# Fields people reach for that the spec says do not exist.
_NO_SUCH_UPSERT_FIELD = (
    'the Meisa spec says there is NO "name", "status", or "tags"/"tag_ids" field on upsert '
    "(use first_name/last_name/display_name, tag_names; status is managed by Meisa)"
)
SPEC_ABSENT: Mapping[CallKind, Mapping[str, str]] = {
    "upsert": dict.fromkeys(("name", "status", "tags", "tag_ids"), _NO_SUCH_UPSERT_FIELD),
}

ACTION_KINDS: tuple[CallKind, ...] = tuple(ACTION_FIELDS)
