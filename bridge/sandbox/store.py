"""The sandbox's in-memory database: contacts, tags, events, sends, enrollments.

Everything runs on the server's event loop thread, so nothing here locks. Automations hang off
`emit`, which the mutating operations call with what changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.sandbox.automations import Automations
from bridge.sandbox.config import SandboxConfig, SequenceSpec
from bridge.sandbox.model import (
    UNSUBSCRIBED_STATUSES,
    ApiError,
    Clock,
    Contact,
    Enrollment,
    Tag,
    iso,
    new_id,
    slugify,
)

NAME_FIELDS = ("first_name", "last_name", "display_name")
OPEN_ENROLLMENT = frozenset({"active", "paused"})


@dataclass(slots=True)
class Sequence:
    spec: SequenceSpec
    id: str = field(default_factory=new_id)
    total_enrolled: int = 0

    def to_json(self) -> dict[str, Any]:
        s = self.spec
        return {
            "id": self.id,
            "slug": s.slug,
            "name": s.name,
            "status": s.status,
            "total_enrolled": self.total_enrolled,
        }


class Store:
    def __init__(self, config: SandboxConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.automations = Automations(config.automations)
        self.reset()

    def reset(self) -> None:
        self.contacts: dict[str, Contact] = {}
        self.by_email: dict[str, Contact] = {}
        self.by_external_id: dict[str, Contact] = {}
        self.tags: dict[str, Tag] = {}  # lower-cased name -> tag
        self.tags_by_id: dict[str, Tag] = {}
        self.events: list[dict[str, Any]] = []
        self.sends: list[dict[str, Any]] = []
        self.idempotency: dict[str, tuple[float, int, dict[str, Any]]] = {}
        self.enrollments: list[Enrollment] = []
        self.automation_runs: list[dict[str, Any]] = []
        self.sequences = {s.slug: Sequence(s) for s in self.config.sequences}
        for seed in self.config.contacts:
            self._seed_contact(seed)

    def _seed_contact(self, seed: Any) -> None:
        contact = self.create(str(seed["email"]).strip().lower(), emit=False)
        for name in ("external_id", *NAME_FIELDS, "source"):
            if seed.get(name) is not None:
                setattr(contact, name, str(seed[name]))
        if contact.external_id:
            self.by_external_id[contact.external_id] = contact
        contact.custom_fields.update(seed.get("custom_fields") or {})
        contact.status = str(seed.get("status", "active"))
        for name in seed.get("tag_names") or []:
            contact.tags.append(self.tag_named(str(name)))

    # contacts

    def find(self, email: str | None = None, external_id: str | None = None) -> Contact | None:
        if external_id:
            found = self.by_external_id.get(external_id)
            if found is not None:
                return found
        return self.by_email.get(email) if email else None

    def create(self, email: str, *, source: str = "api", emit: bool = True) -> Contact:
        now = self.clock.now()
        contact = Contact(id=new_id(), email=email, created_at=now, updated_at=now, source=source)
        self.contacts[contact.id] = contact
        self.by_email[email] = contact
        if emit:
            self.emit("contact_created", contact, {})
        return contact

    def change_email(self, contact: Contact, email: str) -> None:
        other = self.by_email.get(email)
        if other is not None and other is not contact:
            raise ApiError(
                400, f"email: {email} already belongs to another contact", "conflict", field="email"
            )
        del self.by_email[contact.email]
        contact.email = email
        self.by_email[email] = contact

    def set_external_id(self, contact: Contact, external_id: str) -> None:
        other = self.by_external_id.get(external_id)
        if other is not None and other is not contact:
            raise ApiError(
                400,
                "external_id: already belongs to another contact",
                "conflict",
                field="external_id",
            )
        if contact.external_id:
            self.by_external_id.pop(contact.external_id, None)
        contact.external_id = external_id
        self.by_external_id[external_id] = contact

    def set_status(self, email: str, status: str) -> Contact:
        contact = self.by_email.get(email) or self.create(email, emit=False)
        contact.status = status
        contact.updated_at = self.clock.now()
        return contact

    def unsubscribed_emails(self) -> list[str]:
        return sorted(c.email for c in self.contacts.values() if c.status in UNSUBSCRIBED_STATUSES)

    def updated(self, contact: Contact, changes: dict[str, tuple[Any, Any]]) -> None:
        contact.updated_at = self.clock.now()
        if changes:
            self.emit("contact_updated", contact, {"changes": changes})

    # tags

    def tag_named(self, name: str) -> Tag:
        key = name.lower()
        tag = self.tags.get(key)
        if tag is None:
            tag = Tag(id=new_id(), name=name, slug=slugify(name))
            self.tags[key] = tag
            self.tags_by_id[tag.id] = tag
        return tag

    def tag_by_id(self, tag_id: str) -> Tag:
        tag = self.tags_by_id.get(tag_id)
        if tag is None:
            raise ApiError(404, f"tag_id: no tag with id {tag_id}", "tag_not_found", field="tag_id")
        return tag

    def add_tag(self, contact: Contact, tag: Tag) -> bool:
        if contact.has_tag(tag):
            return False
        contact.tags.append(tag)
        contact.updated_at = self.clock.now()
        self.emit("tag_added", contact, {"tag": tag.name})
        return True

    def remove_tag(self, contact: Contact, tag: Tag) -> bool:
        if not contact.has_tag(tag):
            return False
        contact.tags = [t for t in contact.tags if t.id != tag.id]
        contact.updated_at = self.clock.now()
        self.emit("tag_removed", contact, {"tag": tag.name})
        return True

    # events

    def track(self, contact: Contact, name: str, properties: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        contact.last_activity_at = now
        event = {
            "id": new_id(),
            "contact_id": contact.id,
            "email": contact.email,
            "event_name": name,
            "properties": properties,
            "timestamp": iso(now),
        }
        self.events.append(event)
        self.emit("custom_event", contact, {"event": name})
        return event

    # sequences

    def enroll(
        self,
        contact: Contact,
        sequence: Sequence,
        *,
        metadata: dict[str, Any] | None = None,
        trigger_source: str | None = None,
    ) -> Enrollment:
        now = self.clock.now()
        spec = sequence.spec
        enrollment = Enrollment(
            id=new_id(),
            contact_id=contact.id,
            contact_email=contact.email,
            sequence_slug=spec.slug,
            sequence_name=spec.name,
            enrolled_at=now,
            next_step_at=now + spec.first_step_delay_seconds,
            metadata=metadata or {},
            trigger_source=trigger_source,
        )
        self.enrollments.append(enrollment)
        sequence.total_enrolled += 1
        self.emit("sequence_enrolled", contact, {"sequence": spec.slug})
        return enrollment

    def open_enrollment(self, contact: Contact, slug: str) -> Enrollment | None:
        for e in self.enrollments:
            if (
                e.contact_id == contact.id
                and e.sequence_slug == slug
                and e.status in OPEN_ENROLLMENT
            ):
                return e
        return None

    def unenroll(self, contact: Contact, slug: str) -> None:
        enrollment = self.open_enrollment(contact, slug)
        if enrollment is not None:
            enrollment.status = "cancelled"

    # automations

    def emit(self, kind: str, contact: Contact, info: dict[str, Any]) -> None:
        if self.automations.has(kind):
            self.automations.fire(self, kind, contact, info)
