"""values.schema.json: typos and impossible values are refused, the values users write are not."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge import settings as bridge_settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "meisa-bridge"
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())

pytestmark = pytest.mark.timeout(900)

Helm = Callable[..., subprocess.CompletedProcess[str]]


def _render(helm: Helm, tmp_path: Path, values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return helm("template", "rel", str(CHART), "-f", str(path), check=False)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"image": {"pullPolicy": "always"}}, "pullPolicy"),
        ({"image": {"tag": 1.10}}, "tag"),
        ({"image": {"digest": "ab12"}}, "digest"),
        ({"meisa": {"existingsecret": "x"}}, "existingsecret"),
        ({"kafka": {"sasl": {"mechanism": "OAUTHBEARER"}}}, "mechanism"),
        ({"kafka": {"securityProtocol": "sasl_ssl"}}, "securityProtocol"),
        ({"config": {"pipline": {"max_in_flight": 4}}}, "pipline"),
        ({"config": {"pipeline": {"max_inflight": 4}}}, "max_inflight"),
        ({"config": {"meisa": {"api_key": "meisa_live_x"}}}, "api_key"),
        ({"config": {"kafka": {"acks": "all"}}}, "kafka"),
        ({"serviceMonitor": {"interval": "15"}}, "interval"),
        ({"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}, "minReplicas"),
        ({"podDisruptionBudget": {"minAvailable": "half"}}, "minAvailable"),
        ({"service": {"type": "Ingress"}}, "type"),
        ({"extraEnv": [{"value": "x"}]}, "name"),
        # The chart sets these from Secrets; a later literal would win and put the key in the spec.
        ({"extraEnv": [{"name": "MEISA_API_KEY", "value": "meisa_live_x"}]}, "extraEnv/0/name"),
        ({"extraEnv": [{"name": "KAFKA_SASL_PASSWORD", "value": "pw"}]}, "extraEnv/0/name"),
        ({"extraEnv": [{"name": "MEISA_RATE_SHARE", "value": "1"}]}, "extraEnv/0/name"),
        ({"imagePullSecrets": [{"nam": "regcred"}]}, "imagePullSecrets"),
        ({"podAnnotations": {"prometheus.io/scrape": True}}, "podAnnotations"),
        ({"topics": []}, "topics"),
    ],
)
def test_typos_and_impossible_values_are_refused(
    helm: Helm, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    proc = _render(helm, tmp_path, values)
    assert proc.returncode != 0, f"accepted: {values}"
    assert message in proc.stderr


@pytest.mark.parametrize(
    "values",
    [
        {"global": {"imageRegistry": "mirror.corp", "storageClass": "gp3"}},
        {"image": {"tag": 20240101}},
        {"image": {"tag": "1.10"}},
        {"image": {"tag": ""}},
        {"imagePullSecrets": ["regcred", {"name": "other"}]},
        {"podDisruptionBudget": {"minAvailable": "50%", "maxUnavailable": None}},
        {"podDisruptionBudget": {"maxUnavailable": 0}},
        {"meisa": {"rateShare": 0.25}},
        {"meisa": {"rateShare": "0.125"}},
        {"meisa": {"rateShare": None}},
        {"serviceMonitor": {"enabled": True, "interval": "", "scrapeTimeout": ""}},
        {"config": {"meisa": {"rate_limit_per_minute": 30, "transport": "httpx"}}},
        {"config": {"codec": {"format": "cloudevents"}, "suppression": {"enabled": False}}},
        {"config": {"pipeline": {"shutdown_grace_seconds": "${GRACE:-30}"}}},
        {"resources": {}},
        {"livenessProbe": {"exec": {"command": ["true"]}, "httpGet": None}},
        {"securityContext": {"runAsUser": None}, "podSecurityContext": {"fsGroup": None}},
        {"strategy": {"type": "Recreate"}},
        {"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 1}},
        {"replicaCount": 0},
        # Keys this chart does not use are ignored, as in most charts: values files are often
        # shared across charts or carry settings for a parent chart.
        {"ingress": {"enabled": False}, "commonLabels": {"team": "growth"}},
        {"resources": {"claims": [{"name": "gpu"}], "requests": {"cpu": "100m"}}},
        {"serviceMonitor": {"enabled": True, "targetLabels": ["app"]}},
    ],
)
def test_legitimate_values_are_accepted(helm: Helm, tmp_path: Path, values: dict[str, Any]) -> None:
    proc = _render(helm, tmp_path, values)
    assert proc.returncode == 0, proc.stderr


def test_config_sections_list_exactly_the_bridge_settings() -> None:
    """config.* keys come from bridge.settings; the chart-computed ones are left out on purpose."""
    sections = {
        "meisa": bridge_settings.MeisaSettings,
        "codec": bridge_settings.CodecSettings,
        "pipeline": bridge_settings.PipelineSettings,
        "dlq": bridge_settings.DlqSettings,
        "ledger": bridge_settings.LedgerSettings,
        "suppression": bridge_settings.SuppressionSettings,
        "logging": bridge_settings.LoggingSettings,
        "tracing": bridge_settings.TracingSettings,
        "reload": bridge_settings.ReloadSettings,
        "outcomes": bridge_settings.OutcomeSettings,
    }
    # The chart supplies the API key through a Secret in the environment, never as a file path.
    computed = {"meisa": {"base_url", "api_key", "api_key_file", "rate_share"}}
    schema = SCHEMA["properties"]["config"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(sections)
    for name, cls in sections.items():
        fields = {f.name for f in dataclasses.fields(cls)} - computed.get(name, set())
        assert set(schema["properties"][name]["properties"]) == fields, name
        assert set(bridge_settings.TOP_LEVEL_KEYS) >= {name}


def test_every_default_value_is_described_by_the_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    checked: list[str] = []

    def walk(node: dict[str, Any], schema: dict[str, Any], path: str) -> None:
        for key, child in node.items():
            assert key in schema["properties"], f"{path}{key} has no schema entry"
            checked.append(f"{path}{key}")
            sub = schema["properties"][key]
            # A mapping whose schema lists no properties is free-form (podAnnotations, resources).
            if isinstance(child, dict) and "properties" in sub:
                walk(child, sub, f"{path}{key}.")

    assert isinstance(values, dict)
    walk(values, SCHEMA, "")
    assert set(values) <= set(checked)
    assert {"image.tag", "meisa.existingSecret", "config.pipeline", "kafka.sasl"} <= set(checked)
