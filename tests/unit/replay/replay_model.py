"""A tiny model of Meisa contact state, applied call by call (the spec's upsert merge rules)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bridge.meisa.calls import MeisaCall

SCALARS = ("email", "first_name", "last_name", "display_name")


@dataclass
class Contact:
    fields: dict[str, Any] = field(default_factory=dict)
    custom_fields: dict[str, Any] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    source: str = "api"


def apply(contacts: dict[str, Contact], call: MeisaCall) -> None:
    key = call.contact_key
    body = call.body
    if call.kind == "upsert":
        contact = contacts.get(key)
        if contact is None:
            contact = contacts[key] = Contact(source=body.get("source", "api"))
        contact.fields.update({k: body[k] for k in SCALARS if k in body})
        contact.custom_fields.update(body.get("custom_fields", {}))
        contact.tags.update(body.get("tag_names", ()))
        return
    contact = contacts.get(key)
    if contact is None:
        return  # 404: the call fails and changes nothing
    tag = body.get("tag_name") or f"id:{body.get('tag_id')}"
    if call.kind == "add_tag":
        contact.tags.add(tag)
    elif call.kind == "remove_tag":
        contact.tags.discard(tag)


def apply_all(contacts: dict[str, Contact], calls: Iterable[MeisaCall]) -> dict[str, Contact]:
    for call in calls:
        apply(contacts, call)
    return contacts
