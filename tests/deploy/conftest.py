"""Fixtures for the deployment checks: a helm binary (built on demand) and a chart renderer."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "meisa-bridge"
HELM_SH = ROOT / "scripts" / "helm.sh"
IMAGES_SH = ROOT / "scripts" / "images.sh"

Render = Callable[..., list[dict[str, Any]]]


def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(HELM_SH), *args], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def helm() -> Callable[..., subprocess.CompletedProcess[str]]:
    """scripts/helm.sh, built from the Go module proxy on first use; fails loudly, never skips."""
    proc = run_helm("version", "--short", check=False)
    if proc.returncode != 0:
        pytest.fail(
            "helm could not be built or run via scripts/helm.sh (needs Go and the Go module proxy);"
            f" the chart checks cannot run:\n{proc.stderr[-2000:]}"
        )
    return run_helm


@pytest.fixture(scope="session")
def render(helm: Callable[..., subprocess.CompletedProcess[str]]) -> Render:
    def _render(
        *values_files: Path | str, sets: Sequence[str] = (), release: str = "demo"
    ) -> list[dict[str, Any]]:
        args = ["template", release, str(CHART), "--namespace", "apps"]
        for path in values_files:
            args += ["-f", str(path)]
        for item in sets:
            args += ["--set", item]
        out = helm(*args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]

    return _render


@pytest.fixture(scope="session")
def docker_images() -> dict[str, str]:
    """The engine up and the images built by scripts/images.sh (cached); fails, never skips.

    The bridge image gets a tag of this checkout's own, so test runs of several checkouts on one
    engine never run each other's image. Returns the variables docker compose is run with
    (BRIDGE_IMAGE, PYTHON_IMAGE, KAFKA_IMAGE).
    """
    tag = hashlib.sha256(str(ROOT).encode()).hexdigest()[:10]
    env = {**os.environ, "BRIDGE_IMAGE": f"meisa-bridge:test-{tag}"}
    build = subprocess.run(
        [str(IMAGES_SH), "build"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if build.returncode != 0:
        pytest.fail(
            f"scripts/images.sh build failed:\n{build.stdout[-2000:]}{build.stderr[-4000:]}"
        )
    found = subprocess.run(
        [str(IMAGES_SH), "env"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(line.split("=", 1) for line in found.stdout.splitlines() if "=" in line)
