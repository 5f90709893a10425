"""plan's input lines: a malformed raw message is one decode_error outcome, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.codecs import build_decoder
from bridge.config import load_rules
from bridge.rules.plan import plan_lines, row_json
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
