"""`validate` names file, line, rule and field for every class of error, and reports all of them."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bridge.config import load_config, load_rules
from bridge.errors import ConfigError, ConfigErrors
from bridge.rules.commands import plan_command, validate_command

GOOD = """\
rules:
  - name: ok
    on: user.signed_up
    do:
      - upsert:
          email: "{{ data.email }}"
"""


def _errors(tmp_path: Path, text: str) -> list[ConfigError]:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_rules(path)
    return info.value.errors


def _one(tmp_path: Path, text: str) -> ConfigError:
    errors = _errors(tmp_path, text)
    assert len(errors) == 1, [e.format() for e in errors]
    return errors[0]


def _rule(body: str, *, options: str = "", name: str = "r1") -> str:
    return f"rules:\n  - name: {name}\n    on: user.signed_up\n    do:\n      - {body}\n{options}"


def test_good_file_validates_with_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert validate_command(argparse.Namespace(rules=[str(path)])) == 0
    assert capsys.readouterr().out == f"{path}: ok: 1 rules\n"


def test_unknown_rule_key_names_line_and_field(tmp_path: Path) -> None:
    err = _one(tmp_path, GOOD + "    wen: data.x\n")
    assert (err.line, err.rule, err.field) == (7, "ok", "wen")
    assert err.file is not None
    assert err.file.endswith("rules.yaml")


def test_unknown_action_is_reported_at_its_line(tmp_path: Path) -> None:
    err = _one(tmp_path, _rule("upsrt: {email: a@b.c}"))
    assert (err.line, err.rule, err.field) == (5, "r1", "do[0]")
    assert "unknown action 'upsrt'" in err.message


def test_missing_required_field_per_spec(tmp_path: Path) -> None:
    err = _one(tmp_path, _rule("trigger: {trigger_key: otp}"))
    assert err.line == 5
    assert err.field == "do[0].trigger.to_email"
    assert "required" in err.message


def test_track_needs_email_or_external_id(tmp_path: Path) -> None:
    err = _one(tmp_path, _rule("track: {event_name: x}"))
    assert err.field == "do[0].track.email/external_id"


def test_field_the_spec_says_does_not_exist_names_the_spec(tmp_path: Path) -> None:
    err = _one(tmp_path, _rule("upsert:\n          email: a@b.c\n          tags: [x]"))
    assert (err.line, err.field) == (7, "do[0].upsert.tags")
    assert "spec" in err.message
    assert "NO" in err.message


def test_unknown_body_field(tmp_path: Path) -> None:
    err = _one(tmp_path, _rule("enroll: {email: a@b.c, sequence_slug: s, sequence: x}"))
    assert err.field == "do[0].enroll.sequence"


def test_bad_jmespath_in_when_and_in_a_value(tmp_path: Path) -> None:
    text = _rule('upsert: {email: "{{ data.[ }}"}').replace(
        "    do:", "    when: data.x ==\n    do:"
    )
    errors = _errors(tmp_path, text)
    by_field = {e.field: e for e in errors}
    assert by_field["when"].line == 4
    assert by_field["do[0].upsert.email"].line == 6
    assert "JMESPath" in by_field["when"].message


def test_bad_duration_and_on_replay_and_coalesce(tmp_path: Path) -> None:
    text = _rule(
        "trigger: {trigger_key: k, to_email: a@b.c}",
        options="        max_age: 10 minutes\n        on_replay: maybe\n        coalesce: false\n",
    )
    errors = {e.field: e for e in _errors(tmp_path, text)}
    assert errors["do[0].max_age"].line == 6
    assert errors["do[0].on_replay"].line == 7
    assert errors["do[0].coalesce"].line == 8
    assert "only upsert, add_tag, enroll coalesce" in errors["do[0].coalesce"].message


def test_create_contact_is_a_bool_on_calls_that_need_a_contact(tmp_path: Path) -> None:
    err = _one(tmp_path, _rule("upsert: {email: a@b.c}", options="        create_contact: true\n"))
    assert (err.field, err.line) == ("do[0].create_contact", 6)
    assert "only track, add_tag, remove_tag" in err.message
    err = _one(
        tmp_path,
        _rule("track: {email: a@b.c, event_name: e}", options="        create_contact: yes!\n"),
    )
    assert "must be true or false" in err.message


def test_create_contact_reaches_the_call_and_needs_contacts_write(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        _rule("track: {email: a@b.c, event_name: e}", options="        create_contact: true\n")
    )
    rules = load_rules(path)
    assert rules.rules[0].actions[0].create_contact is True
    assert rules.scopes_needed() == {"events:track": ["r1"], "contacts:write": ["r1"]}


def test_literal_source_must_be_a_spec_value(tmp_path: Path) -> None:
    err = _one(tmp_path, _rule("upsert: {email: a@b.c, source: website}"))
    assert err.field == "do[0].upsert.source"
    assert "signup" in err.message


def test_duplicate_rule_names_and_missing_on(tmp_path: Path) -> None:
    text = GOOD + "  - name: ok\n    do:\n      - upsert: {email: x@y.z}\n"
    errors = _errors(tmp_path, text)
    assert {(e.line, e.field) for e in errors} == {(7, "name"), (7, "on")}


def test_every_error_is_collected_and_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "rules:\n"
        "  - name: a\n    on: x\n    do:\n      - upsert: {name: n}\n"
        "  - name: b\n    on: y\n    do:\n      - tweet: {}\n",
        encoding="utf-8",
    )
    assert validate_command(argparse.Namespace(rules=[str(path)])) == 1
    lines = capsys.readouterr().err.splitlines()
    assert f"{path}:5: rule 'a': do[0].upsert.name: the Meisa spec says" in lines[0]
    assert any(
        line.startswith(f"{path}:5: rule 'a': do[0].upsert.email: required") for line in lines
    )
    assert any(
        line.startswith(f"{path}:9: rule 'b': do[0]: unknown action 'tweet'") for line in lines
    )


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    err = _one(tmp_path, "rules:\n  - name: [oops\n")
    assert err.line is not None
    assert "YAML" in err.message


def test_unset_env_variable_is_an_error_in_strict_loading(tmp_path: Path) -> None:
    from bridge.config import load_config

    path = tmp_path / "bridge.yaml"
    path.write_text("topics: [a]\nmeisa:\n  base_url: ${SURELY_UNSET_VAR_X}\n", encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    (err,) = info.value.errors
    assert err.line == 3
    assert "SURELY_UNSET_VAR_X" in err.message
    assert load_config(path, strict_env=False).meisa.base_url == ""


@pytest.mark.parametrize("topics", ['["${SURELY_UNSET_TOPIC_X}"]', '"${SURELY_UNSET_TOPIC_X}"'])
def test_topic_from_an_unset_variable_passes_validate_and_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], topics: str
) -> None:
    path = _write(tmp_path, f"topics: {topics}\n" + GOOD)
    assert validate_command(argparse.Namespace(rules=[str(path)])) == 0
    assert capsys.readouterr().out == f"{path}: ok: 1 rules\n"
    events = tmp_path / "events.jsonl"
    events.write_text('{"id": "e1", "type": "user.signed_up", "data": {"email": "a@b.c"}}\n')
    plan = argparse.Namespace(rules=str(path), events=str(events), coalesce=False, format="json")
    assert plan_command(plan) == 0
    assert '"endpoint":"POST /contacts/upsert/"' in capsys.readouterr().out
    with pytest.raises(ConfigErrors):  # running still needs the variable
        load_config(path)


def test_empty_topic_name_is_still_an_error_when_running(tmp_path: Path) -> None:
    path = _write(tmp_path, 'topics: [""]\n' + GOOD)
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    assert info.value.errors[0].field == "topics"


def test_unclosed_expression_is_an_error_not_a_literal(tmp_path: Path) -> None:
    err = _one(tmp_path, _rule('upsert: {email: "{{ data.email "}'))
    assert (err.line, err.field) == (5, "do[0].upsert.email")
    assert "unclosed" in err.message


def test_expression_in_a_mapping_key_is_an_error(tmp_path: Path) -> None:
    text = _rule('upsert:\n          email: a@b.c\n          custom_fields: {"{{ data.k }}": 1}')
    err = _one(tmp_path, text)
    assert (err.line, err.field) == (7, "do[0].upsert.custom_fields")
    assert "key" in err.message


def test_a_rule_without_a_name_is_called_by_its_position(tmp_path: Path) -> None:
    text = GOOD + "  - on: x\n    do: []\n  - [1, 2]\n"
    errors = _errors(tmp_path, text)
    assert [(e.line, e.rule, e.field) for e in errors] == [
        (7, "#2", "name"),
        (8, "#2", "do"),
        (9, "#3", None),
    ]


def test_yaml_level_errors_inside_a_rule_name_the_rule(tmp_path: Path) -> None:
    text = (
        GOOD
        + "  - name: two\n    on: x\n    on: y\n    do:\n      - upsert: {email: a, email: b}\n"
    )
    errors = _errors(tmp_path, text)
    assert [(e.line, e.rule, e.field) for e in errors] == [
        (9, "two", "on"),
        (11, "two", "email"),
    ]


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    text = (
        GOOD.replace("  - name: ok", "  - &base\n    name: ok") + "  - <<: *base\n    name: two\n"
    )
    assert [r.name for r in load_rules(_write(tmp_path, text))] == ["ok", "two"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  name: a\n", "expected a list of rules"),
        ("rules:\n  - name: a\n    on: x\n    do:\n      upsert: {email: a}\n", "expected a list"),
    ],
)
def test_wrong_container_type_says_what_was_expected(
    tmp_path: Path, text: str, message: str
) -> None:
    err = _one(tmp_path, text)
    assert message in err.message
    assert f"{err.field}: {err.field}" not in err.format()


@pytest.mark.parametrize("text", ["", "# only a comment\n", "kafka:\n", "topics: [a]\n"])
def test_validate_fails_on_a_file_without_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = _write(tmp_path, text)
    assert validate_command(argparse.Namespace(rules=[str(path)])) == 1
    assert capsys.readouterr().err.startswith(f"{path}:1: rules: no rules")


def test_missing_rules_file_points_at_the_config_line(tmp_path: Path) -> None:
    err = _one(tmp_path, "topics: [a]\nrules_file: nope.yaml\n")
    assert (err.line, err.field) == (2, "rules_file")
    assert err.file is not None
    assert err.file.endswith("rules.yaml")
    assert "nope.yaml" in err.message


def test_tab_indentation_gets_a_hint(tmp_path: Path) -> None:
    err = _one(tmp_path, "rules:\n  - name: a\n\ton: x\n")
    assert err.line == 3
    assert "spaces" in err.message


def test_unclosed_flow_mapping_points_at_where_it_opened(tmp_path: Path) -> None:
    err = _one(tmp_path, _rule('upsert: {email: "x"'))
    assert err.line == 5
