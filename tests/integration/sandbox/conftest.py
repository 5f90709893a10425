"""Clients for the sandbox tests: httpx over real HTTP with the demo key."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bridge.sandbox.testing import SandboxHandle


@pytest.fixture
def api(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    """The spec's base URL and the default demo key (60/min, 1000/h, every scope)."""
    with httpx.Client(base_url=sandbox.base_url, headers={"X-API-Key": sandbox.api_key}) as client:
        yield client


@pytest.fixture
def fast_api(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    """The unlimited sandbox key, for tests that send more than 60 requests."""
    headers = {"X-API-Key": sandbox.unlimited_key}
    with httpx.Client(base_url=sandbox.base_url, headers=headers) as client:
        yield client
