"""Fixtures for bridge scenarios: a fresh sandbox per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.sandbox.testing import SandboxHandle, run_sandbox


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    with run_sandbox() as sb:
        yield sb
