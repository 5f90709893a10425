"""Coalescing in a lane: merged upserts leave Meisa in the state the upserts one by one would."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge.meisa.calls import MeisaCall
from bridge.pipeline.coalesce import Pending
from bridge.pipeline.lanes import Lane


def upsert(body: dict[str, Any], *, key: str = "u1", coalesce: bool = True) -> MeisaCall:
    return MeisaCall(kind="upsert", body=body, contact_key=key, coalesce=coalesce)


def track(name: str, *, key: str = "u1") -> MeisaCall:
    return MeisaCall(kind="track", body={"event_name": name}, contact_key=key)


def apply_upsert(state: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """A model of Meisa's upsert: first source sticks, custom_fields merge shallowly, tags add."""
    out = dict(state)
    if not state:  # created: the source sticks from here on, "api" unless given
        out["source"] = body.get("source", "api")
    for k, v in body.items():
        if k == "source":
            continue
        if k == "custom_fields":
            out["custom_fields"] = {**out.get("custom_fields", {}), **v}
        elif k == "tag_names":
            tags = out.get("tag_names", [])
            out["tag_names"] = tags + [t for t in v if t not in tags]
        else:
            out[k] = v
    return out


def drain(lane: Lane) -> list[Pending[Any]]:
    out = list(lane.queue)
    lane.queue.clear()
    return out


def test_adjacent_upserts_merge_and_carry_every_message() -> None:
    lane = Lane("u1")
    merged = [
        lane.push(upsert({"email": "a@x.io", "first_name": "A"}), 1),
        lane.push(upsert({"email": "a@x.io", "custom_fields": {"plan": "pro"}}), 2),
    ]
    assert merged == [False, True]
    [item] = drain(lane)
    assert item.call.body == {
        "email": "a@x.io",
        "first_name": "A",
        "custom_fields": {"plan": "pro"},
    }
    assert item.messages() == [1, 2]
    assert sum(merged) == 1


def test_track_between_upserts_keeps_them_apart() -> None:
    lane = Lane("u1")
    for n, call in enumerate(
        [
            upsert({"email": "a@x.io"}),
            track("login"),
            upsert({"email": "a@x.io", "first_name": "B"}),
        ]
    ):
        lane.push(call, n)
    assert [i.call.kind for i in drain(lane)] == ["upsert", "track", "upsert"]


def test_rule_opt_out_prevents_merge() -> None:
    lane = Lane("u1")
    lane.push(upsert({"email": "a@x.io"}), 1)
    lane.push(upsert({"email": "a@x.io"}, coalesce=False), 2)
    assert len(drain(lane)) == 2


scalars = st.one_of(st.integers(-5, 5), st.text(max_size=3), st.booleans())
bodies = st.fixed_dictionaries(
    {"email": st.just("a@x.io")},
    optional={
        "first_name": st.text(max_size=3),
        "last_name": st.text(max_size=3),
        "source": st.sampled_from(["api", "signup", "import"]),
        "custom_fields": st.dictionaries(st.sampled_from("abcd"), scalars, max_size=3),
        "tag_names": st.lists(st.sampled_from(["t1", "t2", "t3"]), max_size=3, unique=True),
    },
)
calls = st.one_of(
    bodies.map(upsert),
    st.tuples(bodies, st.booleans()).map(lambda bc: upsert(bc[0], coalesce=bc[1])),
    st.sampled_from(["login", "export"]).map(track),
)


@given(initial=bodies, seq=st.lists(calls, max_size=12))
def test_merged_state_equals_upserts_one_by_one(
    initial: dict[str, Any], seq: list[MeisaCall]
) -> None:
    lane = Lane("u1")
    for i, call in enumerate(seq):
        lane.push(call, i)
    one_by_one = merged = apply_upsert({}, initial)
    for call in seq:
        if call.kind == "upsert":
            one_by_one = apply_upsert(one_by_one, dict(call.body))
    items = drain(lane)
    for item in items:
        if item.call.kind == "upsert":
            merged = apply_upsert(merged, dict(item.call.body))
    assert merged == one_by_one
    # Every original call is carried exactly once, in order; non-upserts keep their order.
    assert [m for item in items for m in item.messages()] == list(range(len(seq)))
    assert [i.call for i in items if i.call.kind != "upsert"] == [
        c for c in seq if c.kind != "upsert"
    ]


# -- an add_tag folds into the upsert queued ahead of it ----------------------------------------


def tag(kind: str, name: str, *, coalesce: bool = True, **who: str) -> MeisaCall:
    body = {**(who or {"email": "a@x.io"}), "tag_name": name}
    return MeisaCall(kind=kind, body=body, contact_key="u1", coalesce=coalesce)  # type: ignore[arg-type]


def test_an_add_tag_behind_a_queued_upsert_goes_as_one_of_its_tag_names() -> None:
    lane = Lane("u1")
    lane.push(upsert({"email": "a@x.io", "tag_names": ["trial"]}), 1)
    assert lane.push(tag("add_tag", "paying"), 2)
    [item] = drain(lane)
    assert item.call.kind == "upsert"
    assert item.call.body["tag_names"] == ["trial", "paying"]
    assert item.messages() == [1, 2]
    assert [c.kind for c, _ in item.parts] == ["upsert", "add_tag"]  # each sent alone if poison


def test_a_remove_tag_never_folds() -> None:
    lane = Lane("u1")
    lane.push(upsert({"email": "a@x.io"}), 1)
    assert not lane.push(tag("remove_tag", "trial"), 2)
    assert [i.call.kind for i in drain(lane)] == ["upsert", "remove_tag"]


def test_an_add_tag_folds_only_into_the_tail_by_name_of_the_same_contact() -> None:
    behind_track, by_id, other, opted_out = Lane("u1"), Lane("u1"), Lane("u1"), Lane("u1")
    behind_track.push(upsert({"email": "a@x.io"}), 1)
    behind_track.push(track("login"), 2)
    assert not behind_track.push(tag("add_tag", "paying"), 3)
    by_id.push(upsert({"email": "a@x.io"}), 1)
    id_tag = MeisaCall(kind="add_tag", body={"email": "a@x.io", "tag_id": "t9"}, contact_key="u1")
    assert not by_id.push(id_tag, 2)  # tag_names carries names only
    other.push(upsert({"email": "a@x.io", "external_id": "u1"}), 1)
    assert not other.push(tag("add_tag", "paying", external_id="u2"), 2)
    same = Lane("u1")
    same.push(upsert({"email": "a@x.io", "external_id": "u1"}), 1)
    assert same.push(tag("add_tag", "paying", external_id="u1", email="A@X.io"), 2)
    opted_out.push(upsert({"email": "a@x.io"}), 1)
    assert not opted_out.push(tag("add_tag", "paying", coalesce=False), 2)


def apply_call(state: dict[str, Any], call: MeisaCall) -> dict[str, Any]:
    if call.kind == "upsert":
        return apply_upsert(state, dict(call.body))
    tags = [t for t in state.get("tag_names", []) if t != call.body.get("tag_name")]
    if call.kind == "add_tag":
        tags.append(call.body["tag_name"])
    return {**state, "tag_names": tags} if call.kind in ("add_tag", "remove_tag") else state


tag_calls = st.tuples(
    st.sampled_from(["add_tag", "remove_tag"]), st.sampled_from(["t1", "t2", "t3"])
).map(lambda kn: tag(*kn))


@given(initial=bodies, seq=st.lists(st.one_of(calls, tag_calls), max_size=12))
def test_folded_tags_leave_the_tags_the_calls_one_by_one_would(
    initial: dict[str, Any], seq: list[MeisaCall]
) -> None:
    lane = Lane("u1")
    for i, call in enumerate(seq):
        lane.push(call, i)
    one_by_one = folded = apply_upsert({}, initial)
    for call in seq:
        one_by_one = apply_call(one_by_one, call)
    items = drain(lane)
    for item in items:
        folded = apply_call(folded, item.call)
    assert set(folded.get("tag_names", [])) == set(one_by_one.get("tag_names", []))
    assert [m for item in items for m in item.messages()] == list(range(len(seq)))
    assert all(i.call.kind != "add_tag" or not i.merged for i in items)
