"""A replica's share of the key's budget follows the partitions it owns."""

from __future__ import annotations

from bridge.meisa.share import RateShare, replica_share


def test_the_share_is_the_mean_fraction_owned_over_topics() -> None:
    counts = {"users": 4, "auth": 1}
    assert replica_share(counts, [("users", 0), ("users", 1)]) == 0.25
    # the one partition of a small topic weighs as much as a whole big topic
    assert replica_share(counts, [("auth", 0)]) == 0.5


def test_replicas_shares_add_up_to_one_once_every_partition_is_owned() -> None:
    counts = {"users": 3, "product": 3, "auth": 1}
    first = [("users", 0), ("product", 0), ("auth", 0)]
    second = [("users", 1), ("product", 1), ("users", 2), ("product", 2)]
    assert abs(replica_share(counts, first) + replica_share(counts, second) - 1.0) < 1e-9


def test_no_known_topic_means_the_whole_budget() -> None:
    assert replica_share({}, []) == 1.0
    assert replica_share({"empty": 0}, [("empty", 0)]) == 1.0


def test_rate_share_applies_and_reports_each_update() -> None:
    applied: list[float] = []
    reported: list[float] = []
    share = RateShare(applied.append, reported.append)
    share.counts = {"users": 2}
    share.update([("users", 0)])
    assert applied == reported == [0.5]


def test_a_fixed_share_is_left_alone() -> None:
    reported: list[float] = []
    share = RateShare(None, reported.append)
    share.counts = {"users": 2}
    share.update([("users", 0)])
    assert not share.active
    assert reported == []
