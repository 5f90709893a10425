"""The chart's optional KEDA ScaledObject: scaling the Deployment on the consumer group's lag.

What the templates promise (off by default, one Kafka trigger per topic, maxReplicaCount from the
partition count, SASL/TLS from the bridge's own Secrets), and every trigger parameter checked
against the parameters KEDA's Kafka scaler declares in its source (the module k8scheck is built
with, from the Go module proxy). k8scheck decodes the objects into KEDA's types
(tests/deploy/test_k8s_types.py).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from test_helm_values_matrix import _notes

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "meisa-bridge"
K8SCHECK_SRC = ROOT / "scripts" / "k8scheck"
KEDA_MODULE = "github.com/kedacore/keda/v2"

pytestmark = pytest.mark.timeout(900)

Render = Callable[..., list[dict[str, Any]]]
Helm = Callable[..., subprocess.CompletedProcess[str]]
Docs = list[dict[str, Any]]
ON = ["keda.enabled=true", "keda.partitions=6"]
SASL = ["kafka.securityProtocol=SASL_SSL", "kafka.sasl.existingSecret=kafka-sasl"]


def find(docs: Docs, kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Docs, kind: str) -> dict[str, Any]:
    [doc] = find(docs, kind)
    return doc


def triggers(docs: Docs) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = one(docs, "ScaledObject")["spec"]["triggers"]
    return found


@dataclass(frozen=True)
class Param:
    """One parameter of KEDA's Kafka scaler: where it may come from, its Go type, its enum."""

    name: str
    order: tuple[str, ...]
    go_type: str
    required: bool
    enum: tuple[str, ...]


@cache
def kafka_scaler_params() -> dict[str, Param]:
    """The `keda:"..."` tags of the kafkaMetadata struct in KEDA's pkg/scalers/kafka_scaler.go, from
    the module version scripts/k8scheck/go.mod names (`go mod download` finds it in the cache)."""
    proc = subprocess.run(
        ["go", "mod", "download", "-json", KEDA_MODULE],
        cwd=K8SCHECK_SRC,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    source = Path(json.loads(proc.stdout)["Dir"]) / "pkg" / "scalers" / "kafka_scaler.go"
    body = re.search(r"type kafkaMetadata struct \{(.*?)\n\}", source.read_text(), re.S)
    assert body is not None, f"no kafkaMetadata struct in {source}"
    params = {}
    for go_type, tag in re.findall(r"^\s*\w+\s+(\S+)\s+`keda:\"([^\"]+)\"`", body.group(1), re.M):
        parts = dict(p.split("=", 1) if "=" in p else (p, "") for p in tag.split(","))
        params[parts["name"]] = Param(
            name=parts["name"],
            order=tuple(parts["order"].split(";")),
            go_type=go_type,
            required="optional" not in parts and "default" not in parts,
            enum=tuple(parts["enum"].split(";")) if "enum" in parts else (),
        )
    assert {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} <= set(params)
    return params


def check_against_the_scaler(docs: Docs) -> None:
    """Every trigger's metadata and every TriggerAuthentication parameter is one KEDA's Kafka
    scaler reads from that place, with a value it parses."""
    params = kafka_scaler_params()
    for trigger in triggers(docs):
        assert trigger["type"] == "kafka"
        metadata = trigger["metadata"]
        for key, value in metadata.items():
            assert key in params, f"the Kafka scaler has no parameter {key!r}"
            param = params[key]
            assert "triggerMetadata" in param.order, f"{key} is not read from trigger metadata"
            assert isinstance(value, str), f"{key}: {value!r} is not a string"
            if param.enum:
                assert value in param.enum, f"{key}: {value!r} not in {param.enum}"
            if param.go_type == "bool":
                assert value in ("true", "false"), f"{key}: {value!r}"
            if param.go_type == "int64":
                assert int(value) >= 0, f"{key}: {value!r}"
        for param in params.values():
            if param.required and "triggerMetadata" in param.order:
                assert param.name in metadata, f"{param.name} is required"
    for auth in find(docs, "TriggerAuthentication"):
        for ref in auth["spec"]["secretTargetRef"]:
            assert "authParams" in params[ref["parameter"]].order, ref


def test_the_scaler_check_refuses_a_parameter_the_scaler_does_not_read(render: Render) -> None:
    docs = render(sets=[*ON, "keda.metadata.lagTreshold=5"])
    with pytest.raises(AssertionError, match="no parameter 'lagTreshold'"):
        check_against_the_scaler(docs)


def test_off_by_default_and_the_deployment_keeps_its_replicas(render: Render) -> None:
    docs = render()
    assert find(docs, "ScaledObject") == []
    assert find(docs, "TriggerAuthentication") == []
    assert one(docs, "Deployment")["spec"]["replicas"] == 2


def test_scales_the_deployment_with_one_trigger_per_topic_up_to_the_partitions(
    render: Render,
) -> None:
    docs = render(sets=ON)
    so = one(docs, "ScaledObject")
    deployment = one(docs, "Deployment")
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert "replicas" not in deployment["spec"]  # KEDA's HPA owns the count
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (2, 6)
    assert [t["metadata"]["topic"] for t in triggers(docs)] == [
        "app.users",
        "app.product",
        "app.auth",
    ]
    for trigger in triggers(docs):
        assert trigger["metadata"]["consumerGroup"] == "meisa-bridge"
        assert trigger["metadata"]["bootstrapServers"] == "kafka:9092"
        assert trigger["metadata"]["allowIdleConsumers"] == "false"
        assert trigger["metadata"]["offsetResetPolicy"] == "earliest"  # as the bridge reads
        assert "authenticationRef" not in trigger
    assert find(docs, "TriggerAuthentication") == []
    check_against_the_scaler(docs)


def test_max_replicas_can_be_set_below_the_partitions_and_topics_chosen(render: Render) -> None:
    sets = [*ON, "keda.maxReplicaCount=3", "keda.topics={app.auth}", "keda.lagThreshold=50"]
    sets += ["keda.bootstrapServers=kafka.data.svc:9092", "kafka.groupId=bridge-eu"]
    docs = render(sets=sets)
    assert one(docs, "ScaledObject")["spec"]["maxReplicaCount"] == 3
    [trigger] = triggers(docs)
    assert trigger["metadata"]["topic"] == "app.auth"
    assert trigger["metadata"]["lagThreshold"] == "50"
    assert trigger["metadata"]["bootstrapServers"] == "kafka.data.svc:9092"
    assert trigger["metadata"]["consumerGroup"] == "bridge-eu"
    check_against_the_scaler(docs)


def test_sasl_and_tls_come_from_the_secrets_the_bridge_reads(render: Render) -> None:
    sets = [*ON, *SASL, "kafka.sasl.mechanism=SCRAM-SHA-256", "kafka.tls.existingSecret=kafka-tls"]
    sets += ["kafka.tls.certKey=tls.crt", "kafka.tls.keyKey=tls.key"]
    docs = render(sets=sets)
    auth = one(docs, "TriggerAuthentication")
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs == {
        "username": ("kafka-sasl", "username"),
        "password": ("kafka-sasl", "password"),
        "ca": ("kafka-tls", "ca.crt"),
        "cert": ("kafka-tls", "tls.crt"),
        "key": ("kafka-tls", "tls.key"),
    }
    env = {
        e["name"]: e
        for e in one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "kafka-sasl",
        "key": "password",
    }
    for trigger in triggers(docs):
        assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
        assert trigger["metadata"]["sasl"] == "scram_sha256"
        assert trigger["metadata"]["tls"] == "enable"
    check_against_the_scaler(docs)


@pytest.mark.parametrize(
    ("mechanism", "sasl"),
    [("PLAIN", "plaintext"), ("SCRAM-SHA-256", "scram_sha256"), ("SCRAM-SHA-512", "scram_sha512")],
)
def test_each_sasl_mechanism_maps_to_the_scalers_word(
    render: Render, mechanism: str, sasl: str
) -> None:
    sets = [*ON, "kafka.securityProtocol=SASL_PLAINTEXT", f"kafka.sasl.mechanism={mechanism}"]
    docs = render(sets=[*sets, "kafka.sasl.username=u", "kafka.sasl.password=p"])
    assert {t["metadata"]["sasl"] for t in triggers(docs)} == {sasl}
    assert {"tls" in t["metadata"] for t in triggers(docs)} == {False}
    # the chart-created SASL Secret is the one KEDA reads
    secret = [s["metadata"]["name"] for s in find(docs, "Secret")]
    auth = one(docs, "TriggerAuthentication")
    assert {r["name"] for r in auth["spec"]["secretTargetRef"]} <= set(secret)
    check_against_the_scaler(docs)


def test_an_existing_trigger_authentication_replaces_the_charts(render: Render) -> None:
    sets = [*ON, *SASL, "keda.authenticationRef.name=msk-iam"]
    sets += ["keda.authenticationRef.kind=ClusterTriggerAuthentication"]
    sets += ["keda.metadata.sasl=aws_msk_iam", "keda.metadata.awsRegion=eu-west-1"]
    docs = render(sets=sets)
    assert find(docs, "TriggerAuthentication") == []
    for trigger in triggers(docs):
        assert trigger["authenticationRef"] == {
            "name": "msk-iam",
            "kind": "ClusterTriggerAuthentication",
        }
        assert trigger["metadata"]["awsRegion"] == "eu-west-1"
    assert {t["metadata"]["sasl"] for t in triggers(docs)} == {"aws_msk_iam"}


def test_the_offset_reset_policy_follows_the_bridges(render: Render) -> None:
    docs = render(sets=[*ON, "kafka.properties.auto\\.offset\\.reset=latest"])
    assert {t["metadata"]["offsetResetPolicy"] for t in triggers(docs)} == {"latest"}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["keda.enabled=true"], "keda.partitions (the partition count of the topics) is required"),
        ([*ON, "autoscaling.enabled=true"], "enable one of them"),
        ([*ON, "keda.minReplicaCount=7"], "keda.minReplicaCount (7) must not exceed"),
        ([*ON, "keda.maxReplicas=3"], "maxReplicas"),
        ([*ON, "keda.metadata.password=hunter2"], "password"),
        ([*ON, "keda.authenticationRef.kind=Secret"], "kind"),
    ],
)
def test_impossible_keda_values_are_refused(helm: Helm, sets: list[str], message: str) -> None:
    args = ["template", "rel", str(CHART)]
    for item in sets:
        args += ["--set", item]
    proc = helm(*args, check=False)
    assert proc.returncode != 0, sets
    assert message in proc.stderr


def test_the_notes_say_how_keda_scales_and_what_it_shares(helm: Helm, tmp_path: Path) -> None:
    notes = _notes(
        helm, tmp_path, {"keda": {"enabled": True, "partitions": 6, "lagThreshold": 500}}
    )
    notes = " ".join(notes.split())
    assert "Replicas: 2-6 (KEDA: one replica per 500 messages of lag on each of app.users" in notes
    assert "the replicas together spend it once" in notes
    assert "KEDA reads the lag from kafka:9092 in its own namespace" in notes
