"""The Helm chart: lint, render with every example values file, and check the rendered manifests."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "meisa-bridge"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
VALUES_CASES = [None, *EXAMPLES]
CASE_IDS = ["defaults", *(p.stem for p in EXAMPLES)]
LIVE_KEY = "meisa_live_Zq81xTestKeyNeverInAConfigMap"

# The first test may build helm from source (a few minutes on a fresh machine).
pytestmark = pytest.mark.timeout(900)

Render = Callable[..., list[dict[str, Any]]]
Docs = list[dict[str, Any]]


def find(docs: Docs, kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Docs, kind: str) -> dict[str, Any]:
    [doc] = find(docs, kind)
    return doc


def container(docs: Docs) -> dict[str, Any]:
    [c] = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def env(docs: Docs) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(docs)["env"]}


def bridge_yaml(docs: Docs) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(one(docs, "ConfigMap")["data"]["bridge.yaml"])
    return loaded


def annotations(docs: Docs) -> dict[str, str]:
    meta: dict[str, str] = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    return meta


def _values_args(case: Path | None) -> tuple[Path, ...]:
    return () if case is None else (case,)


def test_there_are_example_values_files() -> None:
    assert {p.name for p in EXAMPLES} >= {
        "existing-secret.yaml",
        "sasl-ssl.yaml",
        "monitoring.yaml",
    }


@pytest.mark.parametrize("case", VALUES_CASES, ids=CASE_IDS)
def test_chart_lints_clean(helm: Callable[..., Any], case: Path | None) -> None:
    args = ["lint", str(CHART), "--strict"]
    if case is not None:
        args += ["-f", str(case)]
    out = helm(*args).stdout
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("case", VALUES_CASES, ids=CASE_IDS)
def test_renders_a_complete_release(render: Render, case: Path | None) -> None:
    docs = render(*_values_args(case))
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ConfigMap", "Service", "PodDisruptionBudget"} <= kinds
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "meisa-bridge"
        assert labels["app.kubernetes.io/instance"] == "demo"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


@pytest.mark.parametrize("case", VALUES_CASES, ids=CASE_IDS)
def test_api_key_reaches_the_pod_only_through_a_secret_key_ref(
    render: Render, case: Path | None
) -> None:
    docs = render(*_values_args(case), sets=[f"meisa.apiKey={LIVE_KEY}"])
    key_env = env(docs)["MEISA_API_KEY"]
    assert "value" not in key_env
    assert set(key_env["valueFrom"]) == {"secretKeyRef"}
    for doc in docs:
        if doc["kind"] != "Secret":
            assert LIVE_KEY not in yaml.safe_dump(doc), doc["kind"]
    assert bridge_yaml(docs)["meisa"]["api_key"] == "${MEISA_API_KEY}"
    for item in container(docs)["env"]:
        assert "meisa_live_" not in str(item.get("value", ""))


def test_the_chart_created_secret_holds_the_key_the_env_points_at(render: Render) -> None:
    docs = render(sets=[f"meisa.apiKey={LIVE_KEY}"])
    ref = env(docs)["MEISA_API_KEY"]["valueFrom"]["secretKeyRef"]
    [secret] = [s for s in find(docs, "Secret") if s["metadata"]["name"] == ref["name"]]
    assert base64.b64decode(secret["data"][ref["key"]]).decode() == LIVE_KEY


def test_existing_secret_is_referenced_and_no_secret_is_created(render: Render) -> None:
    docs = render(CHART / "examples" / "existing-secret.yaml", sets=[f"meisa.apiKey={LIVE_KEY}"])
    ref = env(docs)["MEISA_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "meisa-api", "key": "token"}
    assert find(docs, "Secret") == []


@pytest.mark.parametrize("case", VALUES_CASES, ids=CASE_IDS)
def test_probes_hit_healthz_and_readyz_on_the_metrics_port(
    render: Render, case: Path | None
) -> None:
    docs = render(*_values_args(case))
    c = container(docs)
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    [port] = c["ports"]
    assert (port["name"], port["containerPort"]) == ("metrics", 9400)
    server = {"host": "0.0.0.0", "port": 9400, "halt_linger_seconds": 120}
    assert bridge_yaml(docs)["server"] == server
    assert one(docs, "Service")["spec"]["ports"][0]["targetPort"] == "metrics"


@pytest.mark.parametrize("case", VALUES_CASES, ids=CASE_IDS)
def test_pod_runs_restricted(render: Render, case: Path | None) -> None:
    docs = render(*_values_args(case))
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    sc = container(docs)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsUser"] != 0
    mounts = {m["mountPath"]: m["name"] for m in container(docs)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert container(docs)["resources"]["requests"]


def test_config_checksum_rolls_pods_when_rules_change(render: Render, tmp_path: Path) -> None:
    rules_a = tmp_path / "a.yaml"
    rules_a.write_text("rules: [{name: a, on: x.y, do: [{track: {email: '{{ data.e }}'}}]}]\n")
    rules_b = tmp_path / "b.yaml"
    rules_b.write_text("rules: [{name: b, on: x.z, do: [{track: {email: '{{ data.e }}'}}]}]\n")
    base = annotations(render(rules_a))
    changed = annotations(render(rules_b))
    same = annotations(render(rules_a))
    assert base["checksum/config"] == changed["checksum/config"]  # the config is the same
    assert base["checksum/rules"] != changed["checksum/rules"]
    assert base == same
    assert (
        annotations(render(rules_a, sets=["replicaCount=5"]))["checksum/rules"]
        == (base["checksum/rules"])
    )


def test_rules_reload_watch_keeps_the_pods_and_turns_the_file_watch_on(
    render: Render, tmp_path: Path
) -> None:
    rules_a = tmp_path / "a.yaml"
    rules_a.write_text("rules: [{name: a, on: x.y, do: [{track: {email: '{{ data.e }}'}}]}]\n")
    rules_b = tmp_path / "b.yaml"
    rules_b.write_text("rules: [{name: b, on: x.z, do: [{track: {email: '{{ data.e }}'}}]}]\n")
    watch = ["rulesReload=watch", "config.reload.watch_interval_seconds=5"]
    docs = render(rules_a, sets=watch)
    assert "checksum/rules" not in annotations(docs)
    assert annotations(docs) == annotations(render(rules_b, sets=watch))  # no roll
    assert bridge_yaml(docs)["reload"] == {"watch": True, "watch_interval_seconds": 5}
    assert "reload" not in bridge_yaml(render(rules_a))  # restart: the default


@pytest.mark.parametrize("replicas", [1, 3, 8])
def test_by_default_the_rate_share_follows_the_partitions(render: Render, replicas: int) -> None:
    docs = render(sets=[f"replicaCount={replicas}"])
    assert one(docs, "Deployment")["spec"]["replicas"] == replicas
    assert "MEISA_RATE_SHARE" not in env(docs)
    assert "rate_share" not in bridge_yaml(docs)["meisa"]


def test_with_the_hpa_the_share_follows_max_replicas(render: Render) -> None:
    docs = render(CHART / "examples" / "monitoring.yaml")
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert "replicas" not in one(docs, "Deployment")["spec"]
    assert hpa["spec"]["maxReplicas"] == 4
    assert hpa["spec"]["scaleTargetRef"]["name"] == one(docs, "Deployment")["metadata"]["name"]
    assert "MEISA_RATE_SHARE" not in env(docs)  # the share follows the partitions
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_the_sent_email_ledger_is_configured_through_config(render: Render) -> None:
    assert "ledger" not in bridge_yaml(render())  # on by default, named from kafka.groupId
    docs = render(sets=["config.ledger.topic=meisa-bridge.sent", "config.ledger.retention_days=14"])
    assert bridge_yaml(docs)["ledger"] == {"topic": "meisa-bridge.sent", "retention_days": 14}
    off = render(sets=["config.ledger.enabled=false"])
    assert bridge_yaml(off)["ledger"] == {"enabled": False}


def test_an_explicit_rate_share_wins(render: Render) -> None:
    docs = render(sets=["replicaCount=4", "meisa.rateShare=0.5"])
    assert float(env(docs)["MEISA_RATE_SHARE"]["value"]) == 0.5
    assert bridge_yaml(docs)["meisa"]["rate_share"] == "${MEISA_RATE_SHARE}"


def test_sasl_ssl_credentials_come_from_secrets(render: Render) -> None:
    docs = render(CHART / "examples" / "sasl-ssl.yaml")
    e = env(docs)
    for name, key in [("KAFKA_SASL_USERNAME", "username"), ("KAFKA_SASL_PASSWORD", "password")]:
        assert e[name]["valueFrom"]["secretKeyRef"] == {"name": "kafka-sasl", "key": key}
        assert "value" not in e[name]
    kafka = bridge_yaml(docs)["kafka"]
    assert kafka["security.protocol"] == "SASL_SSL"
    assert kafka["sasl.username"] == "${KAFKA_SASL_USERNAME}"
    assert kafka["sasl.password"] == "${KAFKA_SASL_PASSWORD}"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    [tls] = [v for v in pod["volumes"] if v["name"] == "kafka-tls"]
    assert tls["secret"]["secretName"] == "kafka-tls"
    [mount] = [m for m in container(docs)["volumeMounts"] if m["name"] == "kafka-tls"]
    assert mount["readOnly"] is True
    assert kafka["ssl.ca.location"] == f"{mount['mountPath']}/ca.crt"
    assert find(docs, "Secret") == []


def test_sasl_credentials_given_as_values_go_to_a_chart_secret(render: Render) -> None:
    docs = render(
        sets=[
            "kafka.securityProtocol=SASL_PLAINTEXT",
            "kafka.sasl.username=bridge",
            "kafka.sasl.password=s3cret-Pass",
        ]
    )
    ref = env(docs)["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    [secret] = [s for s in find(docs, "Secret") if s["metadata"]["name"] == ref["name"]]
    assert base64.b64decode(secret["data"][ref["key"]]).decode() == "s3cret-Pass"
    assert "s3cret-Pass" not in yaml.safe_dump(one(docs, "ConfigMap"))
    assert "s3cret-Pass" not in yaml.safe_dump(one(docs, "Deployment"))


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["kafka.securityProtocol=SASL_SSL"], "kafka.sasl.username"),
        (["kafka.securityProtocol=BOGUS"], "securityProtocol"),
        (["kafka.properties.sasl\\.password=oops"], "sasl.password"),
        (["meisa.rateShare=2"], "rateShare"),
        (["service.port=0"], "port"),
    ],
)
def test_invalid_values_are_refused_with_a_message(
    helm: Callable[..., Any], sets: list[str], message: str
) -> None:
    args = ["template", "demo", str(CHART)]
    for item in sets:
        args += ["--set", item]
    proc = helm(*args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_arbitrary_values_file_renders_a_config_the_bridge_loads(
    render: Render, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        "fullnameOverride": "mail-bridge",
        "replicaCount": 3,
        "image": {"repository": "registry.example.com/meisa-bridge", "tag": "1.2.3"},
        "meisa": {"baseUrl": "http://sandbox.tools:8080/api/v1", "existingSecret": "mk"},
        "kafka": {
            "bootstrapServers": "kafka.data:9092",
            "groupId": "mail",
            "properties": {"session.timeout.ms": 45000, "client.rack": "eu-1a"},
        },
        "topics": ["app.events"],
        "deadLetterTopic": "mail.dlq",
        "rules": (ROOT / "examples" / "rules.yaml").read_text(),
        "config": {"pipeline": {"max_in_flight": 64}, "logging": {"level": "DEBUG"}},
        "service": {"port": 9500},
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "podAnnotations": {"team": "growth"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "podDisruptionBudget": {"enabled": False},
        "serviceAccount": {"create": False, "name": "shared"},
    }
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    docs = render(values_file)
    assert find(docs, "PodDisruptionBudget") == []
    assert find(docs, "ServiceAccount") == []
    deploy = one(docs, "Deployment")
    assert deploy["metadata"]["name"] == "mail-bridge"
    pod = deploy["spec"]["template"]
    assert pod["metadata"]["annotations"]["team"] == "growth"
    assert pod["spec"]["serviceAccountName"] == "shared"
    assert container(docs)["image"] == "registry.example.com/meisa-bridge:1.2.3"
    assert container(docs)["ports"][0]["containerPort"] == 9500
    assert env(docs)["TZ"]["value"] == "UTC"

    # The rendered ConfigMap is exactly what the pod mounts at /etc/meisa-bridge: load it.
    for name, text in one(docs, "ConfigMap")["data"].items():
        (tmp_path / name).write_text(text)
    monkeypatch.setenv("MEISA_API_KEY", "meisa_test_from_secret_env")
    config = load_config(tmp_path / "bridge.yaml")
    assert config.meisa.base_url == "http://sandbox.tools:8080/api/v1"
    assert config.meisa.api_key.get_secret_value() == "meisa_test_from_secret_env"
    assert config.meisa.rate_share is None  # follows the partitions
    assert config.kafka["bootstrap.servers"] == "kafka.data:9092"
    assert config.kafka["session.timeout.ms"] == "45000"
    assert config.topics == ("app.events",)
    assert config.dlq.topic == "mail.dlq"
    assert config.ledger.topic_for(config.kafka) == "mail.sent-emails"  # the default, unasked
    assert config.pipeline.max_in_flight == 64
    assert config.server.port == 9500
    assert config.logging.level == "DEBUG"
    assert config.rules is not None
