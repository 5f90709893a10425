"""RuleSet: Envelope -> [MeisaCall], in rule order then action order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bridge.errors import EvaluationError, MappingError
from bridge.events import Envelope
from bridge.meisa.calls import SCOPES, MeisaCall
from bridge.rules.expressions import truthy
from bridge.rules.models import Action, Rule

# (type, topic) -> matching rules; bounded because event types come from the outside.
_MATCH_CACHE_SIZE = 4096


class RuleSet:
    """The compiled rules of one file. Immutable after construction; safe to share.

    `version` names the rules' content (bridge.rules.loader.rules_version): the same rules give
    the same version whatever file or formatting they came in."""

    __slots__ = ("_match_cache", "rules", "source", "version")

    def __init__(
        self, rules: tuple[Rule, ...] = (), *, source: str = "<memory>", version: str = ""
    ) -> None:
        self.rules = rules
        self.source = source
        self.version = version
        self._match_cache: dict[tuple[str | None, str], tuple[Rule, ...]] = {}

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __repr__(self) -> str:
        return f"RuleSet({len(self.rules)} rules from {self.source})"

    def matching(self, event_type: str | None, topic: str) -> tuple[Rule, ...]:
        """The rules whose `on:` matches (before `when`), in file order."""
        key = (event_type, topic)
        hit = self._match_cache.get(key)
        if hit is None:
            hit = tuple(r for r in self.rules if r.on.matches(event_type, topic))
            if len(self._match_cache) >= _MATCH_CACHE_SIZE:
                self._match_cache.clear()
            self._match_cache[key] = hit
        return hit

    def map(self, envelope: Envelope, *, replay: bool = False) -> list[MeisaCall]:
        """Every call the rules make for this event. Raises MappingError (stage "map").

        With `replay=True` actions whose `on_replay` is `skip` are left out.
        """
        rules = self.matching(envelope.type, envelope.topic)
        if not rules:
            return []
        ctx = envelope.context()
        calls: list[MeisaCall] = []
        for rule in rules:
            if rule.when is not None and not rule.applies(ctx):
                continue
            for action in rule.actions:
                if replay and action.on_replay == "skip":
                    continue
                if action.when is None or _action_applies(rule.name, action, ctx):
                    calls.append(action.build(rule.name, envelope, ctx))
        return calls

    def scopes_needed(self) -> dict[str, list[str]]:
        """scope -> names of the rules that need it (file order, no repeats)."""
        needed: dict[str, list[str]] = {}
        for rule in self.rules:
            for action in rule.actions:
                scopes = [SCOPES[action.kind]]
                if action.create_contact:
                    scopes.append(SCOPES["upsert"])
                for scope in scopes:
                    names = needed.setdefault(scope, [])
                    if rule.name not in names:
                        names.append(rule.name)
        return needed


def _action_applies(rule: str, action: Action, ctx: dict[str, Any]) -> bool:
    if action.when is None:
        return True
    try:
        return truthy(action.when(ctx))
    except EvaluationError as exc:
        raise MappingError(
            f"rule '{rule}' action {action.index} ({action.kind}): when: {exc}",
            rule=rule,
            action=action.index,
            field="when",
        ) from None
