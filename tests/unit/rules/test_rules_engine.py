"""RuleSet.map: matching, order, types, defaults, replay policy and mapping errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.config import load_rules
from bridge.errors import MappingError
from bridge.events import Envelope
from bridge.rules.loader import parse_duration

ROOT = Path(__file__).resolve().parents[3]


def _rules(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return load_rules(path)


def _env(type_: str | None, data: Any, **kw: Any) -> Envelope:
    return Envelope(
        topic=kw.pop("topic", "app"), partition=0, offset=7, type=type_, data=data, **kw
    )


RULES = """\
rules:
  - name: first
    on: [user.*]
    do:
      - upsert:
          email: "{{ data.email }}"
          external_id: "{{ data.id }}"
          custom_fields: {n: "{{ data.n }}", flag: "{{ data.flag }}", gone: "{{ data.nope }}"}
  - name: second
    on: {type: user.signed_up, topic: app}
    when: data.n > `1`
    do:
      - track: {email: "{{ data.email }}", event_name: "signed up {{ data.n }}"}
      - trigger: {trigger_key: welcome, to_email: "{{ data.email }}"}
        max_age: 1h30m
"""


def test_calls_come_in_rule_then_action_order_with_json_types(tmp_path: Path) -> None:
    rules = _rules(tmp_path, RULES)
    env = _env("user.signed_up", {"email": "A@B.io", "id": 42, "n": 2, "flag": False}, id="e-1")
    calls = rules.map(env)
    assert [(c.rule, c.action, c.kind) for c in calls] == [
        ("first", 0, "upsert"),
        ("second", 0, "track"),
        ("second", 1, "trigger"),
    ]
    upsert, track, trigger = calls
    assert upsert.body == {
        "email": "A@B.io",
        "external_id": "42",
        "custom_fields": {"n": 2, "flag": False},
    }
    assert upsert.contact_key == "42"
    assert upsert.coalesce is True
    assert track.body["event_name"] == "signed up 2"
    assert trigger.body["idempotency_key"] == "e-1:second:1"
    assert trigger.max_age == 5400.0
    assert trigger.on_replay == "skip"
    assert track.on_replay == "skip"
    assert upsert.on_replay == "send"


def test_when_and_topic_filter_rules(tmp_path: Path) -> None:
    rules = _rules(tmp_path, RULES)
    assert [c.rule for c in rules.map(_env("user.signed_up", {"email": "a@b.c", "n": 1}))] == [
        "first"
    ]
    other_topic = _env("user.signed_up", {"email": "a@b.c", "n": 5}, topic="x")
    assert [c.rule for c in rules.map(other_topic)] == ["first"]
    assert rules.map(_env("billing.x", {"email": "a@b.c"})) == []
    assert rules.map(_env(None, {"email": "a@b.c"})) == []


def test_default_idempotency_key_falls_back_to_topic_partition_offset(tmp_path: Path) -> None:
    rules = _rules(tmp_path, RULES)
    (trigger,) = [
        c
        for c in rules.map(_env("user.signed_up", {"email": "a@b.c", "n": 3}))
        if c.kind == "trigger"
    ]
    assert trigger.body["idempotency_key"] == "app/0/7:second:1"
    long_id = _env("user.signed_up", {"email": "a@b.c", "n": 3}, id="x" * 300)
    key = next(c for c in rules.map(long_id) if c.kind == "trigger").body["idempotency_key"]
    assert key.startswith("sha256:")
    assert len(key) == 71


def test_replay_drops_actions_whose_on_replay_is_skip(tmp_path: Path) -> None:
    rules = _rules(tmp_path, RULES)
    calls = rules.map(_env("user.signed_up", {"email": "a@b.c", "n": 3}), replay=True)
    assert [c.kind for c in calls] == ["upsert"]


def test_required_field_that_evaluates_to_null_is_a_mapping_error(tmp_path: Path) -> None:
    rules = _rules(tmp_path, RULES)
    with pytest.raises(MappingError) as info:
        rules.map(_env("user.signed_up", {"n": 0}))
    err = info.value
    assert (err.rule, err.action, err.field) == ("first", 0, "email")
    assert err.stage == "map"


def test_wrong_value_type_is_a_mapping_error(tmp_path: Path) -> None:
    text = (
        "rules:\n  - name: r\n    on: t\n    do:\n"
        '      - upsert: {email: a@b.c, custom_fields: "{{ data.cf }}"}\n'
    )
    rules = _rules(tmp_path, text)
    with pytest.raises(MappingError, match="custom_fields: expected an object"):
        rules.map(_env("t", {"cf": [1, 2]}))


def test_scopes_needed_lists_rules_per_scope() -> None:
    rules = load_rules(ROOT / "examples" / "rules.yaml")
    scopes = rules.scopes_needed()
    assert set(scopes) == {"contacts:write", "events:track", "emails:trigger", "sequences:enroll"}
    assert scopes["sequences:enroll"] == ["signup"]
    assert "otp-email" in scopes["emails:trigger"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("1h", 3600),
        ("1d", 86400),
        ("1h30m", 5400),
        ("500ms", 0.5),
        (5, 5),
    ],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10 minutes", "", "0s", "-1", True, "1x"])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
