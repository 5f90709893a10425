"""Fixtures for replay and DLQ scenarios: configs bound to the broker, the sandbox and tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import replay_env as env

from bridge.sandbox.testing import SandboxHandle


@pytest.fixture
def replay_config(
    kafka_bootstrap: str, sandbox: SandboxHandle, tmp_path: Path
) -> env.ConfigFactory:
    """`replay_config(topic, group="live-unused", **overrides)`: a config file for one topic."""

    def make(topic: str, group: str = "live-unused", **overrides: Any) -> Path:
        kwargs: dict[str, Any] = {
            "bootstrap": kafka_bootstrap,
            "topic": topic,
            "base_url": sandbox.base_url,
            "api_key": sandbox.unlimited_key,
            "group": group,
            **overrides,
        }
        return env.write_config(tmp_path, **kwargs)

    return make
