"""Reading the budget figures from the bridge's own /metrics text (bridge.status.scrape)."""

from __future__ import annotations

import pytest

from bridge.observability.metrics import Metrics
from bridge.status.scrape import _samples, budget_of, default_url, fetch


def test_the_budget_comes_from_the_metrics_the_bridge_exports() -> None:
    m = Metrics()
    m.rate_limit("minute", 120)
    m.rate_limit("hour", 2000)
    m.rate_share(0.5)
    m.governor_rate(60)
    m.governor_throttled("repeated_429")
    m.assigned_partitions(3)
    for _ in range(4):
        m.events("app.users", "user.updated", "ok")
    for _ in range(6):
        m.request("POST")
    budget = budget_of(_samples(m.render().decode()))
    assert budget.per_minute == 60
    assert budget.share == 0.5
    assert (budget.key_per_minute, budget.key_per_hour) == (120, 2000)
    assert budget.throttled == "repeated_429"
    assert budget.halted is False
    assert budget.assigned_partitions == 3
    assert budget.requests_per_event == pytest.approx(1.5)


def test_a_halted_replica_and_one_that_handled_nothing_yet() -> None:
    m = Metrics()
    m.halted(True)
    m.governor_throttled(None)
    budget = budget_of(_samples(m.render().decode()))
    assert budget.halted is True
    assert budget.throttled is None
    assert budget.requests_per_event is None


def test_text_that_is_not_prometheus_gives_no_samples() -> None:
    assert list(_samples("<html>not metrics</html>\n")) == []


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:9400/metrics"),
        ("::", "http://127.0.0.1:9400/metrics"),
        ("10.0.0.7", "http://10.0.0.7:9400/metrics"),
        ("fd00::7", "http://[fd00::7]:9400/metrics"),
    ],
)
def test_the_default_url_follows_the_configs_server_settings(host: str, url: str) -> None:
    assert default_url(host, 9400) == url


def test_only_http_urls_are_read() -> None:
    view = fetch("file:///etc/hostname")
    assert view.budget is None
    assert view.error == "not an http:// or https:// URL"
