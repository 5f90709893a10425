"""Reading a replica's /metrics: the budget figures `status` shows (bridge.status.model.Budget).

The metric names are those bridge.observability.metrics defines. One replica answers: its own
share of the budget and its own counters; the key's limits are the same on every replica.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping

from prometheus_client.parser import text_string_to_metric_families

from bridge.status.model import BridgeView, Budget

TIMEOUT = 3.0  # a local HTTP server answers at once; a wrong address should not hold the command
_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def default_url(host: str, port: int) -> str:
    """The metrics URL of a bridge on this machine with this config's server settings."""
    where = "127.0.0.1" if host in _WILDCARDS else host
    if ":" in where and not where.startswith("["):
        where = f"[{where}]"
    return f"http://{where}:{port}/metrics"


def fetch(url: str, timeout: float = TIMEOUT) -> BridgeView:
    if not url.startswith(("http://", "https://")):
        return BridgeView(url, error="not an http:// or https:// URL")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            text = answer.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return BridgeView(url, error=str(getattr(exc, "reason", exc)))
    samples = list(_samples(text))
    if not any(name.startswith("meisa_bridge_") for name, _, _ in samples):
        return BridgeView(url, error="no meisa_bridge_ metrics there")
    return BridgeView(url, budget=budget_of(samples))


Sample = tuple[str, Mapping[str, str], float]


def _samples(text: str) -> Iterable[Sample]:
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                yield s.name, s.labels, float(s.value)
    except ValueError:
        return


def budget_of(samples: Iterable[Sample]) -> Budget:
    """The budget figures from parsed samples (name, labels, value)."""
    one: dict[str, float] = {}
    sums: dict[str, float] = {}
    limits: dict[str, float] = {}
    throttled = None
    for name, labels, value in samples:
        one[name] = value
        sums[name] = sums.get(name, 0.0) + value
        if name == "meisa_bridge_rate_limit":
            limits[labels.get("window", "")] = value
        if name == "meisa_bridge_governor_throttled" and value >= 1:
            throttled = labels.get("reason")
    events = sums.get("meisa_bridge_events_total", 0.0)
    requests = sums.get("meisa_bridge_requests_total", 0.0)
    assigned = one.get("meisa_bridge_assigned_partitions")
    return Budget(
        per_minute=one.get("meisa_bridge_governor_rate_per_minute"),
        share=one.get("meisa_bridge_rate_share"),
        key_per_minute=limits.get("minute"),
        key_per_hour=limits.get("hour"),
        throttled=throttled,
        halted=one.get("meisa_bridge_halted", 0.0) >= 1,
        assigned_partitions=None if assigned is None else int(assigned),
        requests_per_event=requests / events if events else None,
    )
