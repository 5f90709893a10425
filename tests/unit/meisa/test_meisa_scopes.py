"""Start-up scope check."""

from __future__ import annotations

import pytest

from bridge.errors import HaltError, MissingScopes
from bridge.meisa.scopes import check_scopes, format_missing, missing_scopes

ALL = [
    "contacts:read",
    "contacts:write",
    "events:track",
    "sequences:read",
    "sequences:enroll",
    "emails:trigger",
]


def test_nothing_missing_with_every_scope() -> None:
    assert missing_scopes({"emails:trigger": ["otp"], "contacts:write": ["sync"]}, ALL) == {}


def test_missing_scope_lists_the_rules_that_need_it() -> None:
    needed = {"emails:trigger": ["otp", "receipt"], "contacts:write": ["sync"]}
    assert missing_scopes(needed, ["contacts:write"]) == {"emails:trigger": ["otp", "receipt"]}


def test_tags_need_contacts_write_not_tags_write() -> None:
    needed = {"tags:write": ["tag-churned"]}
    assert missing_scopes(needed, ["tags:write"]) == {"contacts:write": ["tag-churned"]}
    assert missing_scopes(needed, ["contacts:write"]) == {}


def test_refusal_names_scope_and_rules() -> None:
    with pytest.raises(MissingScopes) as info:
        check_scopes({"events:track": ["feature-used"]}, ["contacts:write"])
    assert isinstance(info.value, HaltError)
    assert "events:track: needed by feature-used" in str(info.value)


def test_format_lists_one_line_per_scope() -> None:
    text = format_missing({"a:b": ["r1", "r2"], "c:d": ["r3"]})
    assert "  a:b: needed by r1, r2" in text
    assert "  c:d: needed by r3" in text
