"""Per-contact pending queues where adjacent upserts of one contact merge while they wait.

Each queued `Pending` is one call to send plus its `parts`: the original calls it stands for and
the message each came from. A merged upsert completes every part at once; if Meisa rejects a merged
upsert, the dispatcher re-sends the parts one by one so only the message at fault is dead-lettered.
Only *adjacent* upserts merge: a track or trigger between two upserts keeps them apart, because it
may depend on the state the first upsert creates.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from bridge.meisa.calls import MeisaCall, merge_upserts

M = TypeVar("M")
_arrivals = itertools.count()  # arrival order of queued calls, kept when two lanes fold into one


@dataclass(eq=False)
class Pending(Generic[M]):
    """One call waiting for its contact's turn; `parts` are the (call, message) pairs it carries."""

    call: MeisaCall
    parts: list[tuple[MeisaCall, M]] = field(default_factory=list)
    seq: int = field(default_factory=lambda: next(_arrivals))
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


class ContactQueues(Generic[M]):
    """FIFO of pending calls per queue key (the contact key unless the caller names another, e.g.
    partition and contact). Not thread-safe: one event loop."""

    def __init__(self) -> None:
        self._queues: dict[Hashable, deque[Pending[M]]] = {}
        self.merged_total = 0

    def push(self, call: MeisaCall, message: M, key: Hashable | None = None) -> bool:
        """Queue `call`; returns True when it merged into the upsert waiting at the tail."""
        queue = self._queues.setdefault(call.contact_key if key is None else key, deque())
        if queue and can_merge(queue[-1].call, call):
            merge_into(queue[-1], call, message)
            self.merged_total += 1
            return True
        queue.append(Pending(call, [(call, message)]))
        return False

    def peek(self, key: Hashable) -> Pending[M] | None:
        """The next call of `key` without taking it (it may still absorb later upserts)."""
        queue = self._queues.get(key)
        return queue[0] if queue else None

    def pop(self, key: Hashable) -> Pending[M] | None:
        """The next call of `key`, or None (and the key is forgotten) when nothing waits."""
        queue = self._queues.get(key)
        if not queue:
            self._queues.pop(key, None)
            return None
        item = queue.popleft()
        if not queue:
            del self._queues[key]
        return item

    def drop(self, key: Hashable) -> list[Pending[M]]:
        """Forget everything queued under `key`; returns it."""
        return list(self._queues.pop(key, ()))

    def waiting(self, key: Hashable | None = None) -> int:
        """Pending calls for one contact or in total."""
        if key is not None:
            return len(self._queues.get(key, ()))
        return sum(len(q) for q in self._queues.values())

    def keys(self) -> list[Hashable]:
        return list(self._queues)
