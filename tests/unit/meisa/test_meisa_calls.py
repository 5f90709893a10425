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
        assert traits.idempotent == ("idempotency_key" in ACTION_FIELDS[kind]), kind


def test_triggers_run_first_at_the_governor() -> None:
    trigger = KINDS["trigger"].priority
    assert all(trigger < t.priority for k, t in KINDS.items() if k != "trigger")


def test_a_call_reads_its_kinds_row() -> None:
    call = MeisaCall("enroll", {"email": "a@x.io"}, contact_key="a@x.io")
    assert call.traits is KINDS["enroll"]
    assert call.endpoint == "POST /sequences/enroll/"
    assert call.scope == "sequences:enroll"
