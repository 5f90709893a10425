"""server.halt_linger_seconds: a halted bridge, and one that refused to start, keep /metrics and
/readyz up so monitoring scrapes why, and a stop ends the wait with the usual exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bridge_harness import ConfigFactory, bridge_in_process, event, produce, wait_for, write_config
from bridge_probes import metrics, probe, sample

from bridge.exitcodes import ExitCode
from bridge.sandbox.testing import SandboxHandle, SandboxPool, free_port

pytestmark = pytest.mark.integration

LINGER = {"halt_linger_seconds": 600}  # far longer than the test: only the stop ends it


def _halted(port: int) -> bool:
    status, body = probe(port, "/readyz")
    return status == 503 and bool(body["halted"])


def test_a_halted_bridge_serves_metrics_until_it_is_stopped(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, bridge_config: ConfigFactory
) -> None:
    topic, port = make_topic(), free_port()
    server = {"host": "127.0.0.1", "port": port, **LINGER}
    path = bridge_config(topic, "g-linger", sections={"server": server})
    sandbox.set_fault("upsert", status=401)
    with bridge_in_process(path) as bridge:
        produce(kafka_bootstrap, topic, [event("user.updated", 1, 0)])
        wait_for(lambda: _halted(port), 60, "/readyz reports the halt")
        samples = metrics(port)  # the pipeline has stopped; the server lingers
        assert sample(samples, "meisa_bridge_halted") == 1
        assert "Unauthorized" in probe(port, "/readyz")[1]["halt_reason"]
        assert bridge.running
        assert bridge.stop() == ExitCode.HALTED
    assert probe(port, "/readyz") == (None, None)


def test_a_refused_start_serves_the_missing_scopes_until_it_is_stopped(
    kafka_bootstrap: str, tmp_path: Path, sandboxes: SandboxPool
) -> None:
    key = "meisa_test_contactsonly_0000000000000000"
    keys = [{"key": key, "name": "contacts-only", "scopes": ["contacts:write", "contacts:read"]}]
    port = free_port()
    sb = sandboxes.get({"keys": keys})
    path = write_config(
        tmp_path,
        bootstrap=kafka_bootstrap,
        topics=["never-consumed"],
        base_url=sb.base_url,
        api_key=key,
        sections={"server": {"host": "127.0.0.1", "port": port, **LINGER}},
    )
    with bridge_in_process(path) as bridge:
        wait_for(lambda: _halted(port), 60, "/readyz reports the refusal")
        samples = metrics(port)
        assert sample(samples, "meisa_bridge_scope_missing", scope="emails:trigger") == 1
        assert sample(samples, "meisa_bridge_scope_missing", scope="events:track") == 1
        assert sample(samples, "meisa_bridge_scope_missing", scope="contacts:write") == 0
        assert sample(samples, "meisa_bridge_halted") == 1
        assert "refused to start" in probe(port, "/readyz")[1]["halt_reason"]
        assert bridge.stop() == 2
