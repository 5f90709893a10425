"""The Grafana dashboard and the alerts the chart ships read only metrics and labels a running
bridge exports: render the chart, start a bridge, drive every kind of traffic, scrape /metrics."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from bridge_harness import ConfigFactory, event, produce, reached_end, running, wait_for
from prometheus_client.parser import text_string_to_metric_families
from promql_refs import references

from bridge.sandbox.testing import SandboxHandle, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[3]
# Labels Prometheus adds when it scrapes a target; the bridge does not export them.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container"}


def _render() -> list[dict[str, Any]]:
    sets = ["monitoring.grafanaDashboard.enabled=true", "monitoring.prometheusRule.enabled=true"]
    args = ["template", "demo", str(ROOT / "helm" / "meisa-bridge"), "--namespace", "apps"]
    for item in sets:
        args += ["--set", item]
    proc = subprocess.run(
        [str(ROOT / "scripts" / "helm.sh"), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def shipped_expressions() -> dict[str, str]:
    """Where -> PromQL, for every dashboard panel target, template variable and alert."""
    docs = _render()
    [board] = [d for d in docs if d["metadata"]["name"].endswith("-dashboard")]
    dashboard = json.loads(board["data"]["meisa-bridge.json"])
    exprs = {
        f"panel {p['title']!r} {t['refId']}": t["expr"]
        for p in dashboard["panels"]
        for t in p.get("targets", [])
    }
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            exprs[f"variable {var['name']}"] = var["query"]["query"]
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            exprs[f"alert {alert['alert']}"] = alert["expr"]
    return exprs


def _exported(port: int) -> dict[str, set[str]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    labels: dict[str, set[str]] = defaultdict(set)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels[s.name] |= set(s.labels)
    return labels


def test_every_metric_and_label_the_dashboard_and_alerts_use_is_exported(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    exprs = shipped_expressions()
    assert len([w for w in exprs if w.startswith("alert")]) == 5
    topic, dlq, group, port = make_topic(partitions=2), make_topic(), "g-dashboard", free_port()
    path = bridge_config(
        topic,
        group,
        dlq=dlq,
        api_key=sandbox.api_key,  # a key with rate limits, so the limit gauges are set
        sections={"server": {"host": "127.0.0.1", "port": port}, "suppression": {"enabled": True}},
    )
    stale = event("auth.otp", 3, 1, code="1")
    stale["time"] = "2020-01-01T00:00:00Z"  # past max_age: a skip
    events = [event("user.updated", u, 0) for u in range(3)]
    events += [stale, event("auth.otp", 4, 2, code="2"), event("user.acted", 1, 3)]
    with running(path):
        produce(kafka_bootstrap, topic, events)
        produce(kafka_bootstrap, topic, [(b"usr_9", b"{not json", None)])
        wait_for(reached_end(kafka_bootstrap, group, topic, 2), 60, "every offset committed")
        wait_for(lambda: "meisa_bridge_consumer_lag" in _exported(port), 30, "lag reported")
        exported = _exported(port)

    problems = []
    for where, expr in sorted(exprs.items()):
        refs = references(expr)
        assert refs, f"{where} reads no meisa_bridge_ metric: {expr}"
        for metric, labels in refs.items():
            if metric not in exported:
                problems.append(f"{where}: {metric} is not exported")
                continue
            missing = labels - TARGET_LABELS - exported[metric]
            if missing:
                problems.append(f"{where}: {metric} has no label(s) {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_references_reads_matchers_and_groupings() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(meisa_bridge_w_bucket{job=~"$job"}[5m])))'
        ' > 0 and sum by (topic) (meisa_bridge_lag{a="1", b=~"x,y"}) or meisa_bridge_up'
    )
    assert references(expr) == {
        "meisa_bridge_w_bucket": {"le", "job"},
        "meisa_bridge_lag": {"topic", "a", "b"},
        "meisa_bridge_up": set(),
    }
    with pytest.raises(AssertionError, match="before the argument"):
        references("sum(meisa_bridge_lag) by (topic)")
