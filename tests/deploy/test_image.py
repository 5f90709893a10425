"""The project image, built for real (scripts/images.sh) and inspected on the Docker engine.

Containers here run with `--network none`: they reach nothing and nothing reaches them.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# What a runtime stage must not carry: compilers, linkers, build drivers, headers.
BUILD_TOOLS = (
    "gcc",
    "cc",
    "c++",
    "g++",
    "clang",
    "cpp",
    "ld",
    "as",
    "make",
    "cmake",
    "rustc",
    "go",
)
BUILD_PACKAGES = re.compile(
    r"^(gcc(-\d+)?|g\+\+(-\d+)?|cpp(-\d+)?|binutils.*|make|build-essential|libc6-dev|"
    r"python3(\.\d+)?-dev|libpython3(\.\d+)?-dev|linux-libc-dev)$"
)
# The image must stay small: its size is printed by `make image` and bounded here.
MAX_IMAGE_MB = 450

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]


def docker(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def run(image: str, *args: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
    """A throw-away container as Kubernetes runs it: read-only root, /tmp writable, no network."""
    options = ["--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL"]
    options += ["--security-opt", "no-new-privileges:true"]
    if entrypoint:
        options += ["--entrypoint", entrypoint]
    return docker("run", *options, image, *args, check=False)


@pytest.fixture(scope="module")
def name(docker_images: dict[str, str]) -> str:
    return docker_images["BRIDGE_IMAGE"]


@pytest.fixture(scope="module")
def image(name: str) -> dict[str, Any]:
    inspected: list[dict[str, Any]] = json.loads(docker("image", "inspect", name).stdout)
    return inspected[0]


def test_version_label_matches_the_package_and_the_cli(name: str, image: dict[str, Any]) -> None:
    labels = image["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.title"] == "meisa-bridge"
    proc = run(name, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"meisa-bridge {VERSION}"


def test_runs_as_a_non_root_user(name: str, image: dict[str, Any]) -> None:
    assert image["Config"]["User"] == "10001:10001"
    proc = run(name, "-c", "id -u; id -g", entrypoint="sh")
    assert proc.stdout.split() == ["10001", "10001"], proc.stderr


def test_read_only_root_works_and_only_tmp_is_writable(name: str) -> None:
    script = (
        "touch /opt/venv/probe 2>/dev/null && echo root-writable; "
        "touch /tmp/probe && echo tmp-writable; "
        "meisa-bridge validate --rules /opt/venv/missing.yaml >/dev/null 2>&1; echo validate=$?"
    )
    proc = run(name, "-c", script, entrypoint="sh")
    lines = proc.stdout.split()
    assert "root-writable" not in lines
    assert "tmp-writable" in lines
    # The CLI starts (bytecode precompiled, nothing written) and reports the missing file.
    assert any(line.startswith("validate=") and line != "validate=0" for line in lines), proc


def test_no_compilers_or_build_tools_in_the_runtime_stage(name: str) -> None:
    found = run(
        name,
        "-c",
        f"for t in {' '.join(BUILD_TOOLS)}; do command -v $t; done; true",
        entrypoint="sh",
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == []
    packages = run(name, "-W", "-f", "${Package}\\n", entrypoint="dpkg-query")
    assert packages.returncode == 0, packages.stderr
    assert [p for p in packages.stdout.split() if BUILD_PACKAGES.match(p)] == []
    # Nothing of the builder stage but the venv: no sources, no wheels.
    leftovers = run(name, "-c", "ls -d /src /wheels 2>/dev/null; true", entrypoint="sh")
    assert leftovers.stdout.split() == []


def test_image_size_is_bounded(name: str, image: dict[str, Any]) -> None:
    size_mb = image["Size"] / 1e6
    assert size_mb < MAX_IMAGE_MB, f"{name} is {size_mb:.0f} MB"


def test_health_check_polls_the_bridge_health_endpoint(image: dict[str, Any]) -> None:
    # That it answers is shown on the running stack (test_compose_stack.py).
    check = image["Config"]["Healthcheck"]
    assert check["Test"][0] == "CMD"
    assert "/healthz" in " ".join(check["Test"])
    assert "BRIDGE_HTTP_PORT" in " ".join(check["Test"])
    assert check["Retries"] >= 1


def test_kafka_image_reads_kafka_variables_like_apache_kafka(
    docker_images: dict[str, str],
) -> None:
    kafka = docker_images["KAFKA_IMAGE"]
    if not kafka.startswith("meisa-bridge-kafka:"):
        pytest.skip(f"compose runs the stock {kafka}, not the image built here")
    env = ["-e", "KAFKA_PROCESS_ROLES=broker,controller", "-e", "KAFKA_NUM_PARTITIONS=3"]
    env += ["-e", "KAFKA_LISTENER_NAME_X___Y__Z=a", "-e", "KAFKA_HEAP_OPTS=-Xmx64m"]
    proc = docker("run", "--rm", "--network", "none", *env, kafka, "--print-config", check=False)
    assert proc.returncode == 0, proc.stderr
    props = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert props["process.roles"] == "broker,controller"
    assert props["num.partitions"] == "3"
    assert props["listener.name.x-y_z"] == "a"
    assert "heap.opts" not in props
    assert props["log.dirs"] == "/var/lib/kafka/data"
