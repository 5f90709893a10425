"""MeisaCall: one API call a rule produced, frozen, JSON body exactly as it will be sent.

Shared by the rules engine (which builds calls), the pipeline (which orders, coalesces and
dispatches them) and the client (which sends them). What differs by call kind is one table,
`KINDS`, read everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

CallKind = Literal["upsert", "track", "trigger", "add_tag", "remove_tag", "enroll", "bulk_enroll"]
ReplayPolicy = Literal["send", "skip"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KindTraits:
    """What a call kind is and how the bridge treats it: one row of `KINDS`, the one place
    that says so; ordering, retries, lanes, guards, metrics and the rules read it."""

    endpoint: str
    scope: str  # what the API key needs (tags are authorised by contacts:write)
    priority: int  # lower runs first at the rate governor: an OTP overtakes a backlog
    on_replay: ReplayPolicy  # replay skips what would reach a person again, unless a rule says
    # Waits for an upsert of the same person queued or in flight here before it goes (the lane
    # lets that upsert go first): it would ask Meisa about, or create, a contact the bridge is
    # still creating.
    needs_contact: bool
    # Meisa answers 404 when the contact is missing: the 404 is a bounded wait (another
    # instance or a later message may be creating it), and `create_contact` may create it.
    waits_on_404: bool
    # May pass a call parked on a 404 in its lane: it does not need the contact to exist.
    overtakes_parked: bool
    creates_contact: bool  # a contact exists once it succeeded: calls that need one may follow
    # A transactional email: depends on no other call and is only useful now. It skips the
    # lockstep, runs in its person's trigger lane with slots of its own, is suppressed for an
    # unsubscribed recipient and is recorded in the sent-email ledger.
    trigger: bool
    # Carries an idempotency_key (derived when a rule gives none): Meisa sends it once within
    # its idempotency window, however often the bridge re-sends it.
    idempotent: bool
    # The kind that carries many of these in one request (enrolments to one sequence go as one
    # bulk-enroll, bridge.pipeline.bulk); None: each goes on its own.
    bulk: CallKind | None = None
    # Folds into its person's upsert still queued ahead of it, as one of its `tag_names`
    # (add-only, like the call): one request instead of two (bridge.pipeline.coalesce).
    folds_into_upsert: bool = False
    made_by_rules: bool = True  # False: the bridge builds it from calls that rules made


# An enrolment needs its contact (Meisa would create a bare one, without the upsert's fields)
# but never waits on a 404: Meisa creates a missing contact for it instead of answering 404.
KINDS: Mapping[CallKind, KindTraits] = {
    "upsert": KindTraits(
        endpoint="POST /contacts/upsert/",
        scope="contacts:write",
        priority=2,
        on_replay="send",
        needs_contact=False,
        waits_on_404=False,
        overtakes_parked=True,
        creates_contact=True,
        trigger=False,
        idempotent=False,
    ),
    "track": KindTraits(
        endpoint="POST /events/track/",
        scope="events:track",
        priority=1,
        on_replay="skip",
        needs_contact=True,
        waits_on_404=True,
        overtakes_parked=False,
        creates_contact=False,
        trigger=False,
        idempotent=False,
    ),
    "trigger": KindTraits(
        endpoint="POST /emails/trigger/",
        scope="emails:trigger",
        priority=0,
        on_replay="skip",
        needs_contact=False,
        waits_on_404=False,
        overtakes_parked=True,
        creates_contact=False,
        trigger=True,
        idempotent=True,
    ),
    "add_tag": KindTraits(
        endpoint="POST /contacts/{id}/add_tag/",
        scope="contacts:write",
        priority=2,
        on_replay="send",
        needs_contact=True,
        waits_on_404=True,
        overtakes_parked=False,
        creates_contact=False,
        trigger=False,
        idempotent=False,
        folds_into_upsert=True,
    ),
    "remove_tag": KindTraits(
        endpoint="POST /contacts/{id}/remove_tag/",
        scope="contacts:write",
        priority=2,
        on_replay="send",
        needs_contact=True,
        waits_on_404=True,
        overtakes_parked=False,
        creates_contact=False,
        trigger=False,
        idempotent=False,
    ),
    "enroll": KindTraits(
        endpoint="POST /sequences/enroll/",
        scope="sequences:enroll",
        priority=1,
        on_replay="skip",
        needs_contact=True,
        waits_on_404=False,
        overtakes_parked=False,
        creates_contact=False,
        trigger=False,
        idempotent=False,
        bulk="bulk_enroll",
    ),
    # Enrolments of several people to one sequence, built by the bridge from queued enrolls.
    "bulk_enroll": KindTraits(
        endpoint="POST /sequences/api/bulk-enroll/",
        scope="sequences:enroll",
        priority=1,
        on_replay="skip",
        needs_contact=True,
        waits_on_404=False,
        overtakes_parked=False,
        creates_contact=False,
        trigger=False,
        idempotent=False,
        made_by_rules=False,
    ),
}

# Views of single columns, for the code that needs one; ENDPOINTS: the kinds rules make.
ENDPOINTS: Mapping[CallKind, str] = {
    kind: traits.endpoint for kind, traits in KINDS.items() if traits.made_by_rules
}
SCOPES: Mapping[CallKind, str] = {kind: traits.scope for kind, traits in KINDS.items()}
DEFAULT_ON_REPLAY: Mapping[CallKind, ReplayPolicy] = {
    kind: traits.on_replay for kind, traits in KINDS.items()
}
# The kinds a rule's `coalesce: false` applies to: upserts merge, add_tags fold into a queued
# upsert, enrolments go in bulk.
COALESCES: tuple[CallKind, ...] = tuple(
    k
    for k, r in KINDS.items()
    if r.made_by_rules and (k == "upsert" or r.folds_into_upsert or r.bulk is not None)
)
# The kinds a 404 may wait for, the only ones `create_contact` applies to.
WAITS_ON_404: tuple[CallKind, ...] = tuple(k for k, r in KINDS.items() if r.waits_on_404)


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
    def traits(self) -> KindTraits:
        """Its kind's row of `KINDS`."""
        return KINDS[self.kind]

    @property
    def endpoint(self) -> str:
        return KINDS[self.kind].endpoint

    @property
    def priority(self) -> int:
        return KINDS[self.kind].priority

    @property
    def scope(self) -> str:
        return KINDS[self.kind].scope


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


def fold_tag(upsert: MeisaCall, tag: MeisaCall) -> MeisaCall:
    """The upsert that also adds `tag`'s tag: its name joins `tag_names` (Meisa adds the tags an
    upsert names and creates missing ones, as add_tag does; it never removes any)."""
    names = list(dict.fromkeys([*upsert.body.get("tag_names", ()), tag.body["tag_name"]]))
    return replace(upsert, body={**upsert.body, "tag_names": names})


def folds_into(upsert: MeisaCall, tag: MeisaCall) -> bool:
    """`tag` (an add_tag by name) may go as one of `upsert`'s tag_names: both rules allow it and
    the tag names its contact by fields the upsert carries, with the same values."""
    return (
        upsert.kind == "upsert"
        and tag.traits.folds_into_upsert
        and upsert.coalesce
        and tag.coalesce
        and isinstance(tag.body.get("tag_name"), str)
        and _same_contact(upsert.body, tag.body)
    )


def _same_contact(upsert: Mapping[str, Any], tag: Mapping[str, Any]) -> bool:
    named = False
    for name in ("external_id", "email"):
        value = tag.get(name)
        if value in (None, ""):
            continue
        mine = upsert.get(name)
        if name == "email" and isinstance(value, str) and isinstance(mine, str):
            value, mine = value.strip().lower(), mine.strip().lower()
        if mine != value:
            return False
        named = True
    return named


# The fields a bulk request carries for each call: a call with any other goes alone.
_BULK_FIELDS = frozenset({"email", "sequence_slug", "override_unsubscribe"})
BulkKey = tuple[str, bool]  # (sequence_slug, override_unsubscribe)


def bulk_key(call: MeisaCall) -> BulkKey | None:
    """Which bulk request a call may go in (None: it goes alone): an enrolment with nothing the
    bulk endpoint cannot carry (metadata, trigger_source), no max_age, not opted out."""
    body = call.body
    if (
        call.traits.bulk is None
        or not call.coalesce
        or call.max_age is not None
        or not _BULK_FIELDS.issuperset(body)
        or not isinstance(body.get("email"), str)
        or not isinstance(body.get("sequence_slug"), str)
    ):
        return None
    return body["sequence_slug"], body.get("override_unsubscribe") is True


def bulk_of(calls: Sequence[MeisaCall]) -> MeisaCall:
    """The one request that makes every call of one `bulk_key` (each address once)."""
    first = calls[0]
    assert first.traits.bulk is not None
    emails = list(dict.fromkeys(bulk_address(call) for call in calls))
    body: dict[str, Any] = {"sequence_slug": first.body["sequence_slug"], "emails": emails}
    if first.body.get("override_unsubscribe") is True:
        body["override_unsubscribe"] = True
    return MeisaCall(
        kind=first.traits.bulk, body=body, contact_key="", rule=first.rule, action=first.action
    )


def bulk_address(call: MeisaCall) -> str:
    """The address a call has in a bulk request (Meisa compares addresses case-insensitively)."""
    return str(call.body["email"]).strip().lower()
