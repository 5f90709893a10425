"""The chart's manifests against Kubernetes' own Go types (scripts/k8scheck, k8s.io/api), and its
KEDA objects against KEDA's (github.com/kedacore/keda/v2/apis/keda/v1alpha1).

Every render (defaults, each example values file, each values file of the matrix) is decoded
strictly into the k8s.io/api types, its metadata validated as the API server does, its pod
template evaluated for the Pod Security "restricted" level by k8s.io/pod-security-admission, and
its references (selectors, named ports, volumes, HPA target) resolved. The checker itself is shown
to fail on each kind of mistake it exists to catch.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from test_helm_values_matrix import CASES

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "meisa-bridge"
K8SCHECK = ROOT / "scripts" / "k8scheck.sh"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))

pytestmark = pytest.mark.timeout(900)

Helm = Callable[..., subprocess.CompletedProcess[str]]


def k8scheck(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(K8SCHECK), *args],
        input=stdin,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def checker() -> Callable[..., subprocess.CompletedProcess[str]]:
    """scripts/k8scheck.sh, built from the Go module proxy on first use; fails, never skips."""
    proc = k8scheck("-version")
    built_with = ("k8s.io/api v0.", "github.com/kedacore/keda/v2 v2.")
    if proc.returncode != 0 or any(m not in proc.stdout for m in built_with):
        pytest.fail(f"scripts/k8scheck.sh could not be built or run:\n{proc.stderr[-3000:]}")
    return k8scheck


def render_to(helm: Helm, out: Path, *args: str) -> Path:
    text = helm("template", "rel", str(CHART), "--namespace", "team-mail", *args).stdout
    out.write_text(text)
    return out


def test_defaults_and_every_example_decode_strictly_and_meet_restricted(
    helm: Helm, checker: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    renders = [render_to(helm, tmp_path / "defaults.yaml")]
    for example in EXAMPLES:
        renders.append(render_to(helm, tmp_path / example.name, "-f", str(example)))
    # The Secrets the chart creates from a key and SASL credentials given as values, and the
    # monitoring objects it can add.
    sets = ["meisa.apiKey=meisa_live_k8s", "kafka.securityProtocol=SASL_SSL"]
    sets += ["kafka.sasl.username=bridge", "kafka.sasl.password=pw"]
    sets += ["monitoring.prometheusRule.enabled=true", "monitoring.grafanaDashboard.enabled=true"]
    sets += ["keda.enabled=true", "keda.partitions=6", "kafka.tls.existingSecret=kafka-tls"]
    renders.append(render_to(helm, tmp_path / "everything.yaml", *(f"--set={s}" for s in sets)))
    assert len(renders) == 2 + len(EXAMPLES) >= 5
    proc = checker(*map(str, renders))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 problems" in proc.stderr
    kinds = {d["kind"] for r in renders for d in yaml.safe_load_all(r.read_text()) if d}
    # Everything the chart can render was decoded, the Prometheus Operator's type included.
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount", "PodDisruptionBudget"} <= kinds
    assert {"HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule", "Secret"} <= kinds
    assert {"ScaledObject", "TriggerAuthentication"} <= kinds


def test_every_matrix_values_file_decodes_strictly_and_meets_restricted(
    helm: Helm, checker: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    renders = []
    for name, values in CASES.items():
        values_file = tmp_path / f"{name}.values.yaml"
        values_file.write_text(yaml.safe_dump(values, sort_keys=False))
        renders.append(render_to(helm, tmp_path / f"{name}.yaml", "-f", str(values_file)))
    proc = checker(*map(str, renders))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(CASES)} inputs" in proc.stderr


def _defaults(helm: Helm, tmp_path: Path) -> str:
    return render_to(helm, tmp_path / "base.yaml").read_text()


# A one-line edit of the default render -> what the checker must say about it.
MISTAKES: dict[str, tuple[str, str, str]] = {
    "misspelt field": (
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: true\n            readOnlyRootFilesytem: true",
        'unknown field "spec.template.spec.containers[0].securityContext.readOnlyRootFilesytem"',
    ),
    "wrong type": ("replicas: 2", 'replicas: "two"', "cannot unmarshal string"),
    "privilege escalation": (
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true",
        'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false',
    ),
    "root user": ("runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot != true"),
    "service to a missing port": (
        "targetPort: metrics",
        "targetPort: metricz",
        'targetPort "metricz" is not a named port',
    ),
    "invalid label": (
        "app.kubernetes.io/name: meisa-bridge",
        "app.kubernetes.io/name: meisa bridge!",
        "metadata.labels",
    ),
    "unknown kind": ("kind: Service", "kind: Servise", "not a known Kubernetes type"),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_the_checker_fails_on_each_kind_of_mistake(
    helm: Helm,
    checker: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
    mistake: str,
) -> None:
    old, new, expected = MISTAKES[mistake]
    text = _defaults(helm, tmp_path)
    assert old in text, mistake
    proc = checker(stdin=text.replace(old, new))
    assert proc.returncode == 1, (mistake, proc.stdout, proc.stderr)
    assert expected in proc.stdout, (mistake, proc.stdout)


def _keda_render(helm: Helm, tmp_path: Path) -> str:
    sets = ["keda.enabled=true", "keda.partitions=6", "kafka.securityProtocol=SASL_SSL"]
    sets += ["kafka.sasl.existingSecret=kafka-sasl"]
    return render_to(helm, tmp_path / "keda.yaml", *(f"--set={s}" for s in sets)).read_text()


# A one-line edit of a render with the ScaledObject -> what KEDA's types and checks say about it.
KEDA_MISTAKES: dict[str, tuple[str, str, str]] = {
    "metadata value not a string": (
        'lagThreshold: "1000"',
        "lagThreshold: 1000",
        "cannot unmarshal",
    ),
    "misspelt field": (
        "  maxReplicaCount: 6",
        "  maxReplicaCount: 6\n  maxReplicas: 6",
        'unknown field "spec.maxReplicas"',
    ),
    "min above max": (
        "minReplicaCount: 2",
        "minReplicaCount: 9",
        "MinReplicaCount=9 must be less than MaxReplicaCount=6",
    ),
    "target not rendered": (
        "    kind: Deployment\n    name: rel-meisa-bridge",
        "    kind: Deployment\n    name: rel-meisa-bridg",
        "scaleTargetRef Deployment/rel-meisa-bridg is not rendered",
    ),
    "duplicate trigger name": ('"lag-app-product"', '"lag-app-users"', "defined multiple times"),
    "unused TriggerAuthentication": (
        "        name: rel-meisa-bridge-kafka",
        "        name: other-auth",
        "no ScaledObject trigger of the render refers to TriggerAuthentication",
    ),
}


@pytest.mark.parametrize("mistake", list(KEDA_MISTAKES))
def test_the_checker_fails_on_each_kind_of_keda_mistake(
    helm: Helm,
    checker: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
    mistake: str,
) -> None:
    old, new, expected = KEDA_MISTAKES[mistake]
    text = _keda_render(helm, tmp_path)
    assert checker(stdin=text).returncode == 0
    assert old in text, mistake
    proc = checker(stdin=text.replace(old, new))
    assert proc.returncode == 1, (mistake, proc.stdout, proc.stderr)
    assert expected in proc.stdout, (mistake, proc.stdout)


def test_the_checker_refuses_an_hpa_beside_the_scaled_object(
    helm: Helm, checker: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    hpa = render_to(helm, tmp_path / "hpa.yaml", "--set=autoscaling.enabled=true").read_text()
    [hpa_doc] = [d for d in hpa.split("\n---\n") if "kind: HorizontalPodAutoscaler" in d]
    proc = checker(stdin=_keda_render(helm, tmp_path) + "\n---\n" + hpa_doc)
    assert proc.returncode == 1, proc.stdout
    assert "already scales Deployment/rel-meisa-bridge; KEDA refuses a second" in proc.stdout
