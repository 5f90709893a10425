"""Triggered email and sequence endpoints.

Trigger order of checks: body (400) -> trigger exists and is active (400) -> idempotency replay
-> sender configured (422 no_sender) -> recipient contact created or enriched -> recipient
unsubscribed (422) -> conditions (200 skipped) -> delay (202 scheduled) -> 200 sent.
"""

from __future__ import annotations

from typing import Any

from bridge.sandbox import validate as v
from bridge.sandbox.config import Condition, TriggerSpec
from bridge.sandbox.model import UNSUBSCRIBED_STATUSES, ApiError, Contact, iso, new_id
from bridge.sandbox.store import NAME_FIELDS, Sequence, Store

Result = tuple[int, dict[str, Any]]
IDEMPOTENCY_WINDOW = 3600.0  # the spec: identical sends dedupe within 1 hour
BULK_MAX = 500


def trigger(store: Store, triggers: dict[str, TriggerSpec], body: dict[str, Any]) -> Result:
    key = v.required_str(body, "trigger_key")
    to_email = v.required_email(body, "to_email")
    variables = v.optional_object(body, "variables") or {}
    recipient = v.optional_object(body, "recipient") or {}
    v.check_recipient(recipient)
    idem = v.optional_str(body, "idempotency_key") or None
    spec = _active_trigger(triggers, key)
    now = store.clock.now()
    replayed = _replay(store, idem, now)
    if replayed is not None:
        return replayed
    if not spec.sender:
        raise ApiError(
            422, f"trigger {key!r} has no sender configured", "no_sender", reason="no_sender"
        )
    contact, created = _recipient(store, to_email, recipient)
    send = _record(
        store, spec=spec, contact=contact, created=created, variables=variables, idem=idem, now=now
    )
    if contact.status in UNSUBSCRIBED_STATUSES:
        send["status"] = "unsubscribed"
        raise ApiError(
            422,
            "recipient unsubscribed",
            "unsubscribed",
            reason="unsubscribed",
            contact_status=contact.status,
        )
    status, payload = _outcome(
        store, spec=spec, contact=contact, variables=variables, send=send, now=now
    )
    if idem is not None:
        store.idempotency[idem] = (now, len(store.sends) - 1, {**payload, "_status": status})
    return status, payload


def _active_trigger(triggers: dict[str, TriggerSpec], key: str) -> TriggerSpec:
    spec = triggers.get(key)
    if spec is None:
        raise ApiError(
            400, f"trigger_key: unknown trigger {key!r}", "unknown_trigger", field="trigger_key"
        )
    if not spec.active:
        raise ApiError(
            400,
            f"trigger_key: trigger {key!r} is inactive",
            "inactive_trigger",
            field="trigger_key",
        )
    return spec


def _replay(store: Store, idem: str | None, now: float) -> Result | None:
    """The original send's status and body while its idempotency key is under an hour old."""
    seen = store.idempotency.get(idem) if idem is not None else None
    if seen is None or now - seen[0] >= IDEMPOTENCY_WINDOW:
        return None
    store.sends[seen[1]]["duplicates"] += 1
    return seen[2]["_status"], {k: x for k, x in seen[2].items() if k != "_status"}


def _recipient(store: Store, email: str, recipient: dict[str, Any]) -> tuple[Contact, bool]:
    """Create the contact, or fill the fields it lacks (enrich never overwrites)."""
    contact = store.find(email)
    created = contact is None
    if contact is None:
        contact = store.create(email, emit=False)
    for name in NAME_FIELDS:
        value = recipient.get(name)
        if isinstance(value, str) and value and not getattr(contact, name):
            setattr(contact, name, value)
    external_id = recipient.get("external_id")
    free = isinstance(external_id, str) and store.find(external_id=external_id) is None
    if free and external_id and not contact.external_id:
        store.set_external_id(contact, external_id)
    fields = recipient.get("custom_fields")
    if isinstance(fields, dict):
        for key, value in fields.items():
            contact.custom_fields.setdefault(key, value)
    if created:
        store.emit("contact_created", contact, {})
    return contact, created


def _record(
    store: Store,
    *,
    spec: TriggerSpec,
    contact: Contact,
    created: bool,
    variables: dict[str, Any],
    idem: str | None,
    now: float,
) -> dict[str, Any]:
    send = {
        "email_send_id": new_id(),
        "status": "sent",
        "trigger_key": spec.key,
        "to_email": contact.email,
        "contact_id": contact.id,
        "contact_created": created,
        "variables": variables,
        "sender": spec.sender,
        "idempotency_key": idem,
        "timestamp": iso(now),
        "scheduled_for": None,
        "reason": None,
        "duplicates": 0,
    }
    store.sends.append(send)
    return send


def _outcome(
    store: Store,
    *,
    spec: TriggerSpec,
    contact: Contact,
    variables: dict[str, Any],
    send: dict[str, Any],
    now: float,
) -> Result:
    base = {
        "email_send_id": send["email_send_id"],
        "contact_id": contact.id,
        "contact_created": send["contact_created"],
        "trigger_key": spec.key,
        "timestamp": send["timestamp"],
    }
    if not all(_holds(c, contact, variables) for c in spec.conditions):
        send.update(status="skipped", reason="conditions_not_met")
        return 200, {"status": "skipped", "reason": "conditions_not_met", **base}
    if spec.delay_seconds > 0:
        when = iso(now + spec.delay_seconds)
        send.update(status="scheduled", scheduled_for=when)
        return 202, {"status": "scheduled", "scheduled_for": when, **base}
    contact.total_emails_sent += 1
    contact.last_email_sent_at = now
    return 200, {"status": "sent", **base}


def _holds(cond: Condition, contact: Contact, variables: dict[str, Any]) -> bool:
    if cond.field.startswith("variables."):
        value = variables.get(cond.field.removeprefix("variables."))
    else:
        value = contact.get(cond.field)
    if cond.op == "equals":
        return bool(value == cond.value)
    if cond.op == "not_equals":
        return bool(value != cond.value)
    if cond.op == "in":
        return value in (cond.value or [])
    return (value is not None) == bool(cond.value)  # exists


def _active_sequence(store: Store, slug: str) -> Sequence:
    sequence = store.sequences.get(slug)
    if sequence is None:
        raise ApiError(
            400,
            f"sequence_slug: unknown sequence {slug!r}",
            "unknown_sequence",
            field="sequence_slug",
        )
    if sequence.spec.status != "active":
        raise ApiError(
            400,
            f"sequence_slug: sequence {slug!r} is {sequence.spec.status}, not active",
            "inactive_sequence",
            field="sequence_slug",
        )
    return sequence


def enroll(store: Store, body: dict[str, Any]) -> Result:
    email = v.required_email(body)
    slug = v.required_str(body, "sequence_slug")
    metadata = v.optional_object(body, "metadata")
    trigger_source = v.optional_str(body, "trigger_source")
    override = v.optional_bool(body, "override_unsubscribe")
    sequence = _active_sequence(store, slug)
    contact = store.find(email) or store.create(email)
    existing = store.open_enrollment(contact, slug)
    if existing is not None:
        raise ApiError(
            400,
            f"contact is already {existing.status} in sequence {slug!r}",
            "already_enrolled",
            enrollment_id=existing.id,
        )
    if contact.status in UNSUBSCRIBED_STATUSES and not override:
        raise ApiError(
            422,
            "recipient unsubscribed",
            "unsubscribed",
            reason="unsubscribed",
            contact_status=contact.status,
        )
    enrollment = store.enroll(contact, sequence, metadata=metadata, trigger_source=trigger_source)
    return 201, enrollment.to_json()


def bulk_enroll(store: Store, body: dict[str, Any]) -> Result:
    slug = v.required_str(body, "sequence_slug")
    emails = v.string_list(body, "emails")
    if not emails:
        raise v.invalid("emails", "this field is required (1 to 500 addresses)")
    if len(emails) > BULK_MAX:
        raise v.invalid("emails", f"at most {BULK_MAX} addresses per request; got {len(emails)}")
    override = v.optional_bool(body, "override_unsubscribe")
    sequence = _active_sequence(store, slug)
    enrolled: list[str] = []
    skipped: list[dict[str, str]] = []
    for raw in emails:
        email, reason = _bulk_one(store, sequence, raw, override, enrolled)
        if reason is None:
            enrolled.append(email)
        else:
            skipped.append({"email": email, "reason": reason})
    return 200, {
        "sequence_slug": slug,
        "requested": len(emails),
        "enrolled": len(enrolled),
        "skipped": len(skipped),
        "enrolled_emails": enrolled,
        "skipped_emails": skipped,
    }


def _bulk_one(
    store: Store, sequence: Sequence, raw: str, override: bool, done: list[str]
) -> tuple[str, str | None]:
    try:
        email = v.normalize_email(raw, "emails")
    except ApiError:
        return raw, "invalid_email"
    if email in done:
        return email, "duplicate"
    contact = store.find(email) or store.create(email)
    if store.open_enrollment(contact, sequence.spec.slug) is not None:
        return email, "already_enrolled"
    if contact.status in UNSUBSCRIBED_STATUSES and not override:
        return email, contact.status
    store.enroll(contact, sequence, trigger_source="bulk")
    return email, None


def list_sequences(store: Store, status: str | None, search: str | None) -> Result:
    wanted = status or "active"
    if wanted not in ("all", "active", "paused", "draft", "archived"):
        raise v.invalid("status", "one of active, paused, draft, archived, all")
    needle = (search or "").strip().lower()
    results = [
        s.to_json()
        for s in store.sequences.values()
        if wanted in ("all", s.spec.status)
        and (not needle or needle in s.spec.slug.lower() or needle in s.spec.name.lower())
    ]
    return 200, {"count": len(results), "results": results}


def contact_enrollments(store: Store, email_param: str | None) -> Result:
    if not email_param:
        raise v.invalid("email", "the email query parameter is required")
    # `?email=a+b@x.com` written unencoded decodes '+' to a space, which no address holds.
    email = v.normalize_email(email_param.strip().replace(" ", "+"))
    contact = store.find(email)
    enrollments = [
        e.to_contact_json() for e in store.enrollments if contact and e.contact_id == contact.id
    ]
    return 200, {"email": email, "contact_exists": contact is not None, "enrollments": enrollments}
