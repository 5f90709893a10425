"""docker-compose.yml for real: Kafka, the sandbox, the producer and the bridge on a Docker engine.

The stack runs on the host network: the compose file as it is, with its published ports dropped
(host networking publishes nothing) and every service bound to 127.0.0.1 on free ports, so it
neither collides with brokers or sandboxes already running on this machine nor sends traffic
anywhere but the loopback interface. The tests run in file order against one
stack; the last one takes it down and checks that nothing is left.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer

from bridge.sandbox.testing import SandboxHandle

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
IMAGES_SH = ROOT / "scripts" / "images.sh"
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
DEMO_KEY = "meisa_test_sandbox_0000000000000000000000"

# What `make demo` shows Meisa received for examples/events.jsonl (README, "Quick start").
DEMO_CONTACTS = {
    "diego.alvarez@example.org",
    "sam.ortiz@example.com",
    "li.wei@example.com",
    "priya.n@example.net",
    "sarah.kim@example.com",
    "tom@example.io",
}
DEMO_SENDS = Counter(
    {
        ("sent", "password_reset", "diego.alvarez@example.org"): 1,
        ("sent", "agency_client_invite", "sam.ortiz@example.com"): 1,
        ("sent", "agency_client_invite", "li.wei@example.com"): 1,
        ("sent", "verification_code", "li.wei@example.com"): 1,
        ("scheduled", "payment_failure", "priya.n@example.net"): 2,
        ("sent", "receipt", "priya.n@example.net"): 1,
        ("sent", "verification_code", "sarah.kim@example.com"): 1,
        ("sent", "receipt", "sarah.kim@example.com"): 1,
    }
)
DEMO_EVENTS = Counter(
    {
        ("li.wei@example.com", "feature_export"): 1,
        ("priya.n@example.net", "feature_ai_summary"): 1,
        ("sarah.kim@example.com", "feature_export"): 1,
        ("diego.alvarez@example.org", "plan_changed"): 1,
        ("tom@example.io", "plan_changed"): 1,
        ("priya.n@example.net", "plan_changed"): 1,
        ("sarah.kim@example.com", "plan_changed"): 1,
    }
)
DEMO_ENROLMENTS = {
    ("onboarding", "li.wei@example.com", "active"),
    ("onboarding", "priya.n@example.net", "active"),
    ("onboarding", "sarah.kim@example.com", "active"),
    ("welcome-pro", "diego.alvarez@example.org", "active"),
    ("win-back", "li.wei@example.com", "active"),
    ("win-back", "sarah.kim@example.com", "active"),
}
DEMO_DEAD_LETTERS = Counter({("decode", "DecodeError"): 1, ("map", "MappingError"): 1})

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class Stack:
    project: str
    override: Path
    env: dict[str, str]
    kafka: int  # the broker's client listener (the compose file's HOST listener)
    internal: int  # the broker's listener for the other services (INTERNAL)
    controller: int
    sandbox: int
    bridge: int

    @property
    def ports(self) -> list[int]:
        return [self.kafka, self.internal, self.controller, self.sandbox, self.bridge]

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        files = ["-f", str(self.override), "--project-directory", str(ROOT)]
        return subprocess.run(
            [str(IMAGES_SH), "compose", "-p", self.project, *files, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40", timeout=120).stdout[-6000:]

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service, timeout=120).stdout.strip()


def http_check(url: str) -> list[str]:
    code = f"import urllib.request; urllib.request.urlopen('{url}', timeout=2)"
    return ["CMD", "python", "-c", code]


def on_host_network(stack: Stack) -> dict[str, Any]:
    """docker-compose.yml with every service on the host network, 127.0.0.1 and its own ports."""
    loopback = "127.0.0.1"
    internal = f"{loopback}:{stack.internal}"
    producer = list(COMPOSE["services"]["producer"]["command"])
    producer[producer.index("--bootstrap") + 1] = internal
    kafka_check = COMPOSE["services"]["kafka"]["healthcheck"]["test"][1]
    changes: dict[str, Any] = {
        "services": {
            "kafka": {
                "network_mode": "host",
                "environment": {
                    "KAFKA_LISTENERS": f"INTERNAL://{internal},HOST://{loopback}:{stack.kafka},"
                    f"CONTROLLER://{loopback}:{stack.controller}",
                    "KAFKA_ADVERTISED_LISTENERS": f"INTERNAL://{internal},"
                    f"HOST://{loopback}:{stack.kafka}",
                    "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@{loopback}:{stack.controller}",
                },
                "healthcheck": {
                    "test": ["CMD-SHELL", kafka_check.replace("localhost:19092", internal)]
                },
            },
            "sandbox": {
                "network_mode": "host",
                "command": ["sandbox", "--host", loopback, "--port", str(stack.sandbox)],
                "healthcheck": {
                    "test": http_check(f"http://{loopback}:{stack.sandbox}/_sandbox/config")
                },
            },
            "producer": {"network_mode": "host", "command": producer},
            "bridge": {
                "network_mode": "host",
                "environment": {
                    "KAFKA_BOOTSTRAP": internal,
                    "MEISA_BASE_URL": f"http://{loopback}:{stack.sandbox}/api/v1",
                    "BRIDGE_HTTP_HOST": loopback,
                    "BRIDGE_HTTP_PORT": str(stack.bridge),
                },
                "healthcheck": {"test": http_check(f"http://{loopback}:{stack.bridge}/readyz")},
            },
        }
    }
    derived = copy.deepcopy(COMPOSE)
    for name, service in derived["services"].items():
        service.pop("ports", None)
        for key, value in changes["services"][name].items():
            if isinstance(value, dict) and key in service:
                service[key] = {**service[key], **value}
            else:
                service[key] = value
    return derived


def wait_for(what: str, probe: Any, stack: Stack, seconds: float = 240) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds:.0f}s\n{stack.logs()}")
        time.sleep(1)


@pytest.fixture(scope="module")
def stack(
    docker_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    kafka, internal, controller, sandbox, bridge = free_ports(5)
    env = {**os.environ, **docker_images, "MEISA_API_KEY": DEMO_KEY, "LOG_LEVEL": "INFO"}
    env.update(KAFKA_HOST_PORT=str(kafka), SANDBOX_HOST_PORT=str(sandbox))
    env["BRIDGE_HOST_PORT"] = str(bridge)
    override = tmp_path_factory.mktemp("compose") / "docker-compose.host-network.yml"
    s = Stack(
        f"mbtest{uuid.uuid4().hex[:8]}", override, env, kafka, internal, controller, sandbox, bridge
    )
    override.write_text(yaml.safe_dump(on_host_network(s), sort_keys=False))
    up = s.compose("up", "-d", "--no-build")
    try:
        assert up.returncode == 0, f"compose up failed:\n{up.stderr[-4000:]}\n{s.logs()}"
        yield s
    finally:
        s.compose("down", "-v", "--remove-orphans")


def readyz(stack: Stack) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.bridge}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_the_bridge_becomes_ready(stack: Stack) -> None:
    wait_for("bridge /readyz", lambda: readyz(stack), stack)


def received(sb: SandboxHandle) -> dict[str, Any]:
    return {
        "contacts": {c["email"] for c in sb.contacts()},
        "sends": Counter((s["status"], s["trigger_key"], s["to_email"]) for s in sb.sends()),
        "events": Counter((e["email"], e["event_name"]) for e in sb.events()),
        "enrolments": {(e["sequence_slug"], e["email"], e["status"]) for e in sb.enrollments()},
    }


def dead_letters(stack: Stack, expected: int) -> Counter[tuple[str, str]]:
    consumer = Consumer(
        {
            "bootstrap.servers": f"127.0.0.1:{stack.kafka}",
            "group.id": f"compose-test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(["meisa-bridge.dlq"])
    found: Counter[tuple[str, str]] = Counter()
    deadline = time.monotonic() + 60
    try:
        while sum(found.values()) < expected and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None or m.error() is not None:
                continue
            headers = {k: (v or b"").decode() for k, v in m.headers() or []}
            found[(headers["meisa-bridge.stage"], headers["meisa-bridge.error.class"])] += 1
    finally:
        consumer.close()
    return found


def test_the_sandbox_receives_what_make_demo_shows(stack: Stack) -> None:
    sb = SandboxHandle(f"http://127.0.0.1:{stack.sandbox}")
    expected = {
        "contacts": DEMO_CONTACTS,
        "sends": DEMO_SENDS,
        "events": DEMO_EVENTS,
        "enrolments": DEMO_ENROLMENTS,
    }
    wait_for("the demo's calls in the sandbox", lambda: received(sb) == expected, stack)
    assert received(sb) == expected
    assert dead_letters(stack, 2) == DEMO_DEAD_LETTERS


def inspect(container: str) -> dict[str, Any]:
    out = subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, timeout=60, check=True
    )
    found: dict[str, Any] = json.loads(out.stdout)[0]
    return found


def exec_in(container: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "exec", container, *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_bridge_runs_non_root_on_a_read_only_root(stack: Stack) -> None:
    bridge = stack.container("bridge")
    assert bridge
    info = inspect(bridge)
    assert info["Config"]["Image"] == stack.env["BRIDGE_IMAGE"]  # the image built for this run
    assert info["Config"]["User"] == "10001:10001"
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["HostConfig"]["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in info["HostConfig"]["SecurityOpt"]
    assert exec_in(bridge, "id", "-u").stdout.strip() == "10001"
    denied = exec_in(bridge, "touch", "/opt/venv/probe")
    assert denied.returncode != 0
    assert "Read-only file system" in denied.stderr
    assert exec_in(bridge, "touch", "/tmp/probe").returncode == 0


def test_the_image_health_check_answers_in_the_running_bridge(
    stack: Stack, docker_images: dict[str, str]
) -> None:
    bridge = stack.container("bridge")
    image_check = json.loads(
        subprocess.run(
            [
                "docker",
                "image",
                "inspect",
                "-f",
                "{{json .Config.Healthcheck.Test}}",
                docker_images["BRIDGE_IMAGE"],
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    assert image_check[0] == "CMD"
    # The image's own HEALTHCHECK command (compose replaces it with a /readyz check).
    proc = exec_in(bridge, *image_check[1:])
    assert proc.returncode == 0, proc.stderr
    health = inspect(bridge)["State"]["Health"]["Status"]
    assert health in ("healthy", "starting")


def test_sighup_to_pid_1_reloads_the_rules_in_the_image(stack: Stack) -> None:
    bridge = stack.container("bridge")
    hup = exec_in(bridge, "sh", "-c", "kill -HUP 1")  # as operations.md says for Kubernetes
    assert hup.returncode == 0, hup.stderr

    def logs() -> str:
        out = subprocess.run(
            ["docker", "logs", bridge], capture_output=True, text=True, timeout=60, check=True
        )
        return out.stdout + out.stderr

    wait_for("the reload's INFO line", lambda: "rules reloaded from" in logs(), stack)
    assert "unchanged, version" in logs()  # the same file: the same version
    assert inspect(bridge)["State"]["Running"] is True


def test_compose_down_leaves_nothing_running(stack: Stack) -> None:
    down = stack.compose("down", "-v", "--remove-orphans")
    assert down.returncode == 0, down.stderr
    label = f"label=com.docker.compose.project={stack.project}"
    for kind in ("ps", "network", "volume"):
        args = ["docker", kind, "ls", "-q", "--filter", label] if kind != "ps" else []
        args = args or ["docker", "ps", "-aq", "--filter", label]
        out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
        assert out.stdout.split() == [], (kind, out.stdout)
    assert [p for p in stack.ports if answers(p)] == []
