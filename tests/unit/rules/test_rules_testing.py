"""`meisa-bridge test`: the shipped example tests pass, a broken rule fails with a field diff,
bad test files are reported by file, line and field, and reports work for CI (JUnit XML)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bridge.cli import main
from bridge.rules.ruletest import diff_values
from bridge.rules.testcommand import run_file
from bridge.rules.testfile import Matcher

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"

RULES = """\
rules:
  - name: welcome
    on: user.signed_up
    do:
      - upsert:
          email: "{{ data.email }}"
          custom_fields: { plan: "{{ data.plan }}" }
      - trigger:
          trigger_key: welcome
          to_email: "{{ data.email }}"
        max_age: 10m
"""

TESTS = """\
tests:
  - name: signup
    event: {type: user.signed_up, id: e1, time: 2026-01-01T00:00:00Z,
            data: {email: a@example.com, plan: pro}}
    expect:
      calls:
        - upsert: {email: a@example.com, custom_fields: {plan: pro}}
          rule: welcome
        - trigger: {trigger_key: welcome, to_email: a@example.com, idempotency_key: {$any: true}}
"""


def _write(tmp_path: Path, rules: str = RULES, tests: str = TESTS) -> Path:
    (tmp_path / "rules.yaml").write_text(rules, encoding="utf-8")
    path = tmp_path / "rules.test.yaml"
    path.write_text(tests, encoding="utf-8")
    return path


def test_the_shipped_example_tests_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert " 0 failed" in out


def test_a_broken_example_rule_fails_with_the_field_that_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(EXAMPLES / "rules.test.yaml", tmp_path)
    rules = (EXAMPLES / "rules.yaml").read_text(encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(
        rules.replace("sequence_slug: onboarding", "sequence_slug: welcome")
    )
    assert main(["test", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "body.sequence_slug: expected 'onboarding', got 'welcome'" in out
    assert "16 passed, 1 failed" in out


def test_exact_match_reports_missing_extra_and_changed_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = RULES.replace('plan: "{{ data.plan }}"', 'tier: "{{ data.plan }}"')
    path = _write(tmp_path, rules=rules.replace("trigger_key: welcome", "trigger_key: hello"))
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert "body.custom_fields.plan: missing (expected 'pro')" in out
    assert "body.custom_fields.tier: not expected (got 'pro')" in out
    assert "call 2 trigger (rule welcome): body.trigger_key: expected 'welcome', got 'hello'" in out


def test_a_missing_call_and_an_extra_call_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = TESTS.replace(
        "        - trigger:", "        - track: {event_name: x}\n        - trigger:"
    )
    assert main(["test", str(_write(tmp_path, tests=tests))]) == 1
    out = capsys.readouterr().out
    assert "call 2: expected track, got trigger (rule welcome)" in out
    assert "call 3: expected trigger, got no call" in out


def test_subset_matches_expected_calls_in_order_among_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = """\
tests:
  - name: only the trigger matters
    event: {type: user.signed_up, id: e1, data: {email: a@example.com, plan: pro}}
    expect:
      match: subset
      calls:
        - trigger: {to_email: {$regex: ".*@example[.]com"}}
  - name: order counts
    event: {type: user.signed_up, id: e1, data: {email: a@example.com, plan: pro}}
    expect:
      match: subset
      calls:
        - trigger: {trigger_key: welcome}
        - upsert: {}
"""
    assert main(["test", str(_write(tmp_path, tests=tests))]) == 1
    out = capsys.readouterr().out
    assert "ok    only the trigger matters" in out
    assert "FAIL  order counts" in out
    assert "expected call 2: no upsert among no calls" in out


def test_age_makes_a_call_stale_past_its_max_age(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = RULES.replace("      - upsert:", "      - upsert:\n          external_id: x\n", 1)
    tests = """\
tests:
  - name: eleven minutes late the trigger is dropped, the upsert still goes
    event: {type: user.signed_up, id: e1, time: 2026-01-01T00:00:00Z, data: {email: a@x.io}}
    age: 11m
    expect:
      match: subset
      calls: [{upsert: {}}]
  - name: a fixed clock works too
    event: {type: user.signed_up, id: e1, time: 2026-01-01T00:00:00Z, data: {email: a@x.io}}
    now: 2026-01-01T00:05:00Z
    expect:
      calls: [{upsert: {}}, {trigger: {}}]
      match: subset
"""
    assert main(["test", str(_write(tmp_path, rules=rules, tests=tests))]) == 0, capsys.readouterr()


def test_outcomes_and_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tests = """\
tests:
  - name: unknown type
    event: {type: other, data: {}}
    expect: {outcome: no_match, reason: no rule matched}
  - name: no email
    event: {type: user.signed_up, data: {}}
    expect: {outcome: map_error, reason: {$regex: ".*email.*"}}
  - name: wrong expectation
    event: {type: user.signed_up, data: {email: a@b.co}}
    expect: {outcome: no_match}
"""
    assert main(["test", str(_write(tmp_path, tests=tests))]) == 1
    out = capsys.readouterr().out
    assert "ok    unknown type" in out
    assert "ok    no email" in out
    assert "outcome: expected no_match, got calls: [upsert (rule welcome), trigger" in out


def test_bad_test_files_name_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = """\
tests:
  - name: one
    event: {type: x}
    expect:
      calls:
        - upsert: {email: {$regexp: x}}
  - name: two
    events: []
    expect: {outcome: gone}
"""
    path = _write(tmp_path, tests=tests)
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:6: tests[0] (one).expect.calls[0].upsert.email: unknown matcher $regexp" in out
    assert f"{path}:8: tests[1] (two).events: expected a non-empty list" in out
    assert f"{path}:9: tests[1] (two).expect.outcome: expected one of" in out


def test_rules_that_do_not_load_are_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, rules="rules:\n  - name: r\n    on: x\n    do: [{upsert: {}}]\n")
    assert main(["test", str(path)]) == 1
    assert "rules under test:" in capsys.readouterr().out


def test_no_test_files_is_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(tmp_path / "*.test.yaml")]) == 1
    assert "no test files" in capsys.readouterr().err


def test_glob_and_rules_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "team").mkdir()
    _write(tmp_path / "team")
    other = tmp_path / "new.yaml"
    other.write_text(RULES.replace("trigger_key: welcome", "trigger_key: hi"), encoding="utf-8")
    pattern = str(tmp_path / "**" / "*.test.yaml")
    assert main(["test", pattern]) == 0
    assert main(["test", "--rules", str(other), pattern]) == 1
    assert "expected 'welcome', got 'hi'" in capsys.readouterr().out


def test_junit_report_counts_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = TESTS.split("tests:\n")[1].replace("name: signup", "name: wrong")
    path = _write(tmp_path, tests=TESTS + wrong.replace("plan: pro}}", "plan: x}}", 1))
    report = tmp_path / "junit.xml"
    assert main(["test", str(path), "--format", "junit", "--output", str(report)]) == 1
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failure = suite.find("testcase[@name='wrong']/failure")
    assert failure is not None
    assert "body.custom_fields.plan: expected 'pro', got 'x'" in (failure.text or "")
    assert "1 passed, 1 failed" in capsys.readouterr().out


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(JSON)
def test_a_value_matches_itself_exactly(value: Any) -> None:
    assert diff_values(value, value, "body", partial=False) == []


@given(JSON, JSON)
def test_any_matcher_matches_every_present_value(value: Any, other: Any) -> None:
    assert diff_values({"f": Matcher("any", True)}, {"f": value, "g": other}, "body", True) == []
    assert diff_values({"f": Matcher("absent", True)}, {"f": value}, "body", True) != []


def test_true_is_not_one_and_one_is_one_point_zero() -> None:
    assert diff_values(1, True, "x", partial=False) == ["x: expected 1, got True"]
    assert diff_values(1, 1.0, "x", partial=False) == []
    assert diff_values(Matcher("type", "integer"), True, "x", partial=False) != []


def test_a_value_json_cannot_hold_is_an_error_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = "tests:\n  - name: huge\n    event: {type: x, data: {n: 18446744073709551616}}\n"
    path = _write(tmp_path, tests=tests + "    expect: {outcome: no_match}\n")
    assert main(["test", str(path)]) == 1
    assert f"{path}:3: tests[0] (huge).event: cannot be written as JSON" in capsys.readouterr().out


KEYS = st.sampled_from(
    [
        "tests",
        "name",
        "event",
        "events",
        "message",
        "expect",
        "calls",
        "outcome",
        "reason",
        "match",
        "upsert",
        "trigger",
        "rule",
        "age",
        "now",
        "value",
        "$any",
        "$regex",
        "x",
    ]
)
DOCS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)


@given(DOCS)
def test_any_yaml_document_is_reported_never_a_crash(doc: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), tests=yaml.safe_dump(doc))
        report = run_file(str(path))
    assert report.errors or report.results
