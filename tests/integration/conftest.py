"""Integration fixtures: a Meisa sandbox over real HTTP.

One sandbox serves the whole session (start-up costs a few hundred ms); `sandbox` resets it before
each test, so every test starts from the default config with empty state and no faults.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.sandbox.testing import SandboxHandle, run_sandbox


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxHandle]:
    with run_sandbox() as handle:
        yield handle


@pytest.fixture
def sandbox(sandbox_server: SandboxHandle) -> SandboxHandle:
    """The running sandbox (default config), reset: no contacts, sends, faults or rate usage."""
    sandbox_server.reset()
    return sandbox_server
