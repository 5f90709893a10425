"""Automations: WHEN a contact changes THEN tag, enroll or set a field, as Meisa's dashboard would.

Actions can fire further automations (an added tag fires `tag_added`); a depth limit stops a
configuration that feeds itself from looping forever.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from bridge.sandbox.config import AutomationSpec
from bridge.sandbox.model import Contact, iso

if TYPE_CHECKING:
    from bridge.sandbox.store import Store

MAX_DEPTH = 8


class Automations:
    def __init__(self, specs: tuple[AutomationSpec, ...]) -> None:
        self._by_kind: dict[str, list[AutomationSpec]] = defaultdict(list)
        for spec in specs:
            self._by_kind[spec.on].append(spec)
        self._depth = 0

    def has(self, kind: str) -> bool:
        return kind in self._by_kind

    def fire(self, store: Store, kind: str, contact: Contact, info: dict[str, Any]) -> None:
        if self._depth >= MAX_DEPTH:
            return
        self._depth += 1
        try:
            for spec in self._by_kind[kind]:
                if matches(spec, info):
                    self._run(store, spec, contact)
        finally:
            self._depth -= 1

    def _run(self, store: Store, spec: AutomationSpec, contact: Contact) -> None:
        done = [_act(store, contact, name, arg) for name, arg in spec.actions]
        store.automation_runs.append(
            {
                "automation": spec.name,
                "trigger": spec.on,
                "contact_id": contact.id,
                "email": contact.email,
                "actions": done,
                "time": iso(store.clock.now()),
            }
        )


def matches(spec: AutomationSpec, info: dict[str, Any]) -> bool:
    if spec.on == "contact_updated":
        return _field_matches(spec, info.get("changes", {}))
    if spec.on in ("tag_added", "tag_removed"):
        return spec.tag is None or str(spec.tag).lower() == str(info.get("tag", "")).lower()
    if spec.on == "custom_event":
        return spec.event is None or spec.event == info.get("event")
    if spec.on == "sequence_enrolled":
        return spec.sequence is None or spec.sequence == info.get("sequence")
    return True  # contact_created


def _field_matches(spec: AutomationSpec, changes: dict[str, tuple[Any, Any]]) -> bool:
    if spec.field is None:
        return bool(changes)
    if spec.field not in changes:
        return False
    old, new = changes[spec.field]
    if spec.has_from and old != spec.from_value:
        return False
    return not (spec.has_to and new != spec.to_value)


def _act(store: Store, contact: Contact, name: str, arg: Any) -> dict[str, Any]:
    if name == "add_tag":
        return {"add_tag": str(arg), "changed": store.add_tag(contact, store.tag_named(str(arg)))}
    if name == "remove_tag":
        tag = store.tags.get(str(arg).lower())
        changed = tag is not None and store.remove_tag(contact, tag)
        return {"remove_tag": str(arg), "changed": changed}
    if name == "enroll":
        return {"enroll": str(arg), "changed": _enroll(store, contact, str(arg))}
    if name == "unenroll":
        store.unenroll(contact, str(arg))
        return {"unenroll": str(arg), "changed": True}
    return _set_field(store, contact, arg)


def _enroll(store: Store, contact: Contact, slug: str) -> bool:
    sequence = store.sequences.get(slug)
    if sequence is None or sequence.spec.status != "active":
        return False
    if store.open_enrollment(contact, slug) is not None:
        return False
    store.enroll(contact, sequence, trigger_source="automation")
    return True


def _set_field(store: Store, contact: Contact, arg: Any) -> dict[str, Any]:
    path, value = str(arg.get("field", "")), arg.get("value")
    key = path.removeprefix("custom_fields.")
    old = contact.custom_fields.get(key)
    contact.custom_fields[key] = value
    store.updated(contact, {f"custom_fields.{key}": (old, value)} if old != value else {})
    return {"set_field": f"custom_fields.{key}", "value": value, "changed": old != value}
