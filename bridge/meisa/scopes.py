"""Start-up scope check: which scopes the rules need that the API key does not have.

Tag changes are authorised by contacts:write; the spec's tags:write scope enforces nothing, so
needing "tags:write" means needing contacts:write, and a key that has only tags:write cannot tag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bridge.errors import MissingScopes

# Scopes that authorise nothing on their own, and the scope that does the work instead.
_EFFECTIVE: Mapping[str, str] = {"tags:write": "contacts:write"}


def missing_scopes(
    needed: Mapping[str, list[str]], key_scopes: Iterable[str]
) -> dict[str, list[str]]:
    """scope -> rules needing it, for every needed scope the key lacks (sorted, rules deduped)."""
    have = set(key_scopes)
    missing: dict[str, list[str]] = {}
    for scope, rules in needed.items():
        effective = _EFFECTIVE.get(scope, scope)
        if effective not in have:
            missing.setdefault(effective, [])
            missing[effective].extend(r for r in rules if r not in missing[effective])
    return dict(sorted(missing.items()))


def format_missing(missing: Mapping[str, list[str]]) -> str:
    """One line per scope: the scope, then the rules that need it."""
    lines = ["the Meisa API key lacks scopes the rules need:"]
    for scope, rules in missing.items():
        names = ", ".join(rules) if rules else "(no rule named)"
        lines.append(f"  {scope}: needed by {names}")
    lines.append("add them to the key in Meisa (Settings -> API Keys) or change the rules")
    return "\n".join(lines)


def check_scopes(needed: Mapping[str, list[str]], key_scopes: Iterable[str]) -> None:
    """Raise MissingScopes (a HaltError) naming each missing scope and its rules."""
    missing = missing_scopes(needed, key_scopes)
    if missing:
        raise MissingScopes(format_missing(missing))
