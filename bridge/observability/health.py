"""Health state and the HTTP server for /metrics, /healthz (liveness) and /readyz (readiness).

Liveness is 200 unless the consumer loop has not beaten for `stall_seconds` (a stuck loop is the
one thing a restart fixes). A halted bridge stays live (restarting it in a loop would not fix a
wrong key and would hammer Meisa) but is not ready; the body says why. Readiness is 200 once the
consumer has joined its group (zero partitions is fine: extra replicas idle by design), Meisa
answered the last check and the bridge is not halted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bridge import __version__
from bridge.observability.metrics import Metrics
from bridge.observability.redaction import redact
from bridge.settings import ServerSettings

log = logging.getLogger("bridge.health")


@dataclass(kw_only=True)
class HealthState:
    """What the pipeline reports; read by the health endpoints (attribute writes are atomic)."""

    stall_seconds: float = 300.0  # librdkafka's default max.poll.interval.ms
    clock: Callable[[], float] = time.monotonic
    started: bool = False
    consumer_joined: bool = False
    assigned_partitions: int = 0
    meisa_reachable: bool | None = None
    halted: bool = False
    halt_reason: str | None = None
    last_beat: float | None = None

    def beat(self) -> None:
        """Called by the consumer loop on every iteration."""
        self.last_beat = self.clock()

    def on_assignment(self, partitions: int) -> None:
        self.consumer_joined = True
        self.assigned_partitions = partitions

    def halt(self, reason: str) -> None:
        self.halted, self.halt_reason = True, reason

    def live(self) -> bool:
        return self.last_beat is None or self.clock() - self.last_beat <= self.stall_seconds

    def ready(self) -> bool:
        joined = self.started and self.consumer_joined
        return joined and self.meisa_reachable is True and not self.halted and self.live()

    def snapshot(self) -> dict[str, Any]:
        age = None if self.last_beat is None else round(self.clock() - self.last_beat, 3)
        return {
            "live": self.live(),
            "ready": self.ready(),
            "started": self.started,
            "consumer_joined": self.consumer_joined,
            "assigned_partitions": self.assigned_partitions,
            "meisa_reachable": self.meisa_reachable,
            "halted": self.halted,
            "halt_reason": redact(self.halt_reason) if self.halt_reason else None,
            "last_beat_age_seconds": age,
            "version": __version__,
        }


def build_app(health: HealthState, metrics: Metrics) -> Any:
    """The Starlette app serving /metrics, /healthz and /readyz."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def probe(check: Callable[[], bool]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            ok = check()
            body = {"status": "ok" if ok else "unavailable", **health.snapshot()}
            return JSONResponse(body, status_code=200 if ok else 503)

        return endpoint

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/metrics", metrics_endpoint),
            Route("/healthz", probe(health.live)),
            Route("/readyz", probe(health.ready)),
        ]
    )


class HealthServer:
    """Serves the health app on ServerSettings.host:port (port 0 picks a free port)."""

    def __init__(self, settings: ServerSettings, health: HealthState, metrics: Metrics) -> None:
        self.settings = settings
        self._app = build_app(health, metrics)
        self._sock: socket.socket | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the health server is not bound yet")
        return int(self._sock.getsockname()[1])

    @property
    def started(self) -> bool:
        return self._server is not None and bool(self._server.started)

    def bind(self) -> socket.socket:
        """Bind the listening socket now (serve() does it if needed); `port` is known after."""
        if self._sock is not None:
            return self._sock
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.host, self.settings.port))
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        return sock

    def _make_server(self) -> Any:
        import uvicorn

        class _Server(uvicorn.Server):
            # The bridge owns SIGTERM/SIGINT; uvicorn must not take them over.
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = _Server(config)
        return self._server

    async def serve(self) -> None:
        """Run in the caller's event loop until `stop()` is called (then returns within ~0.1 s).

        Call `bind()` first to learn the port before the task runs.
        """
        server = self._server or self._make_server()
        sock = self.bind()
        try:
            await server.serve(sockets=[sock])
        finally:
            sock.close()
            self._sock = self._server = None

    def start_in_thread(self, timeout: float = 10.0) -> HealthServer:
        """Start on a daemon thread; returns once the port accepts connections."""
        self.bind()
        server = self._make_server()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.serve()), name="health-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the health server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


async def linger(seconds: float, stop: asyncio.Event) -> None:
    """Keep /metrics and /readyz up after a halt so monitoring sees it (ends early on a stop)."""
    if seconds <= 0 or stop.is_set():
        return
    log.info("halted: serving /metrics and /readyz for %g s (server.halt_linger_seconds)", seconds)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def serve_refusal(
    settings: ServerSettings,
    health: HealthState,
    metrics: Metrics,
    reason: str,
    stop: asyncio.Event | None,
) -> None:
    """After a refused start, serve /metrics (halted, scopes missing) and /readyz (503, the
    reason) for `settings.halt_linger_seconds`; nothing when it is 0 or the port is taken."""
    if settings.halt_linger_seconds <= 0:
        return
    health.halt(reason)
    metrics.halted(True)
    server = HealthServer(settings, health, metrics)
    try:
        server.bind()
    except OSError:
        return
    task = asyncio.create_task(server.serve(), name="health")
    try:
        await linger(settings.halt_linger_seconds, stop or asyncio.Event())
    finally:
        server.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
