"""Contact identity: one lane per person across external_id and email; bounded memory."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.identity import ContactIdentity, KnownContacts, LaneKey


def test_an_email_seen_with_an_external_id_joins_that_persons_lane() -> None:
    ids = ContactIdentity()
    first = ids.key_for({"email": "Sarah@Example.com", "external_id": "u1"})
    assert ids.key_for({"email": "sarah@example.com"}) == first == LaneKey("x:u1")
    assert ids.key_for({"to_email": " SARAH@example.com"}) == first
    assert ids.key_for({"external_id": "u1"}) == first


def test_a_new_external_id_joins_the_lane_its_email_already_has() -> None:
    ids = ContactIdentity()
    email_lane = ids.key_for({"email": "a@x.io"})
    assert ids.key_for({"email": "a@x.io", "external_id": "u1"}) == email_lane
    assert ids.key_for({"external_id": "u1"}) == email_lane


def test_linking_two_existing_lanes_reports_the_fold() -> None:
    ids = ContactIdentity()
    ids.key_for({"email": "a@x.io"})
    ids.key_for({"external_id": "u1"})
    linked = ids.key_for({"email": "a@x.io", "external_id": "u1"})
    assert linked == LaneKey("x:u1", merged_from="m:a@x.io")
    assert ids.key_for({"email": "a@x.io"}) == LaneKey("x:u1")


def test_a_call_without_identity_gets_a_lane_of_its_own() -> None:
    assert ContactIdentity().key_for({}, fallback="k") == LaneKey("?:k")


def test_memory_is_bounded_and_busy_lanes_are_evicted_last() -> None:
    ids = ContactIdentity(capacity=4, busy=lambda key: key == "x:busy")
    ids.key_for({"external_id": "busy", "email": "busy@x.io"})
    for n in range(100):
        ids.key_for({"external_id": f"u{n}"})
    assert len(ids) == 4
    assert ids.key_for({"email": "busy@x.io"}) == LaneKey("x:busy")


def test_known_contacts_forget_the_least_recently_used() -> None:
    known = KnownContacts(capacity=2)
    known.add("a")
    known.add("b")
    known.add("a")
    known.add("c")
    assert "a" in known
    assert "c" in known
    assert "b" not in known
    known.discard("a")
    assert "a" not in known
    assert len(known) == 1


@given(st.lists(st.tuples(st.integers(0, 5), st.booleans(), st.booleans()), max_size=50))
def test_every_call_of_one_person_lands_in_one_lane_once_linked(
    events: list[tuple[int, bool, bool]],
) -> None:
    # Each person n has external_id u<n> and email n@x.io; after one event that carries both,
    # every later call of the person, by either identity, goes to the same lane.
    ids = ContactIdentity()
    for n in range(6):
        ids.key_for({"external_id": f"u{n}", "email": f"{n}@x.io"})
    for n, with_id, with_email in events:
        body = {}
        if with_id:
            body["external_id"] = f"u{n}"
        if with_email or not with_id:
            body["email"] = f"{n}@x.io"
        assert ids.key_for(body).key == f"x:u{n}"
