"""The sent-email ledger: which trigger idempotency keys Meisa has already accepted.

Meisa remembers an `idempotency_key` for one hour. A trigger delivered again later (after a long
outage, a long rebalance, a replay or a DLQ redrive) would email the person a second time. The
Deliverer therefore asks a `SentLedger` before it sends a trigger and tells it after Meisa
accepted one (any 2xx). The Kafka-backed ledger lives in `bridge.kafka.ledger`; this module holds
the protocol, the no-op ledger (`ledger.enabled: false`) and the in-memory index both share.

Memory is bounded: keys are kept as 8-byte digests (about 150 bytes per key with the ordered
dict's entry), entries older than the retention are forgotten, and past `max_keys` the oldest go
first.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from bridge.errors import AlreadySent
from bridge.meisa.calls import MeisaCall


class SentLedger(Protocol):
    """What the Deliverer needs: a lookup before a trigger, a record after Meisa accepted it."""

    def check(self, call: MeisaCall) -> None:
        """Raise AlreadySent when `call` is a trigger whose key was sent within the retention."""

    async def record(self, call: MeisaCall) -> None:
        """Remember that Meisa accepted `call` (a no-op for calls that are not triggers)."""


class NoLedger:
    """Nothing remembered beyond Meisa's own one-hour idempotency window: the ledger turned off,
    and calls made outside a deployment (tests, `plan`)."""

    def check(self, call: MeisaCall) -> None:
        return None

    async def record(self, call: MeisaCall) -> None:
        return None


NO_LEDGER = NoLedger()


def ledger_key(call: MeisaCall) -> str | None:
    """The idempotency key of a call that carries one (a trigger); None for the others."""
    if not call.traits.idempotent:
        return None
    key = call.body.get("idempotency_key")
    return str(key) if key else None


def digest(key: str) -> int:
    """8 bytes of BLAKE2b: a collision among a few million keys is ~1e-7 likely."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class LedgerIndex:
    """Sent keys (as digests) with the epoch second they were sent; bounded by age and count."""

    def __init__(
        self,
        *,
        retention_seconds: float,
        max_keys: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.retention = retention_seconds
        self.max_keys = max_keys
        self._clock = clock
        # Oldest first; OrderedDict, as a plain dict's first item is found by scanning past the
        # slots of deleted keys, which makes eviction quadratic.
        self._sent: OrderedDict[int, float] = OrderedDict()
        self.evicted_for_space = 0

    def __len__(self) -> int:
        return len(self._sent)

    def now(self) -> float:
        return self._clock()

    def add(self, key: str, sent_at: float) -> None:
        if sent_at < self._clock() - self.retention:
            return
        key_digest = digest(key)
        self._sent[key_digest] = sent_at
        self._sent.move_to_end(key_digest)  # the order stays roughly the order of sending
        self._trim()

    def __contains__(self, key: str) -> bool:
        sent_at = self._sent.get(digest(key))
        return sent_at is not None and sent_at >= self._clock() - self.retention

    def _trim(self) -> None:
        horizon = self._clock() - self.retention
        while self._sent:
            oldest = next(iter(self._sent))
            if self._sent[oldest] >= horizon and len(self._sent) <= self.max_keys:
                return
            if self._sent.popitem(last=False)[1] >= horizon:
                self.evicted_for_space += 1


class MemoryLedger:
    """A SentLedger in this process only (tests, and the base of the Kafka ledger)."""

    def __init__(self, index: LedgerIndex) -> None:
        self.index = index

    def check(self, call: MeisaCall) -> None:
        key = ledger_key(call)
        if key is not None and key in self.index:
            raise AlreadySent(f"trigger {key!r} was already sent (sent-email ledger)")

    async def record(self, call: MeisaCall) -> None:
        key = ledger_key(call)
        if key is not None:
            self.index.add(key, self.index.now())
