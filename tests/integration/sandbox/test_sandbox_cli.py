"""`meisa-bridge sandbox` as users run it: banner with the keys, YAML config, bad config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from bridge.sandbox.config import DEMO_KEY, UNLIMITED_KEY
from bridge.sandbox.testing import free_port, sandbox_process

pytestmark = pytest.mark.integration

YAML = """
keys:
  - key: meisa_live_custom_0000000000000000000000
    name: custom
    environment: live
    scopes: [contacts:write]
    rate_limit_per_minute: 1000
triggers:
  - key: otp
    name: One-time password
contacts:
  - email: Seeded@Example.com
    status: unsubscribed
    custom_fields: {plan: free}
"""


def test_cli_prints_default_keys_and_serves() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "sandbox", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(4)]
        assert f"http://127.0.0.1:{port}/api/v1" in banner[0]
        assert any(DEMO_KEY in line for line in banner)
        assert any(UNLIMITED_KEY in line for line in banner)
        resp = httpx.get(f"http://127.0.0.1:{port}/api/v1/ping/", headers={"X-API-Key": DEMO_KEY})
        assert resp.json()["api_key"]["name"] == "sandbox-demo"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_yaml_config_replaces_sections() -> None:
    key = "meisa_live_custom_0000000000000000000000"
    with (
        sandbox_process(yaml.safe_load(YAML)) as (sandbox, _),
        httpx.Client(base_url=sandbox.base_url, headers={"X-API-Key": key}) as client,
    ):
        ping = client.get("/ping/").json()["api_key"]
        assert (ping["environment"], ping["rate_limit_per_minute"]) == ("live", 1000)
        assert client.get("/contacts/api/unsubscribed-emails/").status_code == 403
        demo = httpx.get(f"{sandbox.base_url}/ping/", headers={"X-API-Key": DEMO_KEY})
        assert demo.status_code == 401
        [contact] = sandbox.contacts()
        assert (contact["email"], contact["status"]) == ("seeded@example.com", "unsubscribed")
        config = httpx.get(f"{sandbox.url}/_sandbox/config").json()
        assert [t["trigger_key"] for t in config["triggers"]] == ["otp"]
        assert "welcome-pro" in {s["slug"] for s in config["sequences"]}  # default section kept
        assert key not in str(config)


def test_bad_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.yaml"
    path.write_text("keys:\n  - key: meisa_live_x\n    environment: test\n")
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "sandbox", "--port", "0", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "keys.key" in result.stderr
    assert str(path) in result.stderr
