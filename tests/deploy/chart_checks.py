"""Invariants every render of the chart must keep, whatever values file a user brings."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config import BridgeConfig, load_config
from bridge.rules.commands import validate_command

Docs = list[dict[str, Any]]
# What a secretKeyRef resolves to when the rendered config is loaded outside the cluster.
SECRET_STAND_IN = "from-a-secret"


def find(docs: Docs, kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Docs, kind: str) -> dict[str, Any]:
    [doc] = find(docs, kind)
    return doc


def pod_spec(docs: Docs) -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def bridge_container(docs: Docs) -> dict[str, Any]:
    [c] = [c for c in pod_spec(docs)["containers"] if c["name"] == "bridge"]
    return c


def env_of(docs: Docs) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in bridge_container(docs).get("env", [])}


def expected_share(values: Mapping[str, Any]) -> float | None:
    """meisa.rateShare when set; None: the share follows the replica's partitions."""
    explicit = values.get("meisa", {}).get("rateShare")
    return None if explicit in (None, "") else float(explicit)


def secrets_in(values: Mapping[str, Any]) -> list[str]:
    """The credential strings a values file holds (they may appear only in Secrets)."""
    found = [values.get("meisa", {}).get("apiKey", "")]
    sasl = values.get("kafka", {}).get("sasl", {})
    found.append(sasl.get("password", ""))
    return [s for s in found if s]


@contextlib.contextmanager
def pod_env(docs: Docs) -> Iterator[None]:
    """The Deployment's env as the process environment: literals as given, secret refs stand-ins."""
    saved = dict(os.environ)
    try:
        for name, item in env_of(docs).items():
            os.environ[name] = str(item["value"]) if "value" in item else SECRET_STAND_IN
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def load_rendered_config(docs: Docs, where: Path) -> BridgeConfig:
    """Write the ConfigMap as the pod mounts it, load it with the bridge's loader and validate."""
    where.mkdir(parents=True, exist_ok=True)
    for name, text in one(docs, "ConfigMap")["data"].items():
        (where / name).write_text(text)
    with pod_env(docs):
        config = load_config(where / "bridge.yaml")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = validate_command(argparse.Namespace(rules=[str(where / "bridge.yaml")]))
        assert code == 0, out.getvalue()
    return config


def check_invariants(docs: Docs, values: Mapping[str, Any], where: Path) -> BridgeConfig:
    """Assert the chart's promises on one render; returns the loaded bridge config."""
    deploy = one(docs, "Deployment")
    template = deploy["spec"]["template"]
    env = env_of(docs)

    # The API key only through a secretKeyRef; no credential outside a Secret.
    key_env = env["MEISA_API_KEY"]
    assert set(key_env) == {"name", "valueFrom"}
    assert set(key_env["valueFrom"]) == {"secretKeyRef"}
    for doc in docs:
        if doc["kind"] != "Secret":
            text = yaml.safe_dump(doc)
            for secret in secrets_in(values):
                assert secret not in text, (doc["kind"], "holds a credential")
    bridge_yaml = yaml.safe_load(one(docs, "ConfigMap")["data"]["bridge.yaml"])
    assert bridge_yaml["meisa"]["api_key"] == "${MEISA_API_KEY}"
    for prop, value in bridge_yaml.get("kafka", {}).items():
        if re.search(r"password|secret|sasl\.username", prop):
            assert re.fullmatch(r"\$\{[A-Z_]+\}", str(value)), prop
    for name, item in env.items():
        if re.search(r"KEY|PASSWORD|SECRET|TOKEN|USERNAME", name) and name != "MEISA_RATE_SHARE":
            assert "value" not in item, f"{name} is a literal"

    # Pods roll when the config, the rules or the chart's Secrets change.
    annotations = template["metadata"]["annotations"]
    for name in ("checksum/config", "checksum/rules", "checksum/secret"):
        assert re.fullmatch(r"[0-9a-f]{64}", annotations[name]), name

    # Probes on the health endpoints, on the named metrics port the Service targets.
    c = bridge_container(docs)
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["port"] == "metrics"
    assert c["readinessProbe"]["httpGet"]["port"] == "metrics"
    [port] = [p for p in c["ports"] if p["name"] == "metrics"]
    assert one(docs, "Service")["spec"]["ports"][0]["targetPort"] == "metrics"

    # Restricted pod security (the Kubernetes "restricted" Pod Security Standard).
    pod = pod_spec(docs)
    for container in [*pod["containers"], *pod.get("initContainers", [])]:
        sc = container.get("securityContext", {})
        if container["name"] == "bridge":
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert sc.get("runAsNonRoot", pod["securityContext"].get("runAsNonRoot")) is True
    seccomp = pod["securityContext"].get("seccompProfile") or c["securityContext"]["seccompProfile"]
    assert seccomp == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}[mounts["/tmp"]]
    assert mounts["/etc/meisa-bridge"] == "config"

    # Each replica's share of the key's rate budget: fixed by meisa.rateShare, else it follows
    # the replica's partitions (no env, no rate_share in the config).
    share = expected_share(values)
    if share is None:
        assert "MEISA_RATE_SHARE" not in env
    else:
        assert float(env["MEISA_RATE_SHARE"]["value"]) == pytest.approx(share)
    hpa = find(docs, "HorizontalPodAutoscaler")
    assert bool(hpa) == bool(values.get("autoscaling", {}).get("enabled"))
    scaled = find(docs, "ScaledObject")
    assert bool(scaled) == bool(values.get("keda", {}).get("enabled"))
    # An autoscaler owns the replica count: a rendered count would reset it on every upgrade.
    assert ("replicas" in deploy["spec"]) == (not hpa and not scaled)

    # The ConfigMap is exactly what the bridge loads (env interpolated as the pod sets it).
    config = load_rendered_config(docs, where)
    assert config.meisa.rate_share == (None if share is None else pytest.approx(share))
    assert config.meisa.api_key.get_secret_value() == SECRET_STAND_IN
    assert config.server.port == port["containerPort"]
    return config
