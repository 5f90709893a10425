"""`meisa-bridge run` refuses to start with one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.sandbox.testing import SandboxHandle, SandboxPool, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
FEW = "meisa_test_fewscopes_000000000000000000000"
RULES = """\
rules:
  - name: signup
    on: user.signed_up
    do:
      - upsert: {email: "{{ data.email }}"}
      - trigger: {trigger_key: verification_code, to_email: "{{ data.email }}"}
"""


def _run(
    tmp_path: Path,
    *,
    base_url: str,
    key: str,
    bootstrap: str = "127.0.0.1:1",
    rules: str = RULES,
    port: int | None = None,
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rules.yaml").write_text(rules, encoding="utf-8")
    config = tmp_path / "bridge.yaml"
    config.write_text(
        f"kafka: {{bootstrap.servers: '{bootstrap}', group.id: startup-test}}\n"
        f"topics: [startup.events]\nmeisa: {{base_url: '{base_url}'}}\n"
        f"server: {{host: 127.0.0.1, port: {port or free_port()}}}\nrules_file: rules.yaml\n",
        encoding="utf-8",
    )
    env = {**os.environ, "MEISA_API_KEY": key}
    return subprocess.run(
        [sys.executable, "-m", "bridge", "run", "--config", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _refused(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("meisa-bridge: ")]
    assert len(lines) == 1, done.stderr
    # Said once: not also as a log line before it.
    told = [line for line in done.stderr.splitlines() if "refusing to start" in line]
    assert len(told) <= 1, done.stderr
    return lines[0]


@pytest.fixture
def few_scopes_sandbox(sandboxes: SandboxPool) -> SandboxHandle:
    keys = [{"key": FEW, "name": "few", "environment": "test", "scopes": ["contacts:write"]}]
    return sandboxes.get({"keys": keys})


def test_a_key_without_the_rules_scopes_is_refused_naming_scope_and_rule(
    tmp_path: Path, few_scopes_sandbox: SandboxHandle
) -> None:
    done = _run(tmp_path, base_url=few_scopes_sandbox.base_url, key=FEW)
    assert "lacks scopes" in _refused(done)
    assert "emails:trigger: needed by signup" in done.stderr


def test_a_rejected_key_is_refused(tmp_path: Path, sandbox: SandboxHandle) -> None:
    done = _run(tmp_path, base_url=sandbox.base_url, key="meisa_test_wrong")
    assert "(401)" in _refused(done)


def test_a_base_url_without_the_api_path_is_refused(tmp_path: Path, sandbox: SandboxHandle) -> None:
    done = _run(tmp_path, base_url=sandbox.url, key=sandbox.api_key)
    line = _refused(done)
    assert "404" in line
    assert "base_url" in line


def test_a_certificate_of_an_unknown_ca_is_refused_at_once_without_retrying(
    tmp_path: Path, https_sandbox: SandboxHandle
) -> None:
    done = _run(tmp_path, base_url=https_sandbox.base_url, key=https_sandbox.api_key)
    line = _refused(done)
    assert "TLS certificate was refused" in line
    assert "meisa.ca_file" in line
    assert "retrying" not in done.stderr  # a certificate is not a network blip


def test_a_base_url_without_a_scheme_is_a_config_error(tmp_path: Path) -> None:
    done = _run(tmp_path, base_url="127.0.0.1:8080/api/v1", key="k")
    line = _refused(done)
    assert "meisa.base_url" in line
    assert "http" in line


def test_an_empty_api_key_is_refused_before_calling_meisa(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    done = _run(tmp_path, base_url=sandbox.base_url, key="")
    assert "MEISA_API_KEY" in _refused(done)
    assert sandbox.requests() == []


def test_a_config_without_rules_is_refused(tmp_path: Path, sandbox: SandboxHandle) -> None:
    done = _run(tmp_path, base_url=sandbox.base_url, key=sandbox.api_key, rules="rules: []\n")
    assert "no rules" in _refused(done)


def test_an_unreachable_broker_is_refused(tmp_path: Path, sandbox: SandboxHandle) -> None:
    done = _run(tmp_path, base_url=sandbox.base_url, key=sandbox.api_key, bootstrap="127.0.0.1:1")
    line = _refused(done)
    assert "Kafka" in line
    assert "127.0.0.1:1" in line


def test_a_health_port_in_use_is_refused(
    tmp_path: Path, sandbox: SandboxHandle, kafka_bootstrap: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run(
            tmp_path,
            base_url=sandbox.base_url,
            key=sandbox.api_key,
            bootstrap=kafka_bootstrap,
            port=port,
        )
    line = _refused(done)
    assert f"127.0.0.1:{port}" in line
    assert "server.port" in line


def test_start_up_and_shutdown_are_told_in_the_log(
    tmp_path: Path, sandbox: SandboxHandle, kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=1)
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = tmp_path / "bridge.yaml"
    port = free_port()
    config.write_text(
        f"kafka: {{bootstrap.servers: '{kafka_bootstrap}', group.id: log-test}}\n"
        f"topics: [{topic}]\nmeisa: {{base_url: '{sandbox.base_url}'}}\n"
        f"server: {{host: 127.0.0.1, port: {port}}}\nlogging: {{format: text}}\n"
        "rules_file: rules.yaml\n",
        encoding="utf-8",
    )
    cmd = [sys.executable, "-m", "bridge", "run", "--config", str(config)]
    env = {**os.environ, "MEISA_API_KEY": sandbox.api_key}
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "assigned:" in line:
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 0, "".join(seen) + rest
    log = "".join(seen) + rest
    assert f"/readyz on 127.0.0.1:{port}" in log
    assert "SIGTERM received" in log
    assert "stopped;" in log
    assert "color_message" not in log
    assert "Traceback" not in log


def test_sigterm_during_start_up_stops_cleanly_with_exit_0(tmp_path: Path) -> None:
    # A pod deleted while the bridge still waits for Meisa (ping retries take ~15 s): exit 0 at
    # once instead of dying of the signal.
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = tmp_path / "bridge.yaml"
    config.write_text(
        "kafka: {bootstrap.servers: '127.0.0.1:1', group.id: early-stop}\n"
        f"topics: [early.events]\nmeisa: {{base_url: 'http://127.0.0.1:{free_port()}/api/v1'}}\n"
        f"server: {{host: 127.0.0.1, port: {free_port()}}}\nlogging: {{format: text}}\n"
        "rules_file: rules.yaml\n",
        encoding="utf-8",
    )
    cmd = [sys.executable, "-m", "bridge", "run", "--config", str(config)]
    env = {**os.environ, "MEISA_API_KEY": "meisa_test_unreachable_000000000000000000"}
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "GET /ping failed" in line:  # inside the start-up checks
                break
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(timeout=20) == 0, "".join(seen) + rest
    assert "stopped during start-up" in rest
