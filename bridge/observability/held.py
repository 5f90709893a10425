"""Delivery attempts and HTTP requests counted in plain Python, handed to the Prometheus series
when the registry is collected (bridge.observability.metrics): an attempt costs a dict update
and two bisects on the event loop instead of six locked increments in prometheus_client."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector


class Buckets:
    """Observations of one histogram series not handed over yet: a count per bucket and the sum,
    bucketed as prometheus_client's `Histogram.observe` does (the first upper bound >= value)."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = (*bounds, float("inf"))
        self.counts = [0] * len(self.bounds)
        self.count = 0
        self.total = 0.0

    def add(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.total += value

    def add_to(self, histogram: Any) -> None:
        """Into a prometheus_client Histogram (or its labelled child): observe() adds one per
        call, so the bucket and sum values are added to directly (checked against observe() in
        tests/unit/test_observability.py)."""
        for value, n in zip(histogram._buckets, self.counts, strict=True):
            if n:
                value.inc(n)
        histogram._sum.inc(self.total)


class HeldAttempts:
    """Attempts since the last hand-over. Recorded on the event loop, taken by whichever
    thread collects (the health server's): one lock, uncontended but for a scrape."""

    def __init__(self, latency_bounds: tuple[float, ...], wait_bounds: tuple[float, ...]) -> None:
        self._lock = threading.Lock()
        self._latency_bounds = latency_bounds
        self._wait_bounds = wait_bounds
        self._reset()

    def _reset(self) -> None:
        self.counts: dict[tuple[str, int | str, str], int] = {}
        self.latencies: dict[str, Buckets] = {}
        self.waits = Buckets(self._wait_bounds)
        self.requests: dict[str, int] = {}

    def add(
        self, kind: str, status: int | str, outcome: str, seconds: float, waited: float
    ) -> None:
        key = (kind, status, outcome)
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            latency = self.latencies.get(kind)
            if latency is None:
                latency = self.latencies[kind] = Buckets(self._latency_bounds)
            latency.add(seconds)
            self.waits.add(waited)

    def request(self, method: str) -> None:
        with self._lock:
            self.requests[method] = self.requests.get(method, 0) + 1

    def take(
        self,
    ) -> tuple[dict[tuple[str, int | str, str], int], dict[str, Buckets], Buckets, dict[str, int]]:
        with self._lock:
            taken = (self.counts, self.latencies, self.waits, self.requests)
            self._reset()
        return taken


class BeforeCollect(Collector):
    """Runs `before` at the start of every collection of its registry; yields no metric."""

    def __init__(self, before: Callable[[], None]) -> None:
        self._before = before

    def collect(self) -> Iterable[Metric]:
        self._before()
        return ()

    def describe(self) -> Iterable[Metric]:
        return ()
