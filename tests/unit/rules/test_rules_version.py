"""The rules version: a content hash that ignores formatting and follows every change."""

from __future__ import annotations

from bridge.rules.loader import compile_rules
from bridge.yamlio import parse_yaml

A = """\
- name: otp      # a comment
  on: auth.otp
  do:
    - trigger: {trigger_key: code, to_email: "{{ data.email }}"}
"""
A_REFORMATTED = """\
- on: auth.otp
  name: otp
  do:
    - trigger:
        to_email: "{{ data.email }}"
        trigger_key: code
"""
B = A.replace("trigger_key: code", "trigger_key: code2")


def version(text: str) -> str:
    node, errors = parse_yaml(text, file="rules.yaml")
    assert errors == []
    rules, found = compile_rules(node, file="rules.yaml")
    assert found == []
    return rules.version


def test_the_same_rules_in_another_layout_have_the_same_version() -> None:
    assert version(A) == version(A_REFORMATTED)
    assert len(version(A)) == 12


def test_any_changed_value_changes_the_version() -> None:
    assert version(A) != version(B)
