"""Integration fixtures: the Meisa sandbox over real HTTP, one fixture family for every test.

`sandbox` is the sandbox a test talks to: the default config, or the one a `sandbox_config(...)`
marker names (on the test, its class or its module). `sandboxes.get(config)` gives one for a
config chosen inside a test. Each distinct config runs one server for the whole session (start-up
costs a few hundred ms) and is reset whenever a test receives it, so every test starts with the
config's keys, no contacts, sends, faults or rate usage, and the sandbox clock at zero.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.sandbox.testing import SandboxHandle, SandboxPool


@pytest.fixture(scope="session")
def sandboxes() -> Iterator[SandboxPool]:
    pool = SandboxPool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def sandbox(request: pytest.FixtureRequest, sandboxes: SandboxPool) -> SandboxHandle:
    """The test's sandbox (default config or its `sandbox_config` marker's), freshly reset."""
    marker = request.node.get_closest_marker("sandbox_config")
    return sandboxes.get(marker.args[0] if marker else None)
