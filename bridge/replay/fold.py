"""Fold a contact's upserts and tag changes across a whole replay range into one final state.

Sending every historical upsert spends the rate budget on calls that change nothing; Meisa only
needs the state the contact ends in. For each contact key:

- upserts merge like `bridge.meisa.calls.merge_upserts` (later scalars win, custom_fields merge
  shallowly, tag_names union, the first source is kept);
- every tag operation (an upsert's tag_names, add_tag, remove_tag) records the tag's LAST
  operation: a removal after an add cancels the add, an add after a removal cancels the removal;
- the result is one upsert with the final fields and the tags whose last operation was an add,
  then one remove_tag per tag whose last operation was a removal. Upsert's tag_names can only add.

Without any upsert in the range the tags go out as add_tag / remove_tag calls, so a contact that
does not exist is not created by the replay. Folding is associative: a fold of events 1..n
combined with a fold of n+1..m equals the fold of 1..m, which is what lets the state spill to disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bridge.meisa.calls import MeisaCall, merge_upserts

FOLDABLE = frozenset({"upsert", "add_tag", "remove_tag"})
IDENTITY_FIELDS = ("email", "external_id")

# ("tag_name" | "tag_id", value): names and ids of one tag cannot be told apart offline.
TagRef = tuple[str, str]


def tag_ref(body: Mapping[str, Any]) -> TagRef:
    if body.get("tag_name") not in (None, ""):
        return ("tag_name", str(body["tag_name"]))
    return ("tag_id", str(body.get("tag_id", "")))


@dataclass(slots=True)
class ContactFold:
    """The folded state of one contact. `tags` is ordered by each tag's last operation."""

    key: str
    upsert: MeisaCall | None = None
    tags: dict[TagRef, bool] = field(default_factory=dict)  # True: add, False: remove
    ident: dict[str, Any] = field(default_factory=dict)
    tag_rule: str = ""
    tag_action: int = 0

    def apply(self, call: MeisaCall) -> None:
        if call.kind == "upsert":
            self.upsert = call if self.upsert is None else merge_upserts(self.upsert, call)
            for name in call.body.get("tag_names", ()):
                self._set(("tag_name", str(name)), add=True)
        elif call.kind in ("add_tag", "remove_tag"):
            self._set(tag_ref(call.body), add=call.kind == "add_tag")
            self.ident = {k: call.body[k] for k in IDENTITY_FIELDS if k in call.body}
            self.tag_rule, self.tag_action = call.rule, call.action
        else:
            raise ValueError(f"{call.kind} does not fold")

    def _set(self, ref: TagRef, *, add: bool) -> None:
        self.tags.pop(ref, None)  # re-insert so the order follows the last operation
        self.tags[ref] = add

    def combine(self, later: ContactFold) -> None:
        """Fold `later` (the same contact, later events) into this one."""
        if later.upsert is not None:
            self.upsert = (
                later.upsert if self.upsert is None else merge_upserts(self.upsert, later.upsert)
            )
        for ref, add in later.tags.items():
            self._set(ref, add=add)
        if later.ident:
            self.ident = dict(later.ident)
            self.tag_rule, self.tag_action = later.tag_rule, later.tag_action

    def calls(self) -> list[MeisaCall]:
        """The calls that bring Meisa to this state: an upsert first, then the tag calls."""
        out: list[MeisaCall] = []
        pending = dict(self.tags)
        if self.upsert is not None:
            added = [ref[1] for ref, add in pending.items() if add and ref[0] == "tag_name"]
            for name in added:
                del pending[("tag_name", name)]
            body = {k: v for k, v in self.upsert.body.items() if k != "tag_names"}
            if added:
                body["tag_names"] = added
            out.append(replace(self.upsert, body=body))
        out.extend(self._tag_call(ref, add=add) for ref, add in pending.items())
        return out

    def _tag_call(self, ref: TagRef, *, add: bool) -> MeisaCall:
        ident = self.ident or {
            k: self.upsert.body[k] for k in IDENTITY_FIELDS if self.upsert and k in self.upsert.body
        }
        return MeisaCall(
            kind="add_tag" if add else "remove_tag",
            body={**ident, ref[0]: ref[1]},
            contact_key=self.key,
            rule=self.tag_rule,
            action=self.tag_action,
        )

    # -- persistence (the state file stores folds as JSON) --

    def to_json(self) -> dict[str, Any]:
        return {
            "upsert": call_to_json(self.upsert) if self.upsert is not None else None,
            "tags": [[ref[0], ref[1], add] for ref, add in self.tags.items()],
            "ident": self.ident,
            "tag_rule": self.tag_rule,
            "tag_action": self.tag_action,
        }

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> ContactFold:
        upsert = data.get("upsert")
        return cls(
            key=key,
            upsert=call_from_json(upsert) if upsert is not None else None,
            tags={(str(f), str(v)): bool(a) for f, v, a in data.get("tags", ())},
            ident=dict(data.get("ident", {})),
            tag_rule=str(data.get("tag_rule", "")),
            tag_action=int(data.get("tag_action", 0)),
        )


def call_to_json(call: MeisaCall) -> dict[str, Any]:
    return {
        "kind": call.kind,
        "body": dict(call.body),
        "contact_key": call.contact_key,
        "rule": call.rule,
        "action": call.action,
        "max_age": call.max_age,
        "on_replay": call.on_replay,
        "coalesce": call.coalesce,
    }


def call_from_json(data: Mapping[str, Any]) -> MeisaCall:
    return MeisaCall(
        kind=data["kind"],
        body=data["body"],
        contact_key=data["contact_key"],
        rule=data.get("rule", ""),
        action=int(data.get("action", 0)),
        max_age=data.get("max_age"),
        on_replay=data.get("on_replay", "send"),
        coalesce=bool(data.get("coalesce", True)),
    )
