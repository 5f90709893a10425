"""Fixtures for replay and DLQ scenarios: configs bound to the broker, the sandbox and tmp_path."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import replay_env as env

from bridge.sandbox.testing import SandboxHandle


@pytest.fixture
def replay_config(
    kafka_bootstrap: str,
    sandbox: SandboxHandle,
    tmp_path: Path,
    ledger_topics: Callable[[Path], None],
) -> env.ConfigFactory:
    """`replay_config(topic, group=None, **overrides)`: a config file for one topic. The live
    group defaults to one of the test's own, so the sent-email ledger named from it is the
    test's own too (event ids repeat across tests); it is deleted after the test."""
    live = f"live-{uuid.uuid4().hex[:8]}"

    def make(topic: str, group: str | None = None, **overrides: Any) -> Path:
        kwargs: dict[str, Any] = {
            "bootstrap": kafka_bootstrap,
            "topic": topic,
            "base_url": sandbox.base_url,
            "api_key": sandbox.unlimited_key,
            "group": group or live,
            **overrides,
        }
        path = env.write_config(tmp_path, **kwargs)
        ledger_topics(path)
        return path

    return make
