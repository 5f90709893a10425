"""/readyz and /metrics of a running bridge, and readiness after a 401 halt.

On a halt `run_bridge` drains (at most a few seconds), stops the health server and returns exit
code 3 (HALTED), so the halt is observed in two steps: /readyz answers 503 with `halted` while
the bridge drains, then nothing listens and the exit code is 3.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from bridge_harness import (
    ConfigFactory,
    bridge_in_process,
    committed,
    end_offsets,
    event,
    produce,
    read_all,
    wait_for,
)
from bridge_probes import metrics, probe, ready, sample

from bridge.exitcodes import ExitCode
from bridge.sandbox.testing import SandboxHandle, free_port

pytestmark = pytest.mark.integration

KINDS = {"/api/v1/contacts/upsert/": "upsert", "/api/v1/events/track/": "track"}


class ReadinessWatch:
    """Polls /readyz every 20 ms on a thread until nothing listens any more."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: list[tuple[int | None, Any]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, body = probe(self.port, "/readyz")
            self.seen.append((status, body))
            if status is None:
                return
            time.sleep(0.02)

    def join(self) -> list[tuple[int | None, Any]]:
        self._thread.join(65)
        return self.seen


def _calls_by_status(sandbox: SandboxHandle) -> Counter[tuple[str, str]]:
    return Counter(
        (KINDS[r["path"]], str(r["status"]))
        for r in sandbox.requests(path="/api/v1/")
        if r["path"] in KINDS
    )


def test_readiness_and_metrics_during_a_run_then_not_ready_after_a_401_halt(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic, dlq, group, port = make_topic(partitions=2), make_topic(), "g-health", free_port()
    path = bridge_config(
        topic,
        group,
        dlq=dlq,
        sections={"server": {"host": "127.0.0.1", "port": port}},
    )
    events = [event("user.updated", u, 0) for u in range(6)]
    events += [event("user.acted", u, 1) for u in range(6)]
    events += [event("user.updated", u, 2) for u in range(3)]
    with bridge_in_process(path) as bridge:
        wait_for(lambda: ready(port), 30, "/readyz 200")
        status, body = probe(port, "/readyz")
        assert (status, body["assigned_partitions"], body["meisa_reachable"]) == (200, 2, True)
        assert probe(port, "/healthz")[0] == 200

        produce(kafka_bootstrap, topic, events)
        ends = end_offsets(kafka_bootstrap, topic, 2)
        wait_for(lambda: committed(kafka_bootstrap, group, topic, 2) == ends, 30, "committed")
        samples = metrics(port)
        name = "meisa_bridge_events_total"
        assert sample(samples, name, topic=topic, type="user.updated", outcome="ok") == 9
        assert sample(samples, name, topic=topic, type="user.acted", outcome="ok") == 6
        sent = _calls_by_status(sandbox)
        assert sent[("track", "202")] + sent[("track", "200")] == 6
        for (endpoint, code), count in sent.items():
            assert sample(samples, "meisa_bridge_calls_total", endpoint=endpoint, status=code) == (
                count
            ), (endpoint, code)
        assert sample(samples, "meisa_bridge_assigned_partitions") == 2
        assert sample(samples, "meisa_bridge_halted") == 0

        # 401 on upserts halts the bridge; a slow track keeps it draining for ~3 s, long enough
        # to watch readiness drop before the health server goes away.
        sandbox.set_fault("upsert", status=401)
        sandbox.set_fault("track", latency_ms=3000)
        watch = ReadinessWatch(port)
        produce(kafka_bootstrap, topic, [event("user.acted", 1, 3)])
        time.sleep(0.5)  # the track is on its way (3 s in the sandbox) before the upsert halts
        produce(kafka_bootstrap, topic, [event("user.updated", 4, 4)])
        assert bridge.join(60) == ExitCode.HALTED, "a 401 halts the bridge (exit code HALTED)"
        seen = watch.join()

    statuses = [s for s, _ in seen]
    assert statuses[-1] is None, "the health server stops when the bridge exits"
    halted = [b for s, b in seen if s == 503]
    assert halted, f"readiness never went to 503 before the exit: {statuses}"
    assert halted[-1]["halted"] is True
    assert "Unauthorized" in halted[-1]["halt_reason"]
    first_503 = statuses.index(503)
    assert 200 not in statuses[first_503:], "readiness never comes back after a halt"
    assert read_all(kafka_bootstrap, dlq, expect=0, timeout=2) == []
