"""The health/metrics server over real HTTP on a free port, from a thread and in an event loop."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from bridge.observability import HealthServer, HealthState, Metrics
from bridge.settings import ServerSettings

pytestmark = pytest.mark.integration
LOCAL = ServerSettings(host="127.0.0.1", port=0)


def _get(port: int, path: str) -> tuple[int, str, str]:
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["content-type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["content-type"], err.read().decode()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> HealthState:
    return HealthState(clock=clock, stall_seconds=30)


@pytest.fixture
def served(state: HealthState) -> Iterator[tuple[HealthServer, Metrics]]:
    metrics = Metrics()
    server = HealthServer(LOCAL, state, metrics).start_in_thread()
    yield server, metrics
    server.stop()


def test_metrics_endpoint_serves_prometheus_text(
    served: tuple[HealthServer, Metrics],
) -> None:
    server, metrics = served
    metrics.events("app.users", "user.signed_up", "ok")
    status, ctype, body = _get(server.port, "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain")
    assert (
        'meisa_bridge_events_total{outcome="ok",topic="app.users",type="user.signed_up"} 1.0'
        in (body)
    )


def test_readyz_follows_the_pipeline_state(
    served: tuple[HealthServer, Metrics], state: HealthState
) -> None:
    server, _ = served
    status, _, body = _get(server.port, "/readyz")
    assert status == 503
    assert json.loads(body)["status"] == "unavailable"

    state.started = True
    state.on_assignment(2)
    state.meisa_reachable = True
    status, ctype, body = _get(server.port, "/readyz")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body)["assigned_partitions"] == 2

    state.halt("DLQ breaker tripped: 100 poison messages in a row")
    status, _, body = _get(server.port, "/readyz")
    assert status == 503
    assert json.loads(body)["halt_reason"].startswith("DLQ breaker tripped")
    assert _get(server.port, "/healthz")[0] == 200  # halted is still alive


def test_healthz_fails_when_the_loop_stalls(
    served: tuple[HealthServer, Metrics], state: HealthState, clock: FakeClock
) -> None:
    server, _ = served
    state.beat()
    assert _get(server.port, "/healthz")[0] == 200
    clock.now += 31
    status, _, body = _get(server.port, "/healthz")
    assert status == 503
    assert json.loads(body)["live"] is False


def test_stop_releases_the_port(state: HealthState) -> None:
    server = HealthServer(LOCAL, state, Metrics()).start_in_thread()
    port = server.port
    assert _get(port, "/healthz")[0] == 200
    server.stop()
    with pytest.raises(urllib.error.URLError):
        _get(port, "/healthz")


async def test_serve_runs_inside_the_callers_event_loop(state: HealthState) -> None:
    server = HealthServer(LOCAL, state, Metrics())
    server.bind()
    task = asyncio.create_task(server.serve())
    status, _, body = await asyncio.to_thread(_get, server.port, "/healthz")
    assert status == 200
    assert json.loads(body)["live"] is True
    assert server.started
    server.stop()
    await asyncio.wait_for(task, timeout=5)
    assert task.done()
    assert task.exception() is None
