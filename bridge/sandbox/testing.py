"""Run the sandbox from tests and benchmarks.

`run_sandbox()` serves it from a background thread of this process; `SandboxPool` keeps one such
sandbox per distinct config and hands it out reset; `sandbox_process()` runs the CLI in a
subprocess (optionally pinned to CPUs) so a benchmark's client does not share its GIL. The handle
talks to the inspection API with urllib only. `run_sandbox(tls=SandboxTls(...))` serves HTTPS with
the given certificate, as Meisa behind a private CA would.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from bridge.sandbox.app import Sandbox
from bridge.sandbox.config import DEMO_KEY, UNLIMITED_KEY, load_sandbox_config
from bridge.sandbox.server import make_server

START_TIMEOUT = 15.0


@dataclass(frozen=True)
class SandboxTls:
    """PEM files to serve HTTPS with: the certificate (chain), its key, and the CA that signed
    it (which the handle trusts for its own inspection calls)."""

    cert_file: str
    key_file: str
    ca_file: str


class SandboxHandle:
    """A running sandbox: its URLs, the default keys, and the /_sandbox/ API as methods."""

    def __init__(self, url: str, *, ca_file: str | None = None) -> None:
        self.url = url
        self._context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self.base_url = url + "/api/v1"
        self.api_key = DEMO_KEY
        self.unlimited_key = UNLIMITED_KEY

    def __repr__(self) -> str:
        return f"SandboxHandle(url={self.url!r})"

    def control(self, method: str, route: str, body: Any = None, /, **query: Any) -> Any:
        """One /_sandbox/ call; returns the decoded JSON (raises HTTPError on >= 400)."""
        params = {k: v for k, v in query.items() if v is not None}
        url = f"{self.url}/_sandbox/{route}" + (
            f"?{urllib.parse.urlencode(params)}" if params else ""
        )
        data = orjson.dumps(body) if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10, context=self._context) as resp:
            return orjson.loads(resp.read())

    def contacts(self, email: str | None = None) -> list[dict[str, Any]]:
        return list(self.control("GET", "contacts", email=email)["contacts"])

    def contact(self, email: str) -> dict[str, Any] | None:
        found = self.contacts(email)
        return found[0] if found else None

    def events(self, **filters: str) -> list[dict[str, Any]]:
        return list(self.control("GET", "events", **filters)["events"])

    def sends(self, **filters: str) -> list[dict[str, Any]]:
        return list(self.control("GET", "sends", **filters)["sends"])

    def enrollments(self, **filters: str) -> list[dict[str, Any]]:
        return list(self.control("GET", "enrollments", **filters)["enrollments"])

    def automation_runs(self, **filters: str) -> list[dict[str, Any]]:
        return list(self.control("GET", "automations", **filters)["runs"])

    def requests(self, path: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        return list(self.control("GET", "requests", path=path, **filters)["requests"])

    def reset(self) -> None:
        self.control("POST", "reset", {})

    def set_status(self, email: str, status: str) -> dict[str, Any]:
        return dict(self.control("POST", "contacts/status", {"email": email, "status": status}))

    def set_enrollment_status(self, email: str, sequence_slug: str, status: str) -> dict[str, Any]:
        body = {"email": email, "sequence_slug": sequence_slug, "status": status}
        return dict(self.control("POST", "enrollments/status", body))

    def set_fault(self, endpoint: str = "*", **spec: Any) -> dict[str, Any]:
        """Add a fault, e.g. set_fault("upsert", status=503, rate=0.5, seed=7, count=3)."""
        return dict(self.control("POST", "faults", {"endpoint": endpoint, **spec}))

    def faults(self) -> list[dict[str, Any]]:
        return list(self.control("GET", "faults")["faults"])

    def clear_faults(self) -> None:
        self.control("DELETE", "faults")

    def advance_clock(self, seconds: float) -> None:
        self.control("POST", "clock", {"advance_seconds": seconds})


def _wait_ready(handle: SandboxHandle, alive: Any) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the sandbox exited during start-up")
        try:
            handle.control("GET", "config")
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.02)
    raise RuntimeError(f"the sandbox did not answer at {handle.url} in {START_TIMEOUT} s")


@contextmanager
def run_sandbox(
    config: Mapping[str, Any] | None = None, *, port: int = 0, tls: SandboxTls | None = None
) -> Iterator[SandboxHandle]:
    """Serve a sandbox on 127.0.0.1 (a free port by default) from a background thread; over
    HTTPS with `tls`."""
    sb = Sandbox(load_sandbox_config(config))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    scheme = "https" if tls else "http"
    handle = SandboxHandle(f"{scheme}://127.0.0.1:{port}", ca_file=tls.ca_file if tls else None)
    pair = (tls.cert_file, tls.key_file) if tls else None
    server = make_server(sb, host="127.0.0.1", port=port, tls=pair)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_ready(handle, thread.is_alive)
        yield handle
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class SandboxPool:
    """One running sandbox per distinct config, started on first use and kept until `close()`."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._running: dict[bytes, SandboxHandle] = {}

    def get(self, config: Mapping[str, Any] | None = None) -> SandboxHandle:
        """The sandbox for `config` (None: the default config), reset to a clean state."""
        key = orjson.dumps(config, option=orjson.OPT_SORT_KEYS)
        if key not in self._running:
            self._running[key] = self._stack.enter_context(run_sandbox(config))
        handle = self._running[key]
        handle.reset()
        return handle

    def close(self) -> None:
        self._stack.close()
        self._running.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sandbox_process(
    config: Mapping[str, Any] | None = None,
    *,
    port: int = 0,
    cpus: set[int] | None = None,
) -> Iterator[tuple[SandboxHandle, subprocess.Popen[bytes]]]:
    """Run `meisa-bridge sandbox` as a subprocess, pinned to `cpus` when given."""
    port = port or free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "bridge", "sandbox", "--port", str(port)]
        if config is not None:
            path = os.path.join(tmp, "sandbox.yaml")
            with open(path, "w", encoding="utf-8") as fh:
                yaml.safe_dump(dict(config), fh)
            cmd += ["--config", path]
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, preexec_fn=pin)  # noqa: PLW1509
        handle = SandboxHandle(f"http://127.0.0.1:{port}")
        try:
            _wait_ready(handle, lambda: proc.poll() is None)
            yield handle, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
