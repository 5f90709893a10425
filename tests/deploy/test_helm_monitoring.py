"""The chart's Grafana dashboard and PrometheusRule: off by default, shaped as the Grafana sidecar
and the Prometheus Operator expect when on, configurable, and valid for Kubernetes' own types."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "meisa-bridge"
ON = ["monitoring.grafanaDashboard.enabled=true", "monitoring.prometheusRule.enabled=true"]
ALERTS = {
    "MeisaBridgeHalted",
    "MeisaBridgeDlqBreakerNearLimit",
    "MeisaBridgeLagGrowing",
    "MeisaBridgeBudgetExhausted",
    "MeisaBridgeKeyScopesMissing",
}
PANELS = {
    "Consumer lag by topic",
    "Meisa calls by kind and outcome",
    "Meisa 404 / 429 / 5xx",
    "Rate budget per minute: used vs limit",
    "Rate budget per hour: used vs limit",
    "Trigger wait p50 / p99",
    "DLQ writes by topic and stage",
    "Halts by replica",
}

pytestmark = pytest.mark.timeout(900)

Render = Callable[..., list[dict[str, Any]]]
Helm = Callable[..., subprocess.CompletedProcess[str]]


def _dashboard(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [cm] = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")
    ]
    return cm


def _rules(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}


def test_nothing_is_rendered_by_default(render: Render) -> None:
    docs = render()
    assert [d["kind"] for d in docs].count("ConfigMap") == 1
    assert "PrometheusRule" not in {d["kind"] for d in docs}


def test_the_dashboard_configmap_carries_the_sidecar_label_and_the_panels(render: Render) -> None:
    docs = render(sets=ON)
    cm = _dashboard(docs)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "apps"
    board = json.loads(cm["data"]["meisa-bridge.json"])
    assert board["uid"] == "meisa-bridge"
    titles = {p["title"] for p in board["panels"]}
    assert titles >= PANELS
    for panel in board["panels"]:
        assert panel["description"], panel["title"]
        for target in panel["targets"]:
            assert 'namespace=~"$namespace", job=~"$job"' in target["expr"], panel["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_label_namespace_and_folder_are_configurable(render: Render) -> None:
    sets = [
        *ON,
        "monitoring.grafanaDashboard.namespace=monitoring",
        "monitoring.grafanaDashboard.labels.grafana_dashboard=null",
        "monitoring.grafanaDashboard.labels.dashboards=mail",
        "monitoring.grafanaDashboard.folder=Messaging",
        "monitoring.grafanaDashboard.annotations.owner=growth",
    ]
    meta = _dashboard(render(sets=sets))["metadata"]
    assert meta["namespace"] == "monitoring"
    assert meta["labels"]["dashboards"] == "mail"
    assert "grafana_dashboard" not in meta["labels"]
    assert meta["annotations"] == {"grafana_folder": "Messaging", "owner": "growth"}


def test_the_prometheusrule_has_the_five_alerts_on_the_release_namespace(render: Render) -> None:
    docs = render(sets=[*ON, "monitoring.prometheusRule.labels.release=kube-prometheus-stack"])
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = _rules(docs)
    assert set(alerts) == ALERTS
    for name, alert in alerts.items():
        assert 'namespace="apps"' in alert["expr"], name
        assert alert["labels"]["severity"] in {"critical", "warning"}
        assert alert["annotations"]["summary"], name
    assert alerts["MeisaBridgeLagGrowing"]["for"] == "15m"
    assert "> 0.8" in alerts["MeisaBridgeDlqBreakerNearLimit"]["expr"]


def test_alert_selector_thresholds_labels_and_opt_outs(render: Render, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    rule = {
        "enabled": True,
        "selector": 'job="mail-bridge"',
        "thresholds": {"dlqBreakerFill": 0.5, "lagMinimum": 50},
        "alertLabels": {"team": "growth"},
        "disabled": ["MeisaBridgeLagGrowing"],
    }
    values.write_text(yaml.safe_dump({"monitoring": {"prometheusRule": rule}}))
    alerts = _rules(render(values))
    assert set(alerts) == ALERTS - {"MeisaBridgeLagGrowing"}
    breaker = alerts["MeisaBridgeDlqBreakerNearLimit"]
    assert 'meisa_bridge_dlq_breaker_fill{job="mail-bridge"}) > 0.5' in breaker["expr"]
    assert all(a["labels"]["team"] == "growth" for a in alerts.values())
    assert 'window="hour"' in alerts["MeisaBridgeBudgetExhausted"]["expr"]


def test_the_halt_linger_reaches_the_bridge_config(render: Render) -> None:
    docs = render(sets=["monitoring.haltLingerSeconds=30"])
    [cm] = [d for d in docs if d["kind"] == "ConfigMap"]
    assert yaml.safe_load(cm["data"]["bridge.yaml"])["server"]["halt_linger_seconds"] == 30


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("monitoring.grafanaDashbord.enabled=true", "grafanaDashbord"),
        ('monitoring.prometheusRule.disabled=["MeisaBridgeHalt"]', "disabled"),
        ("monitoring.prometheusRule.thresholds.budgetHourFill=1.5", "budgetHourFill"),
        ("monitoring.haltLingerSeconds=-1", "haltLingerSeconds"),
    ],
)
def test_monitoring_typos_are_refused(helm: Helm, value: str, message: str) -> None:
    proc = helm("template", "rel", str(CHART), "--set-json", value, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "got string" not in proc.stderr


def test_the_rendered_monitoring_objects_decode_strictly(helm: Helm, tmp_path: Path) -> None:
    out = tmp_path / "monitoring.yaml"
    args = ["template", "rel", str(CHART), "--namespace", "team-mail"]
    for item in ON:
        args += ["--set", item]
    out.write_text(helm(*args).stdout)
    proc = subprocess.run(
        [str(ROOT / "scripts" / "k8scheck.sh"), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 problems" in proc.stderr


def test_helm_lint_passes_with_monitoring_on(helm: Helm) -> None:
    args = ["lint", str(CHART), "--strict"]
    for item in ON:
        args += ["--set", item]
    proc = helm(*args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
