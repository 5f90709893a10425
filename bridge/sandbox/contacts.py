"""Contact endpoints: upsert, track, add/remove tag, unsubscribed emails.

Each function takes the store and the parsed request and returns (status, JSON body), raising
ApiError for the spec's error statuses.
"""

from __future__ import annotations

from typing import Any

from bridge.sandbox import validate as v
from bridge.sandbox.config import SOURCES
from bridge.sandbox.model import ApiError, Contact, Tag, iso
from bridge.sandbox.store import NAME_FIELDS, Store

Result = tuple[int, dict[str, Any]]


def upsert(store: Store, body: dict[str, Any]) -> Result:
    v.check_upsert_fields(body)
    email = v.required_email(body)
    external_id = v.optional_str(body, "external_id") or None
    names = {name: v.optional_str(body, name) for name in NAME_FIELDS if name in body}
    source = v.optional_str(body, "source")
    if source is not None and source not in SOURCES:
        raise v.invalid("source", f"must be one of {', '.join(sorted(SOURCES))}; got {source!r}")
    fields = v.optional_object(body, "custom_fields")
    tag_names = v.string_list(body, "tag_names")

    contact = store.find(email, external_id)
    created = contact is None
    if contact is None:
        contact = store.create(email, source=source or "api", emit=False)
    changes = _rekey(store, contact, email, external_id) if not created else {}
    if created and external_id:
        store.set_external_id(contact, external_id)
    for name, value in names.items():
        old = getattr(contact, name)
        if old != value:
            setattr(contact, name, value)
            changes[name] = (old, value)
    if fields:
        cf = contact.custom_fields
        for key, value in fields.items():
            old = cf.get(key)
            if key not in cf or old != value:
                changes[f"custom_fields.{key}"] = (old, value)
                cf[key] = value
    contact.last_activity_at = store.clock.now()
    if created:
        store.emit("contact_created", contact, {})
    else:
        store.updated(contact, changes)
    for name in tag_names or ():
        store.add_tag(contact, store.tag_named(name))
    return 200, contact.to_json()


def _rekey(
    store: Store, contact: Contact, email: str, external_id: str | None
) -> dict[str, tuple[Any, Any]]:
    """Matched by external_id: the email may change. Matched by email: external_id is set."""
    changes: dict[str, tuple[Any, Any]] = {}
    if contact.email != email:
        changes["email"] = (contact.email, email)
        store.change_email(contact, email)
    if external_id and contact.external_id != external_id:
        changes["external_id"] = (contact.external_id, external_id)
        store.set_external_id(contact, external_id)
    return changes


def find_contact(store: Store, body: dict[str, Any]) -> Contact:
    """email and/or external_id (matched first); 404 when neither matches."""
    external_id = v.optional_str(body, "external_id") or None
    email = v.normalize_email(body["email"]) if body.get("email") not in (None, "") else None
    if email is None and external_id is None:
        raise v.invalid("email", "email or external_id is required")
    contact = store.find(email, external_id)
    if contact is None:
        who = f"external_id {external_id}" if external_id else f"email {email}"
        raise ApiError(404, f"no contact with {who}; upsert it first", "contact_not_found")
    return contact


def track(store: Store, body: dict[str, Any]) -> Result:
    name = v.required_str(body, "event_name")
    properties = v.optional_object(body, "properties") or {}
    contact = find_contact(store, body)
    event = store.track(contact, name, properties)
    return 200, {
        "status": "tracked",
        "contact_id": contact.id,
        "event_name": name,
        "timestamp": event["timestamp"],
    }


def _contact_by_id(store: Store, contact_id: str) -> Contact:
    contact = store.contacts.get(contact_id)
    if contact is None:
        raise ApiError(404, f"no contact with id {contact_id}", "contact_not_found")
    return contact


def _tag_from(store: Store, body: dict[str, Any], *, create: bool) -> Tag | None:
    tag_name = v.optional_str(body, "tag_name")
    tag_id = v.optional_str(body, "tag_id")
    if tag_name and tag_name.strip() and tag_id:
        raise v.invalid("tag_id", "send tag_name or tag_id, not both")
    if tag_name and tag_name.strip():
        name = tag_name.strip()
        return store.tag_named(name) if create else store.tags.get(name.lower())
    if tag_id:
        return store.tag_by_id(tag_id)
    raise v.invalid("tag_name", "tag_name or tag_id is required")


def add_tag(store: Store, contact_id: str, body: dict[str, Any]) -> Result:
    contact = _contact_by_id(store, contact_id)
    tag = _tag_from(store, body, create=True)
    assert tag is not None  # create=True always yields a tag
    added = store.add_tag(contact, tag)
    return 200, _tag_result("added" if added else "unchanged", contact, tag)


def remove_tag(store: Store, contact_id: str, body: dict[str, Any]) -> Result:
    contact = _contact_by_id(store, contact_id)
    tag = _tag_from(store, body, create=False)
    removed = tag is not None and store.remove_tag(contact, tag)
    return 200, _tag_result("removed" if removed else "unchanged", contact, tag)


def _tag_result(status: str, contact: Contact, tag: Tag | None) -> dict[str, Any]:
    return {
        "status": status,
        "contact_id": contact.id,
        "tag": tag.to_json() if tag else None,
        "tags": [t.to_json() for t in contact.tags],
    }


def unsubscribed(store: Store) -> Result:
    emails = store.unsubscribed_emails()
    return 200, {"as_of": iso(store.clock.now()), "count": len(emails), "emails": emails}
