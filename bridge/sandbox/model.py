"""The sandbox's records (contacts, tags, enrollments), its API error and its clock.

These are mutable on purpose: they are the emulator's database rows, owned by the server's one
event loop thread, and serialised to the spec's JSON shapes on the way out.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

UNSUBSCRIBED_STATUSES = frozenset({"unsubscribed", "bounced", "complained"})
# active and paused block a new enrollment in the same sequence (the spec); the others do not.
ENROLLMENT_STATUSES = frozenset({"active", "paused", "completed", "cancelled"})
TAG_COLOR = "#6366f1"
_SLUG = re.compile(r"[^a-z0-9]+")


class ApiError(Exception):
    """An error response. Body shape everywhere: {"error": message, "code": code, ...extra}."""

    def __init__(self, status: int, message: str, code: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": message, "code": code, **extra}


class Clock:
    """Wall and monotonic time plus an offset that POST /_sandbox/clock can advance."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def mono(self) -> float:
        return time.monotonic() + self.offset


def iso(epoch: float) -> str:
    """ISO 8601 in UTC with a Z, millisecond precision."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def new_id() -> str:
    return str(uuid.uuid4())


def slugify(name: str) -> str:
    return _SLUG.sub("-", name.lower()).strip("-") or "tag"


@dataclass(slots=True)
class Tag:
    id: str
    name: str
    slug: str
    color: str = TAG_COLOR

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "slug": self.slug, "color": self.color}


@dataclass(slots=True)
class Contact:
    id: str
    email: str
    created_at: float
    updated_at: float
    external_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None
    source: str = "api"
    status: str = "active"
    custom_fields: dict[str, Any] = field(default_factory=dict)
    tags: list[Tag] = field(default_factory=list)
    total_emails_sent: int = 0
    total_emails_opened: int = 0
    last_email_sent_at: float | None = None
    last_activity_at: float | None = None

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)

    def has_tag(self, tag: Tag) -> bool:
        return any(t.id == tag.id for t in self.tags)

    def get(self, path: str) -> Any:
        """A dotted path such as `custom_fields.plan`, `status` or `tags` (names)."""
        head, _, rest = path.partition(".")
        if head == "custom_fields":
            return self.custom_fields.get(rest) if rest else self.custom_fields
        if head == "tags":
            return [t.name for t in self.tags]
        return getattr(self, head, None) if head in _SCALARS else None

    def to_json(self) -> dict[str, Any]:
        sent, opened = self.total_emails_sent, self.total_emails_opened
        return {
            "id": self.id,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "full_name": self.full_name,
            "display_name": self.display_name,
            "external_id": self.external_id,
            "source": self.source,
            "status": self.status,
            "custom_fields": self.custom_fields,
            "tags": [t.to_json() for t in self.tags],
            "preferences": {"marketing": self.status == "active", "transactional": True},
            "total_emails_sent": sent,
            "total_emails_opened": opened,
            "open_rate": round(opened / sent, 4) if sent else 0.0,
            "last_email_sent_at": iso(self.last_email_sent_at) if self.last_email_sent_at else None,
            "last_activity_at": iso(self.last_activity_at) if self.last_activity_at else None,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


_SCALARS = frozenset(
    {
        "id",
        "email",
        "external_id",
        "first_name",
        "last_name",
        "display_name",
        "source",
        "status",
        "full_name",
        "total_emails_sent",
    }
)


@dataclass(slots=True)
class Enrollment:
    id: str
    contact_id: str
    contact_email: str
    sequence_slug: str
    sequence_name: str
    enrolled_at: float
    next_step_at: float | None
    status: str = "active"
    emails_sent: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    trigger_source: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "contact_email": self.contact_email,
            "sequence_slug": self.sequence_slug,
            "status": self.status,
            "enrolled_at": iso(self.enrolled_at),
            "next_step_at": iso(self.next_step_at) if self.next_step_at else None,
        }

    def to_contact_json(self) -> dict[str, Any]:
        return {
            **self.to_json(),
            "sequence_name": self.sequence_name,
            "emails_sent": self.emails_sent,
            "trigger_source": self.trigger_source,
            "metadata": self.metadata,
        }
