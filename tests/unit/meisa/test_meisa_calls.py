"""The per-kind table: the columns agree with each other and with the API contract."""

from __future__ import annotations

from bridge.meisa.calls import KINDS, WAITS_ON_404, MeisaCall
from bridge.rules.fields import ACTION_FIELDS


def test_a_call_that_may_wait_on_a_404_needs_its_contact() -> None:
    for kind, traits in KINDS.items():
        if traits.waits_on_404:
            assert traits.needs_contact, kind


def test_a_call_that_needs_its_contact_never_passes_one_parked_on_a_404() -> None:
    for kind, traits in KINDS.items():
        assert not (traits.needs_contact and traits.overtakes_parked), kind


def test_an_enrolment_needs_its_contact_but_meisa_creates_it_instead_of_a_404() -> None:
    enroll = KINDS["enroll"]
    assert enroll.needs_contact
    assert not enroll.waits_on_404
    assert "enroll" not in WAITS_ON_404


def test_only_calls_with_an_idempotency_key_field_are_idempotent() -> None:
    for kind, traits in KINDS.items():
        fields = ACTION_FIELDS[kind] if traits.made_by_rules else {}
        assert traits.idempotent == ("idempotency_key" in fields), kind


def test_the_kinds_rules_make_are_the_rules_actions() -> None:
    made = {kind for kind, traits in KINDS.items() if traits.made_by_rules}
    assert made == set(ACTION_FIELDS)


def test_a_bulk_kind_goes_to_the_same_scope_and_priority_as_what_it_carries() -> None:
    for kind, traits in KINDS.items():
        if traits.bulk is not None:
            bulk = KINDS[traits.bulk]
            assert (bulk.scope, bulk.priority, bulk.on_replay) == (
                traits.scope,
                traits.priority,
                traits.on_replay,
            ), kind
            assert not bulk.made_by_rules


def test_only_an_add_tag_folds_into_an_upsert() -> None:
    assert [k for k, t in KINDS.items() if t.folds_into_upsert] == ["add_tag"]


def test_triggers_run_first_at_the_governor() -> None:
    trigger = KINDS["trigger"].priority
    assert all(trigger < t.priority for k, t in KINDS.items() if k != "trigger")


def test_a_call_reads_its_kinds_row() -> None:
    call = MeisaCall("enroll", {"email": "a@x.io"}, contact_key="a@x.io")
    assert call.traits is KINDS["enroll"]
    assert call.endpoint == "POST /sequences/enroll/"
    assert call.scope == "sequences:enroll"
