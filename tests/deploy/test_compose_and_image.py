"""docker-compose.yml and the Dockerfile, read statically (test_image.py and
test_compose_stack.py build and run them on a Docker engine)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config import load_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_compose_runs_kafka_sandbox_producer_and_bridge() -> None:
    assert set(SERVICES) == {"kafka", "sandbox", "producer", "bridge"}
    # The stock broker by default; KAFKA_IMAGE selects another (scripts/images.sh builds one).
    assert SERVICES["kafka"]["image"].startswith("${KAFKA_IMAGE:-apache/kafka:")
    env = SERVICES["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "kafka:19092" in env["KAFKA_ADVERTISED_LISTENERS"]  # in-network clients
    # clients on the host, on the published port
    assert "localhost:${KAFKA_HOST_PORT:-9092}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert SERVICES["kafka"]["ports"] == ["127.0.0.1:${KAFKA_HOST_PORT:-9092}:9092"]
    for name in ("sandbox", "producer", "bridge"):
        assert SERVICES[name]["build"]["context"] == ".", name
        assert SERVICES[name]["image"] == "${BRIDGE_IMAGE:-meisa-bridge:local}", name
    assert SERVICES["sandbox"]["command"][0] == "sandbox"
    assert SERVICES["bridge"]["command"][0] == "run"


@pytest.mark.parametrize("name", ["kafka", "sandbox", "bridge"])
def test_long_running_services_have_health_checks(name: str) -> None:
    check = SERVICES[name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert check["retries"] > 0


def test_bridge_health_check_uses_readyz() -> None:
    assert "/readyz" in " ".join(SERVICES["bridge"]["healthcheck"]["test"])


def test_startup_order_is_gated_on_health_and_completion() -> None:
    assert SERVICES["producer"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert SERVICES["bridge"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "sandbox": {"condition": "service_healthy"},
        "producer": {"condition": "service_completed_successfully"},
    }
    assert SERVICES["producer"]["restart"] == "no"


def test_no_secret_is_committed_in_the_compose_file() -> None:
    assert not re.search(r"meisa_live_", COMPOSE_TEXT)
    key = SERVICES["bridge"]["environment"]["MEISA_API_KEY"]
    # Only the sandbox's public demo key, and only as an overridable default.
    assert key == "${MEISA_API_KEY:-meisa_test_sandbox_0000000000000000000000}"
    for service in SERVICES.values():
        for name, value in (service.get("environment") or {}).items():
            if re.search(r"(?i)password|secret|token", name):
                assert str(value).startswith("${"), name


def test_mounted_files_exist_and_the_bridge_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            host = volume.split(":", 1)[0]
            assert (ROOT / host).exists(), volume
    bridge = SERVICES["bridge"]
    config_path = bridge["command"][bridge["command"].index("--config") + 1]
    assert config_path.startswith("/app/examples/")
    for name, value in bridge["environment"].items():
        monkeypatch.setenv(name, str(value).replace("${MEISA_API_KEY:-", "").rstrip("}"))
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    config = load_config(ROOT / "examples" / config_path.removeprefix("/app/examples/"))
    assert config.kafka["bootstrap.servers"] == "kafka:19092"
    assert config.meisa.base_url == "http://sandbox:8080/api/v1"
    assert config.server.port == 9400
    produced = SERVICES["producer"]["command"]
    assert produced[produced.index("--topic") + 1] in config.topics


def test_compose_containers_run_like_the_chart() -> None:
    for name in ("sandbox", "producer", "bridge"):
        service = SERVICES[name]
        assert service["read_only"] is True
        assert service["tmpfs"] == ["/tmp"]
        assert service["cap_drop"] == ["ALL"]


def _stages() -> list[str]:
    return re.split(r"(?m)^FROM ", DOCKERFILE)[1:]


def test_dockerfile_is_multi_stage_and_slim() -> None:
    stages = _stages()
    assert len(stages) >= 2
    assert "AS builder" in stages[0]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE
    assert stages[-1].startswith("${PYTHON_IMAGE}")
    assert "COPY --from=builder /opt/venv /opt/venv" in stages[-1]
    assert ".[dev]" not in DOCKERFILE  # runtime dependencies only


def test_dockerfile_runs_as_non_root_on_a_read_only_root() -> None:
    final = _stages()[-1]
    users = re.findall(r"(?m)^USER\s+(\S+)", final)
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    assert "--uid 10001" in final
    assert "PYTHONDONTWRITEBYTECODE=1" in final
    assert "EXPOSE 9400" in final


def test_dockerfile_entrypoint_and_default_command() -> None:
    assert re.search(r'(?m)^ENTRYPOINT \["meisa-bridge"\]$', DOCKERFILE)
    assert re.search(
        r'(?m)^CMD \["run", "--config", "/etc/meisa-bridge/bridge.yaml"\]$', DOCKERFILE
    )
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'meisa-bridge = "bridge.cli:main"' in pyproject
    assert "org.opencontainers.image.source" in DOCKERFILE


def test_dockerignore_keeps_the_build_context_to_the_package() -> None:
    lines = (ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*")] == "*"
    assert {"!pyproject.toml", "!README.md", "!bridge/"} <= set(lines)
    copied = re.findall(r"(?m)^COPY (?!--from)(.+) \S+$", DOCKERFILE)
    for sources in copied:
        for source in sources.split():
            assert (ROOT / source).exists(), source


def test_producer_moves_event_times_up_to_now_like_make_demo() -> None:
    # examples/events.jsonl was recorded on a past day: published as is, every OTP is stale.
    assert "--retime" in SERVICES["producer"]["command"]


def test_kafka_image_is_the_version_the_test_broker_runs() -> None:
    kafka_sh = (ROOT / "scripts" / "kafka.sh").read_text()
    found = re.search(r"KAFKA_VERSION=\$\{KAFKA_VERSION:-([0-9.]+)\}", kafka_sh)
    assert found
    assert SERVICES["kafka"]["image"] == f"${{KAFKA_IMAGE:-apache/kafka:{found.group(1)}}}"


def test_every_published_port_is_on_loopback_and_movable() -> None:
    for name in ("kafka", "sandbox", "bridge"):
        [port] = SERVICES[name]["ports"]
        assert re.fullmatch(r"127\.0\.0\.1:\$\{[A-Z]+_HOST_PORT:-\d+\}:\d+", port), port


def test_the_image_version_default_is_the_package_version() -> None:
    # scripts/images.sh passes VERSION from pyproject.toml; a plain `docker build` uses the default.
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'(?m)^version = "([^"]+)"$', pyproject)
    assert version
    assert f"ARG VERSION={version.group(1)}\n" in DOCKERFILE


def test_the_bridge_image_base_is_selectable_like_the_broker() -> None:
    args = SERVICES["bridge"]["build"]["args"]
    assert args == {"PYTHON_IMAGE": "${PYTHON_IMAGE:-python:3.11-slim}"}


def test_image_ships_bytecode_because_the_root_filesystem_is_read_only() -> None:
    # Python cannot write __pycache__ at run time, so the image compiles it once at build time
    # (unchecked-hash: valid whatever mtimes COPY gives the files) instead of on every start.
    builder = _stages()[0]
    assert "compileall" in builder
    assert "--invalidation-mode unchecked-hash" in builder
    assert "__pycache__' -prune -exec rm" not in builder


def test_one_shot_producer_does_not_inherit_the_bridge_health_check() -> None:
    # The image's HEALTHCHECK polls :9400; the producer serves nothing and would read unhealthy.
    assert SERVICES["producer"]["healthcheck"] == {"disable": True}


def test_the_project_is_named_by_dot_env_not_by_the_folder() -> None:
    # Compose v2 and Debian's 1.29 both read .env next to the compose file; 1.29 refuses a
    # top-level `name:`, so the name lives in .env, and .env holds nothing else (no secrets).
    assert "name" not in COMPOSE
    settings = [
        line.strip()
        for line in (ROOT / ".env").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert settings == ["COMPOSE_PROJECT_NAME=meisa-bridge"]
