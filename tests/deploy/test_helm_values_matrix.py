"""The chart with values files written the way users write them (none of them are in the repo).

Every case is linted with --strict, rendered for an old and a current Kubernetes, checked against
the chart's invariants (tests/deploy/chart_checks.py) and its bridge.yaml loaded by the bridge.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_checks import (
    bridge_container,
    check_invariants,
    env_of,
    find,
    one,
    pod_spec,
)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "meisa-bridge"
RULES_FILE = ROOT / "examples" / "rules.yaml"
LIVE_KEY = "meisa_live_9hQ2MatrixKeyOnlyInASecret"
SASL_PASSWORD = "sasl-Pa55-matrix"
KUBE_VERSIONS = ("1.23.0", "1.34.0")

pytestmark = pytest.mark.timeout(900)

Helm = Callable[..., subprocess.CompletedProcess[str]]

INLINE_RULES = [
    {
        "name": "signup",
        "on": "user.signed_up",
        "do": [{"upsert": {"email": "{{ data.email }}", "external_id": "{{ data.user_id }}"}}],
    }
]

CASES: dict[str, dict[str, Any]] = {
    "one-replica": {"replicaCount": 1, "meisa": {"existingSecret": "mk"}},
    "three-replicas": {"replicaCount": 3, "meisa": {"apiKey": LIVE_KEY}},
    "ten-replicas": {"replicaCount": 10, "meisa": {"existingSecret": "mk"}},
    "image-tag-and-pull-secrets": {
        "image": {
            "repository": "registry.corp/meisa-bridge",
            "tag": "1.4.2",
            "pullPolicy": "Always",
        },
        "imagePullSecrets": [{"name": "regcred"}, "second-cred"],
    },
    "image-numeric-tag": {"image": {"tag": 20240101}},
    "image-digest": {
        "image": {
            "repository": "registry.corp/meisa-bridge",
            "tag": "1.4.2",
            "digest": "sha256:" + "ab" * 32,
        }
    },
    "irsa-service-account": {
        "serviceAccount": {
            "create": True,
            "name": "bridge-irsa",
            "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123:role/bridge"},
        },
        "podAnnotations": {"ad.datadoghq.com/bridge.logs": '[{"source":"python"}]'},
        "podLabels": {"team": "growth", "cost-center": "cc-42"},
    },
    "existing-service-account": {"serviceAccount": {"create": False, "name": "shared-sa"}},
    "scheduling": {
        "nodeSelector": {"kubernetes.io/os": "linux", "pool": "consumers"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "kafka", "effect": "NoSchedule"}
        ],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {
                                "matchLabels": {"app.kubernetes.io/name": "meisa-bridge"}
                            },
                        },
                    }
                ]
            }
        },
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "rel"}},
            }
        ],
        "priorityClassName": "high-priority",
    },
    "resources": {
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        }
    },
    "extras": {
        "extraEnv": [
            {"name": "TZ", "value": "UTC"},
            {"name": "DD_AGENT_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        ],
        "extraEnvFrom": [{"configMapRef": {"name": "shared-env"}}],
        "extraVolumes": [{"name": "schemas", "configMap": {"name": "avro-schemas"}}],
        "extraVolumeMounts": [{"name": "schemas", "mountPath": "/etc/schemas", "readOnly": True}],
        "config": {"codec": {"format": "avro", "schemas_dir": "/etc/schemas"}},
    },
    "existing-secret-custom-key": {
        "meisa": {"existingSecret": "meisa-api", "existingSecretKey": "token"}
    },
    "api-key-inline": {"meisa": {"apiKey": LIVE_KEY}},
    "sasl-ssl-scram-512": {
        "meisa": {"existingSecret": "mk"},
        "kafka": {
            "bootstrapServers": "b-1.msk:9096,b-2.msk:9096",
            "securityProtocol": "SASL_SSL",
            "sasl": {"mechanism": "SCRAM-SHA-512", "username": "bridge", "password": SASL_PASSWORD},
        },
    },
    "sasl-ssl-plain-existing-secret": {
        "kafka": {
            "bootstrapServers": "pkc-123.confluent.cloud:9092",
            "securityProtocol": "SASL_SSL",
            "sasl": {
                "mechanism": "PLAIN",
                "existingSecret": "ccloud",
                "usernameKey": "api-key",
                "passwordKey": "api-secret",
            },
        },
    },
    "ssl-only-ca-from-secret": {
        "kafka": {
            "securityProtocol": "SSL",
            "tls": {"existingSecret": "kafka-ca", "caKey": "ca.pem"},
        }
    },
    "mutual-tls": {
        "kafka": {
            "securityProtocol": "SSL",
            "tls": {
                "existingSecret": "kafka-mtls",
                "caKey": "ca.crt",
                "certKey": "tls.crt",
                "keyKey": "tls.key",
                "keyPasswordKey": "key-password",
            },
        }
    },
    "kafka-properties-topics-dlq": {
        "kafka": {
            "groupId": "mail-bridge",
            "properties": {
                "client.id": "mail-bridge",
                "session.timeout.ms": 45000,
                "fetch.max.bytes": 52428800,
                "enable.ssl.certificate.verification": False,
                "client.rack": "eu-west-1a",
            },
        },
        "topics": ["users.v1", "billing.v1"],
        "deadLetterTopic": "mail-bridge.dlq.v1",
    },
    "no-dead-letter-topic": {"deadLetterTopic": ""},
    "rules-inline": {"rules": INLINE_RULES},
    "sandbox-and-rate-limits": {
        "meisa": {
            "baseUrl": "http://meisa-sandbox.tools.svc:8080/api/v1",
            "apiKey": "meisa_test_sandbox_0000000000000000000000",
        },
        "config": {
            "meisa": {"rate_limit_per_minute": 30, "rate_limit_per_hour": 500, "timeout": 5},
            "pipeline": {"max_in_flight": 8, "shutdown_grace_seconds": 20},
            "dlq": {"max_consecutive": 20},
            "logging": {"level": "DEBUG", "format": "text"},
        },
    },
    "explicit-rate-share": {"replicaCount": 4, "meisa": {"rateShare": "0.5"}},
    "service-monitor": {
        "serviceMonitor": {
            "enabled": True,
            "interval": "15s",
            "scrapeTimeout": "10s",
            "labels": {"release": "kube-prometheus-stack"},
            "namespace": "monitoring",
            "relabelings": [
                {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}
            ],
        }
    },
    "keda-lag-scaling": {
        "meisa": {"existingSecret": "mk"},
        "keda": {"enabled": True, "partitions": 6, "minReplicaCount": 1, "lagThreshold": 200},
    },
    "keda-sasl-mtls-scale-to-zero": {
        "kafka": {
            "bootstrapServers": "kafka.data.svc:9093",
            "securityProtocol": "SASL_SSL",
            "sasl": {"mechanism": "SCRAM-SHA-256", "existingSecret": "kafka-sasl"},
            "tls": {"existingSecret": "kafka-tls", "certKey": "tls.crt", "keyKey": "tls.key"},
            "properties": {"auto.offset.reset": "latest"},
        },
        "keda": {
            "enabled": True,
            "partitions": 12,
            "maxReplicaCount": 8,
            "minReplicaCount": 0,
            "activationLagThreshold": 50,
            "limitToPartitionsWithLag": True,
            "metadata": {"excludePersistentLag": True},
            "fallback": {"failureThreshold": 3, "replicas": 2},
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
        },
    },
    "hpa": {
        "autoscaling": {
            "enabled": True,
            "minReplicas": 3,
            "maxReplicas": 12,
            "targetCPUUtilizationPercentage": 65,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600}},
        }
    },
    "pdb-min-available": {"replicaCount": 3, "podDisruptionBudget": {"minAvailable": 2}},
    "pdb-max-unavailable-percent": {"podDisruptionBudget": {"maxUnavailable": "50%"}},
    "pdb-off": {"podDisruptionBudget": {"enabled": False}},
    "probes-tuned": {
        "livenessProbe": {"initialDelaySeconds": 30, "periodSeconds": 20, "failureThreshold": 10},
        "readinessProbe": {"periodSeconds": 5, "timeoutSeconds": 2},
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": "metrics"},
            "periodSeconds": 5,
            "failureThreshold": 30,
        },
    },
    "names-overridden": {"fullnameOverride": "mail-bridge", "nameOverride": "mailer"},
    "name-override-only": {"nameOverride": "mailer"},
    "other-port-and-service": {
        "service": {
            "type": "ClusterIP",
            "port": 9500,
            "annotations": {"prometheus.io/scrape": "true"},
        }
    },
    "sidecars-and-init": {
        "initContainers": [{"name": "wait", "image": "busybox:1.36", "command": ["true"]}],
        "sidecars": [{"name": "proxy", "image": "envoyproxy/envoy:v1.31.0"}],
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
        },
    },
    "global-from-a-parent-chart": {"global": {"imageRegistry": "mirror.corp"}},
}


def _write(tmp_path: Path, name: str, values: dict[str, Any]) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def _template(
    helm: Helm, values_file: Path, *extra: str, kube: str | None = None
) -> list[dict[str, Any]]:
    args = [
        "template",
        "rel",
        str(CHART),
        "--namespace",
        "team-mail",
        "-f",
        str(values_file),
        *extra,
    ]
    if kube:
        args += ["--kube-version", kube]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


@pytest.mark.parametrize("name", list(CASES))
def test_user_values_lint_render_and_keep_the_invariants(
    helm: Helm, tmp_path: Path, name: str
) -> None:
    values = CASES[name]
    values_file = _write(tmp_path, name, values)
    lint = helm("lint", str(CHART), "--strict", "-f", str(values_file))
    assert "0 chart(s) failed" in lint.stdout
    for kube in KUBE_VERSIONS:
        docs = _template(helm, values_file, kube=kube)
        for doc in docs:
            assert doc["metadata"].get("namespace", "team-mail") == (
                "monitoring"
                if doc["kind"] == "ServiceMonitor" and name == "service-monitor"
                else "team-mail"
            )
        check_invariants(docs, values, tmp_path / f"mounted-{kube}")


def test_rules_from_set_file_are_mounted_and_load(helm: Helm, tmp_path: Path) -> None:
    values_file = _write(tmp_path, "key", {"meisa": {"existingSecret": "mk"}})
    docs = _template(helm, values_file, "--set-file", f"rules={RULES_FILE}")
    config = check_invariants(docs, {}, tmp_path / "mounted")
    assert one(docs, "ConfigMap")["data"]["rules.yaml"].strip() == RULES_FILE.read_text().strip()
    assert len(config.rules) == len(yaml.safe_load(RULES_FILE.read_text())["rules"])
    # The CLI a user runs against the mounted files accepts them too.
    cli = Path(sys.executable).with_name("meisa-bridge")
    env = {**os.environ, **{k: v.get("value", "x") for k, v in env_of(docs).items()}}
    proc = subprocess.run(
        [str(cli), "validate", "--rules", str(tmp_path / "mounted" / "bridge.yaml")],
        capture_output=True, text=True, env=env, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"ok: {len(config.rules)} rules" in proc.stdout


def render_case(helm: Helm, tmp_path: Path, name: str) -> list[dict[str, Any]]:
    return _template(helm, _write(tmp_path, name, CASES[name]))


def test_image_reference_forms(helm: Helm, tmp_path: Path) -> None:
    numeric = bridge_container(render_case(helm, tmp_path, "image-numeric-tag"))
    assert numeric["image"] == "ghcr.io/meisa/meisa-bridge:20240101"
    digest_docs = render_case(helm, tmp_path, "image-digest")
    assert (
        bridge_container(digest_docs)["image"] == "registry.corp/meisa-bridge@sha256:" + "ab" * 32
    )
    tagged = render_case(helm, tmp_path, "image-tag-and-pull-secrets")
    assert bridge_container(tagged)["image"] == "registry.corp/meisa-bridge:1.4.2"
    assert bridge_container(tagged)["imagePullPolicy"] == "Always"
    assert pod_spec(tagged)["imagePullSecrets"] == [{"name": "regcred"}, {"name": "second-cred"}]
    labels = one(digest_docs, "Deployment")["metadata"]["labels"]
    assert labels["app.kubernetes.io/version"] == "1.4.2"


def test_service_account_for_irsa(helm: Helm, tmp_path: Path) -> None:
    docs = render_case(helm, tmp_path, "irsa-service-account")
    sa = one(docs, "ServiceAccount")
    assert sa["metadata"]["name"] == "bridge-irsa" == pod_spec(docs)["serviceAccountName"]
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    meta = one(docs, "Deployment")["spec"]["template"]["metadata"]
    assert meta["labels"]["team"] == "growth"
    assert meta["annotations"]["ad.datadoghq.com/bridge.logs"] == '[{"source":"python"}]'
    shared = render_case(helm, tmp_path, "existing-service-account")
    assert find(shared, "ServiceAccount") == []
    assert pod_spec(shared)["serviceAccountName"] == "shared-sa"


def test_scheduling_values_reach_the_pod(helm: Helm, tmp_path: Path) -> None:
    pod = pod_spec(render_case(helm, tmp_path, "scheduling"))
    case = CASES["scheduling"]
    for key in (
        "nodeSelector",
        "tolerations",
        "affinity",
        "topologySpreadConstraints",
        "priorityClassName",
    ):
        assert pod[key] == case[key], key


def test_extra_env_volumes_and_containers(helm: Helm, tmp_path: Path) -> None:
    docs = render_case(helm, tmp_path, "extras")
    c = bridge_container(docs)
    assert env_of(docs)["TZ"]["value"] == "UTC"
    assert env_of(docs)["DD_AGENT_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert c["envFrom"] == [{"configMapRef": {"name": "shared-env"}}]
    assert {"name": "schemas", "mountPath": "/etc/schemas", "readOnly": True} in c["volumeMounts"]
    assert {"name": "schemas", "configMap": {"name": "avro-schemas"}} in pod_spec(docs)["volumes"]
    more = render_case(helm, tmp_path, "sidecars-and-init")
    pod = pod_spec(more)
    assert [c["name"] for c in pod["containers"]] == ["bridge", "proxy"]
    assert [c["name"] for c in pod["initContainers"]] == ["wait"]
    assert one(more, "Deployment")["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


def test_credentials_from_chart_and_existing_secrets(helm: Helm, tmp_path: Path) -> None:
    docs = render_case(helm, tmp_path, "existing-secret-custom-key")
    assert env_of(docs)["MEISA_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "meisa-api",
        "key": "token",
    }
    assert find(docs, "Secret") == []
    docs = render_case(helm, tmp_path, "sasl-ssl-scram-512")
    ref = env_of(docs)["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    [secret] = [s for s in find(docs, "Secret") if s["metadata"]["name"] == ref["name"]]
    assert base64.b64decode(secret["data"][ref["key"]]).decode() == SASL_PASSWORD
    kafka = yaml.safe_load(one(docs, "ConfigMap")["data"]["bridge.yaml"])["kafka"]
    assert (kafka["security.protocol"], kafka["sasl.mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    docs = render_case(helm, tmp_path, "sasl-ssl-plain-existing-secret")
    e = env_of(docs)
    assert e["KAFKA_SASL_USERNAME"]["valueFrom"]["secretKeyRef"] == {
        "name": "ccloud",
        "key": "api-key",
    }
    assert e["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "ccloud",
        "key": "api-secret",
    }
    docs = render_case(helm, tmp_path, "mutual-tls")
    kafka = yaml.safe_load(one(docs, "ConfigMap")["data"]["bridge.yaml"])["kafka"]
    assert kafka["ssl.key.password"] == "${KAFKA_SSL_KEY_PASSWORD}"
    assert kafka["ssl.certificate.location"] == "/etc/kafka-tls/tls.crt"
    ref = env_of(docs)["KAFKA_SSL_KEY_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "kafka-mtls", "key": "key-password"}


def test_service_monitor_hpa_and_pdb(helm: Helm, tmp_path: Path) -> None:
    monitor = one(render_case(helm, tmp_path, "service-monitor"), "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-mail"]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("15s", "10s")
    assert endpoint["relabelings"][0]["targetLabel"] == "node"
    hpa = one(render_case(helm, tmp_path, "hpa"), "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 65
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
    pdb = one(render_case(helm, tmp_path, "pdb-min-available"), "PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] == 2
    assert "maxUnavailable" not in pdb
    pdb = one(render_case(helm, tmp_path, "pdb-max-unavailable-percent"), "PodDisruptionBudget")[
        "spec"
    ]
    assert pdb["maxUnavailable"] == "50%"
    assert find(render_case(helm, tmp_path, "pdb-off"), "PodDisruptionBudget") == []


@pytest.mark.parametrize(
    ("pdb", "expected"),
    [
        ({"maxUnavailable": 0}, {"maxUnavailable": 0}),
        ({"minAvailable": 0}, {"minAvailable": 0}),
        ({"minAvailable": "100%"}, {"minAvailable": "100%"}),
        ({}, {"maxUnavailable": 1}),
    ],
)
def test_pdb_keeps_zero_and_percent_values(
    helm: Helm, tmp_path: Path, pdb: dict[str, Any], expected: dict[str, Any]
) -> None:
    docs = _template(helm, _write(tmp_path, "pdb", {"podDisruptionBudget": pdb}))
    spec = one(docs, "PodDisruptionBudget")["spec"]
    assert {k: v for k, v in spec.items() if k != "selector"} == expected


def test_probes_tuned_keep_their_endpoints(helm: Helm, tmp_path: Path) -> None:
    c = bridge_container(render_case(helm, tmp_path, "probes-tuned"))
    assert c["livenessProbe"]["initialDelaySeconds"] == 30
    assert c["livenessProbe"]["failureThreshold"] == 10
    assert c["readinessProbe"]["periodSeconds"] == 5
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert "startupProbe" not in bridge_container(render_case(helm, tmp_path, "one-replica"))


def test_names_follow_the_overrides(helm: Helm, tmp_path: Path) -> None:
    docs = render_case(helm, tmp_path, "names-overridden")
    for doc in docs:
        assert doc["metadata"]["name"] == "mail-bridge" or doc["kind"] == "Secret"
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "mailer"
    docs = render_case(helm, tmp_path, "name-override-only")
    assert one(docs, "Deployment")["metadata"]["name"] == "rel-mailer"
    selector = one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "mailer", "app.kubernetes.io/instance": "rel"}
    assert one(docs, "Service")["spec"]["selector"] == selector


def test_an_old_kubernetes_is_refused_by_the_chart(helm: Helm) -> None:
    proc = helm("template", "rel", str(CHART), "--kube-version", "1.22.0", check=False)
    assert proc.returncode != 0
    assert "kubeVersion" in proc.stderr


def _notes(helm: Helm, tmp_path: Path, values: dict[str, Any]) -> str:
    """NOTES.txt as `helm install` prints it (rendered as a manifest: helm template skips it)."""
    chart = tmp_path / "chart"
    if not chart.exists():
        shutil.copytree(CHART, chart)
        notes = (chart / "templates" / "NOTES.txt").read_text()
        (chart / "templates" / "_notes_preview.tpl").write_text(
            '{{- define "notes.preview" -}}\n' + notes + "\n{{- end }}\n"
        )
        (chart / "templates" / "notes-preview.yaml").write_text(
            'kind: NotesPreview\ntext: {{ include "notes.preview" . | toJson }}\n'
        )
    values_file = _write(tmp_path, "notes-values", values)
    out = helm(
        "template", "rel", str(chart), "-n", "team-mail", "-f", str(values_file),
        "--show-only", "templates/notes-preview.yaml",
    ).stdout  # fmt: skip
    text: str = yaml.safe_load(out)["text"]
    return text


@pytest.mark.parametrize("name", list(CASES))
def test_notes_render_for_every_case(helm: Helm, tmp_path: Path, name: str) -> None:
    values = CASES[name]
    notes = _notes(helm, tmp_path, values)
    fullname = one(render_case(helm, tmp_path, name), "Deployment")["metadata"]["name"]
    assert f"deployed as {fullname} in namespace team-mail" in notes
    assert f"svc/{fullname}" in notes
    has_key = bool(
        values.get("meisa", {}).get("apiKey") or values.get("meisa", {}).get("existingSecret")
    )
    assert ("no API key configured" in notes) is not has_key
    assert ("no rules configured" in notes) is not bool(values.get("rules"))
    if values.get("autoscaling", {}).get("enabled"):
        assert "(HPA)" in notes
    elif values.get("keda", {}).get("enabled"):
        assert "(KEDA: one replica per" in notes
    else:
        assert f"Replicas: {values.get('replicaCount', 2)};" in notes
    assert "%!" not in notes  # no Go formatting errors


def test_notes_name_the_rate_share_source(helm: Helm, tmp_path: Path) -> None:
    notes = _notes(helm, tmp_path, CASES["explicit-rate-share"])
    assert "spends 0.5 of the API key's rate budget (meisa.rateShare)" in notes
    notes = _notes(helm, tmp_path, CASES["hpa"])
    assert "spends its partitions' part of the API key's rate budget (recomputed" in notes


def test_notes_warn_when_termination_grace_is_shorter_than_the_drain(
    helm: Helm, tmp_path: Path
) -> None:
    values = {
        "config": {"pipeline": {"shutdown_grace_seconds": 60}},
        "terminationGracePeriodSeconds": 45,
    }
    assert "terminationGracePeriodSeconds" in _notes(helm, tmp_path, values)
    assert "terminationGracePeriodSeconds" not in _notes(helm, tmp_path, {})


def test_notes_warn_when_the_pdb_blocks_every_eviction(helm: Helm, tmp_path: Path) -> None:
    values = {"replicaCount": 1, "podDisruptionBudget": {"minAvailable": 1}}
    assert "blocks" in _notes(helm, tmp_path, values)
    assert "blocks" not in _notes(helm, tmp_path, {"replicaCount": 1})
