"""This replica's share of the key's rate budget, from the partitions it owns.

Every replica spends its share of one API key's budget (bridge.meisa.governor). The share
follows what the replica owns: the mean, over the subscribed topics, of the fraction of each
topic's partitions it holds. The replicas' shares add up to 1 once every partition is owned, and
a replica that owns a small topic (the one-time codes) gets that topic's whole weight however
many partitions the big topics have. The consume loop reports its assignment; this module keeps
the topics' partition counts and hands the share to the governor.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping

TopicPartition = tuple[str, int]


def replica_share(counts: Mapping[str, int], owned: Iterable[TopicPartition]) -> float:
    """The mean over the topics (`counts`: partitions per topic) of the fraction owned."""
    counts = {t: n for t, n in counts.items() if n > 0}
    if not counts:
        return 1.0
    held = Counter(topic for topic, _ in owned)
    return sum(min(1.0, held[t] / n) for t, n in counts.items()) / len(counts)


class RateShare:
    """Keeps the governor's share (`apply`, e.g. RateGovernor.set_share) in step with the
    partitions owned; `report` sees every share applied (a metric). Without `apply` (a fixed
    `meisa.rate_share`) it does nothing."""

    def __init__(
        self, apply: Callable[[float], None] | None, report: Callable[[float], None]
    ) -> None:
        self._apply = apply
        self._report = report
        self.counts: dict[str, int] = {}  # partitions per subscribed topic

    @property
    def active(self) -> bool:
        return self._apply is not None

    def update(self, owned: Iterable[TopicPartition]) -> None:
        if self._apply is None:
            return
        share = replica_share(self.counts, owned)
        self._apply(share)
        self._report(share)
