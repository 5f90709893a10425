"""plan's input lines: a malformed raw message is one decode_error outcome, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.codecs import build_decoder
from bridge.config import load_rules
from bridge.rules.plan import coalesce_rows, plan_lines, row_json
from bridge.settings import CodecSettings

RULES = "rules:\n  - name: r\n    on: x\n    do:\n      - track: {email: a@b.c, event_name: e}\n"


@pytest.mark.parametrize(
    "line",
    [
        '{"topic": "t", "timestamp": "yesterday", "value": {"type": "x"}}',
        '{"topic": "t", "key": {"base64": "!!!"}, "value": {"type": "x"}}',
        '{"topic": "t", "value": {"base64": "not base64 at all"}}',
        '{"topic": "t", "headers": [["only-a-name"]], "value": {"type": "x"}}',
    ],
)
def test_a_malformed_raw_message_is_a_decode_error(tmp_path: Path, line: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, encoding="utf-8")
    rows = list(plan_lines([line], load_rules(path), build_decoder(CodecSettings())))
    assert [row_json(r).get("outcome") for r in rows] == ["decode_error"]
    assert "bad raw message" in row_json(rows[0])["reason"]


FOLDING = """rules:
  - name: signup
    on: signed_up
    do:
      - upsert: {email: "{{ data.email }}", external_id: "{{ data.id }}"}
      - add_tag: {external_id: "{{ data.id }}", tag_name: new}
      - remove_tag: {external_id: "{{ data.id }}", tag_name: churned}
  - name: onboard
    on: onboard
    do:
      - enroll: {email: "{{ data.email }}", sequence_slug: onboarding}
  - name: login
    on: login
    do:
      - track: {email: "{{ data.email }}", event_name: login}
"""


def _coalesced(tmp_path: Path, events: list[str]) -> list[dict[str, object]]:
    path = tmp_path / "rules.yaml"
    path.write_text(FOLDING, encoding="utf-8")
    rows = plan_lines(events, load_rules(path), build_decoder(CodecSettings()))
    return [row_json(r) for r in coalesce_rows(rows)]


def _event(kind: str, who: str) -> str:
    return f'{{"type": "{kind}", "data": {{"email": "{who}@x.io", "id": "{who}"}}}}'


def test_plan_coalesce_folds_an_add_tag_into_the_upsert_but_never_a_remove_tag(
    tmp_path: Path,
) -> None:
    rows = _coalesced(tmp_path, [_event("signed_up", "a")])
    assert [r["endpoint"] for r in rows] == [
        "POST /contacts/upsert/",
        "POST /contacts/{id}/remove_tag/",
    ]
    assert rows[0]["body"] == {"email": "a@x.io", "external_id": "a", "tag_names": ["new"]}
    assert rows[0]["coalesced_offsets"] == [0, 0]


def test_plan_coalesce_sends_enrolments_in_bulk_until_a_person_s_later_call(
    tmp_path: Path,
) -> None:
    events = [_event("onboard", w) for w in ("a", "b", "c")]
    events += [_event("login", "b"), _event("onboard", "d"), _event("onboard", "e")]
    rows = _coalesced(tmp_path, events)
    assert [(r["endpoint"], r["body"].get("emails")) for r in rows] == [  # type: ignore[union-attr]
        ("POST /sequences/api/bulk-enroll/", ["a@x.io", "b@x.io", "c@x.io"]),
        ("POST /events/track/", None),
        ("POST /sequences/api/bulk-enroll/", ["d@x.io", "e@x.io"]),
    ]
    assert rows[0]["coalesced_offsets"] == [0, 1, 2]
