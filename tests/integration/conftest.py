"""Integration fixtures: the Meisa sandbox over real HTTP, one fixture family for every test, and
a Confluent-compatible schema registry (`registry`).

`sandbox` is the sandbox a test talks to: the default config, or the one a `sandbox_config(...)`
marker names (on the test, its class or its module). `sandboxes.get(config)` gives one for a
config chosen inside a test. Each distinct config runs one server for the whole session (start-up
costs a few hundred ms) and is reset whenever a test receives it, so every test starts with the
config's keys, no contacts, sends, faults or rate usage, and the sandbox clock at zero.
`https_sandbox` is the default sandbox over HTTPS, its certificate signed by a throwaway CA
(`tls_files`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from bridge.sandbox.testing import SandboxHandle, SandboxPool, SandboxTls, run_sandbox


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


ROOT = Path(__file__).resolve().parents[2]
REGISTRY_PORT = os.environ.get("REGISTRY_PORT", "8081")


def _registry_script(action: str) -> int:
    script = ROOT / "scripts" / "registry.sh"
    return subprocess.run([str(script), action], cwd=ROOT, timeout=900, check=False).returncode


@pytest.fixture(scope="session")
def registry() -> Iterator[str]:
    """The Confluent API of a local registry (Apicurio, `scripts/registry.sh`) on REGISTRY_PORT:
    started when nothing serves there and stopped afterwards; one already running is used and
    left running."""
    started = False
    if _registry_script("status") != 0:
        assert _registry_script("start") == 0, "scripts/registry.sh start failed"
        started = True
    yield f"http://127.0.0.1:{REGISTRY_PORT}/apis/ccompat/v7"
    if started:
        _registry_script("stop")


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> SandboxTls:
    """A throwaway CA and a certificate it signed for 127.0.0.1 and localhost, as PEM files."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    files = SandboxTls(
        cert_file=str(folder / "server.pem"),
        key_file=str(folder / "server.key"),
        ca_file=str(folder / "ca.pem"),
    )
    cert.cert_chain_pems[0].write_to_path(files.cert_file)
    cert.private_key_pem.write_to_path(files.key_file)
    ca.cert_pem.write_to_path(files.ca_file)
    return files


@pytest.fixture(scope="session")
def https_sandboxes(tls_files: SandboxTls) -> Iterator[SandboxHandle]:
    with run_sandbox(tls=tls_files) as handle:
        yield handle


@pytest.fixture
def https_sandbox(https_sandboxes: SandboxHandle) -> SandboxHandle:
    """The default sandbox served over HTTPS with `tls_files`' certificate, freshly reset."""
    https_sandboxes.reset()
    return https_sandboxes
