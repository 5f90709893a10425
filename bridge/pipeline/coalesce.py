"""Adjacent upserts of one contact merge while they wait in its lane (bridge.pipeline.lanes).

Each queued `Pending` is one call to send plus its `parts`: the original calls it stands for and
the message each came from. A merged upsert completes every part at once; if Meisa rejects a merged
upsert, the dispatcher re-sends the parts one by one so only the message at fault is dead-lettered.
Only *adjacent* upserts merge: a track or trigger between two upserts keeps them apart, because it
may depend on the state the first upsert creates.

An add_tag (by tag name) right behind its person's queued upsert folds into it as one more of the
upsert's `tag_names`: Meisa adds those tags (creating missing ones) exactly as add_tag does, in
the same request. Only the tail folds, so the tag still lands after everything queued before it,
and a remove_tag never folds (an upsert only adds tags). A rule opts out of both with
`coalesce: false` on either action.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from bridge.meisa.calls import MeisaCall, fold_tag, folds_into, merge_upserts

M = TypeVar("M")
_arrivals = itertools.count()  # arrival order of queued calls, kept when two lanes fold into one


@dataclass(eq=False)
class Pending(Generic[M]):
    """One call waiting for its contact's turn; `parts` are the (call, message) pairs it carries."""

    call: MeisaCall
    parts: list[tuple[MeisaCall, M]] = field(default_factory=list)
    seq: int = field(default_factory=_arrivals.__next__)
    attempts: int = 0  # 404s answered so far (the contact was missing)
    waiting_since: float | None = None  # when the first 404 came
    created: bool = False  # a minimal upsert was sent for it (create_contact)

    @property
    def merged(self) -> bool:
        return len(self.parts) > 1

    def messages(self) -> list[M]:
        return [message for _, message in self.parts]


def can_merge(waiting: MeisaCall, new: MeisaCall) -> bool:
    """Two upserts merge unless either rule opted out with `coalesce: false`."""
    return (
        waiting.kind == "upsert"
        and new.kind == "upsert"
        and waiting.coalesce
        and new.coalesce
        and waiting.contact_key == new.contact_key
    )


def merge_into(tail: Pending[M], call: MeisaCall, message: M) -> None:
    """Fold a new upsert into the upsert waiting at the tail of a queue."""
    tail.call = merge_upserts(tail.call, call)
    tail.parts.append((call, message))


def can_fold(waiting: MeisaCall, new: MeisaCall) -> bool:
    """An add_tag by name folds into the upsert waiting at the tail of its person's lane."""
    return folds_into(waiting, new)


def fold_into(tail: Pending[M], call: MeisaCall, message: M) -> None:
    """Fold an add_tag into the upsert waiting at the tail of a queue."""
    tail.call = fold_tag(tail.call, call)
    tail.parts.append((call, message))
