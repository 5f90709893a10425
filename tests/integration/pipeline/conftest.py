"""Fixtures for bridge scenarios: configs bound to the broker, the test's sandbox and tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bridge_harness import ConfigFactory, write_config

from bridge.sandbox.testing import SandboxHandle


@pytest.fixture
def bridge_config(
    kafka_bootstrap: str,
    sandbox: SandboxHandle,
    tmp_path: Path,
    ledger_topics: Callable[[Path], None],
) -> ConfigFactory:
    """`bridge_config(topic, group, **overrides)`: a config file for one topic and group that
    reaches the test's sandbox with its unlimited key; its sent-email ledger topic is deleted
    after the test."""

    def make(topic: str, group: str, **overrides: Any) -> Path:
        kwargs: dict[str, Any] = {
            "bootstrap": kafka_bootstrap,
            "topics": [topic],
            "base_url": sandbox.base_url,
            "api_key": sandbox.unlimited_key,
            "group": group,
            **overrides,
        }
        path = write_config(tmp_path, **kwargs)
        ledger_topics(path)
        return path

    return make
