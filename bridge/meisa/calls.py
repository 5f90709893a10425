"""MeisaCall: one API call a rule produced, frozen, JSON body exactly as it will be sent.

Shared by the rules engine (which builds calls), the pipeline (which orders, coalesces and
dispatches them) and the client (which sends them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

CallKind = Literal["upsert", "track", "trigger", "add_tag", "remove_tag", "enroll"]
ReplayPolicy = Literal["send", "skip"]

ENDPOINTS: Mapping[CallKind, str] = {
    "upsert": "POST /contacts/upsert/",
    "track": "POST /events/track/",
    "trigger": "POST /emails/trigger/",
    "add_tag": "POST /contacts/{id}/add_tag/",
    "remove_tag": "POST /contacts/{id}/remove_tag/",
    "enroll": "POST /sequences/enroll/",
}

# Lower runs first at the rate governor: a waiting OTP must overtake a backlog of upserts.
PRIORITY: Mapping[CallKind, int] = {
    "trigger": 0,
    "enroll": 1,
    "track": 1,
    "add_tag": 2,
    "remove_tag": 2,
    "upsert": 2,
}

# What each call kind needs from the API key (tags are authorised by contacts:write).
SCOPES: Mapping[CallKind, str] = {
    "upsert": "contacts:write",
    "track": "events:track",
    "trigger": "emails:trigger",
    "add_tag": "contacts:write",
    "remove_tag": "contacts:write",
    "enroll": "sequences:enroll",
}

# Replay skips what would reach a person again unless a rule says otherwise.
DEFAULT_ON_REPLAY: Mapping[CallKind, ReplayPolicy] = {
    "upsert": "send",
    "add_tag": "send",
    "remove_tag": "send",
    "track": "skip",
    "trigger": "skip",
    "enroll": "skip",
}


@dataclass(frozen=True, slots=True)
class MeisaCall:
    """One call to Meisa.

    `body` is the JSON body. For add_tag/remove_tag it holds `tag_name` (or `tag_id`) plus the
    contact's `email` and/or `external_id`; the client resolves the contact id (the URL's {id})
    and sends only the tag field. `contact_key` orders calls: external_id if present, else the
    lower-cased email. `max_age` is in seconds, measured from the event time.
    """

    kind: CallKind
    body: Mapping[str, Any]
    contact_key: str
    rule: str = ""
    action: int = 0
    max_age: float | None = None
    on_replay: ReplayPolicy = "send"
    coalesce: bool = True
    create_contact: bool = False  # on a 404, upsert a minimal contact and send again

    @property
    def endpoint(self) -> str:
        return ENDPOINTS[self.kind]

    @property
    def priority(self) -> int:
        return PRIORITY[self.kind]

    @property
    def scope(self) -> str:
        return SCOPES[self.kind]


def is_stale(call: MeisaCall, event_time: float | None, now: float) -> bool:
    """Older than the action's max_age (the one stale check of run, replay and redrive): an OTP
    that waited an hour in Kafka, or one from last week on a replay, must not go out."""
    return call.max_age is not None and event_time is not None and now - event_time > call.max_age


def contact_key(body: Mapping[str, Any]) -> str:
    """external_id when present, otherwise the lower-cased email (docs/ordering.md)."""
    external_id = body.get("external_id")
    if external_id not in (None, ""):
        return str(external_id)
    email = body.get("email") or body.get("to_email") or ""
    return str(email).strip().lower()


def merge_upserts(first: MeisaCall, later: MeisaCall) -> MeisaCall:
    """Fold two upserts of one contact into the one call Meisa would end up agreeing with.

    Later scalars win, custom_fields merge shallowly, tag_names union (first-seen order), and the
    first call's `source` (or its absence) is kept, exactly as Meisa merges them on its side.
    """
    merged: dict[str, Any] = {**first.body, **later.body}
    # Meisa keeps the source of the call that created the contact; a later one never applies.
    if "source" in first.body:
        merged["source"] = first.body["source"]
    else:
        merged.pop("source", None)
    fields = {**first.body.get("custom_fields", {}), **later.body.get("custom_fields", {})}
    if fields:
        merged["custom_fields"] = fields
    tags = list(dict.fromkeys([*first.body.get("tag_names", ()), *later.body.get("tag_names", ())]))
    if tags:
        merged["tag_names"] = tags
    return replace(later, kind="upsert", body=merged)
