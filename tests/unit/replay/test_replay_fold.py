from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from replay_model import Contact, apply_all

from bridge.meisa.calls import MeisaCall
from bridge.replay.fold import ContactFold


def fold_calls(calls: Iterable[MeisaCall]) -> dict[str, ContactFold]:
    """Fold calls by contact key, as the replay's reader does (first appearance first)."""
    folds: dict[str, ContactFold] = {}
    for call in calls:
        folds.setdefault(call.contact_key, ContactFold(call.contact_key)).apply(call)
    return folds


KEYS = ["u1", "u2", "u3"]
TAGS = ["a", "b", "c", "d"]


def upsert(key: str, **body: Any) -> MeisaCall:
    return MeisaCall("upsert", {"email": f"{key}@x.io", "external_id": key, **body}, key)


def tag(kind: str, key: str, name: str) -> MeisaCall:
    return MeisaCall(kind, {"external_id": key, "tag_name": name}, key)  # type: ignore[arg-type]


upserts = st.builds(
    lambda key, first, source, fields, tags: upsert(
        key,
        **({"first_name": first} if first else {}),
        **({"source": source} if source else {}),
        **({"custom_fields": fields} if fields else {}),
        **({"tag_names": tags} if tags else {}),
    ),
    st.sampled_from(KEYS),
    st.sampled_from([None, "Ann", "Bo"]),
    st.sampled_from([None, "signup", "import"]),
    st.dictionaries(st.sampled_from(["plan", "n"]), st.integers(0, 3), max_size=2),
    st.lists(st.sampled_from(TAGS), max_size=2, unique=True),
)
tag_calls = st.builds(
    tag, st.sampled_from(["add_tag", "remove_tag"]), st.sampled_from(KEYS), st.sampled_from(TAGS)
)
initial_states = st.dictionaries(
    st.sampled_from(KEYS),
    st.builds(
        lambda tags, plan, source: Contact(
            fields={"first_name": "Old"},
            custom_fields={"plan": plan, "keep": 1},
            tags=set(tags),
            source=source,
        ),
        st.sets(st.sampled_from(TAGS)),
        st.integers(0, 3),
        st.sampled_from(["api", "manual"]),
    ),
)


def _folded(calls: list[MeisaCall]) -> list[MeisaCall]:
    return [c for fold in fold_calls(calls).values() for c in fold.calls()]


@settings(max_examples=400)
@given(initial_states, st.lists(st.one_of(upserts, tag_calls), max_size=30))
def test_folding_then_sending_reaches_the_same_state_as_one_by_one(
    initial: dict[str, Contact], calls: list[MeisaCall]
) -> None:
    # A contact that does not exist yet must be created before its tags change (else 404s).
    missing = [k for k in KEYS if k not in initial]
    calls = [upsert(k) for k in missing if any(c.contact_key == k for c in calls)] + calls
    one_by_one = apply_all(copy.deepcopy(initial), calls)
    folded = apply_all(copy.deepcopy(initial), _folded(calls))
    assert folded == one_by_one


@settings(max_examples=200)
@given(st.lists(st.one_of(upserts, tag_calls), max_size=30), st.integers(0, 30))
def test_combining_two_folds_equals_folding_everything(calls: list[MeisaCall], cut: int) -> None:
    whole = fold_calls(calls)
    head, tail = fold_calls(calls[:cut]), fold_calls(calls[cut:])
    for key, later in tail.items():
        head.setdefault(key, ContactFold(key)).combine(later)
    assert {k: f.calls() for k, f in head.items()} == {k: f.calls() for k, f in whole.items()}


@given(st.lists(st.one_of(upserts, tag_calls), max_size=30))
def test_fold_survives_a_json_round_trip(calls: list[MeisaCall]) -> None:
    for key, fold in fold_calls(calls).items():
        assert ContactFold.from_json(key, fold.to_json()).calls() == fold.calls()


def test_many_upserts_fold_into_one_call_per_contact() -> None:
    calls = [upsert("u1", custom_fields={"n": i}) for i in range(100)]
    (only,) = _folded(calls)
    assert only.body["custom_fields"] == {"n": 99}


def test_remove_after_add_sends_a_removal_and_no_add() -> None:
    calls = [upsert("u1", tag_names=["a"]), tag("remove_tag", "u1", "a")]
    kinds = [(c.kind, c.body.get("tag_names"), c.body.get("tag_name")) for c in _folded(calls)]
    assert kinds == [("upsert", None, None), ("remove_tag", None, "a")]


def test_add_after_remove_rides_on_the_upsert() -> None:
    calls = [upsert("u1"), tag("remove_tag", "u1", "a"), tag("add_tag", "u1", "a")]
    (only,) = _folded(calls)
    assert only.body["tag_names"] == ["a"]


def test_tags_without_an_upsert_stay_tag_calls() -> None:
    calls = [tag("add_tag", "u1", "a"), tag("remove_tag", "u1", "b")]
    assert [c.kind for c in _folded(calls)] == ["add_tag", "remove_tag"]


def test_a_later_source_does_not_replace_the_default_first_source() -> None:
    (only,) = _folded([upsert("u1"), upsert("u1", source="import")])
    assert "source" not in only.body
