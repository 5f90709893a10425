"""Replicas sharing one API key: each one's share follows the partitions it owns.

Three bridges in one group on a 6-partition topic and a 1-partition topic (the OTPs): the shares
add up to at most 1 while they share the partitions; after a scale-in to one, the survivor owns
everything and spends the whole budget.
"""

from __future__ import annotations

import re
import signal
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from bridge_harness import RULES, bridge_process, wait_for

from bridge.sandbox.testing import SandboxHandle, free_port


def _config(tmp: Path, bootstrap: str, sb: SandboxHandle, topics: list[str], group: str) -> Path:
    port = free_port()
    doc: dict[str, Any] = {
        "kafka": {"bootstrap.servers": bootstrap, "group.id": group},
        "topics": topics,
        "meisa": {"base_url": sb.base_url, "api_key": sb.api_key},
        "server": {"host": "127.0.0.1", "port": port},
        "suppression": {"enabled": False},
        "logging": {"level": "INFO", "format": "text"},
        "rules": RULES,
    }
    path = tmp / f"bridge-{port}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _metric(path: Path, name: str) -> float | None:
    port = yaml.safe_load(path.read_text())["server"]["port"]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    found = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_shares_add_up_to_at_most_one_and_a_survivor_of_a_scale_in_uses_the_whole_budget(
    kafka_bootstrap: str, make_topic: Any, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    topics = [make_topic(partitions=6), make_topic(partitions=1)]
    group = f"share-{uuid.uuid4().hex[:8]}"
    configs = [_config(tmp_path, kafka_bootstrap, sandbox, topics, group) for _ in range(3)]
    procs: list[subprocess.Popen[bytes]] = [
        bridge_process(c, tmp_path / f"b{n}.log") for n, c in enumerate(configs)
    ]

    def assigned() -> list[float | None]:
        return [_metric(c, "meisa_bridge_assigned_partitions") for c in configs]

    def shares() -> list[float | None]:
        return [_metric(c, "meisa_bridge_rate_share") for c in configs]

    try:
        wait_for(lambda: sum(a or 0 for a in assigned()) == 7 and all(assigned()), 90, "3 owners")
        samples: list[float] = []

        def settled() -> bool:  # read one replica after another: a rebalance may fall between
            now = shares()
            if None in now:
                return False
            samples.append(sum(x or 0.0 for x in now))
            return samples[-1] >= 0.99

        wait_for(settled, 30, "the shares to add up to the whole budget")
        assert samples[-1] <= 1.0 + 1e-9, samples
        for proc in procs[1:]:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
        wait_for(lambda: _metric(configs[0], "meisa_bridge_assigned_partitions") == 7, 90, "one")
        wait_for(lambda: _metric(configs[0], "meisa_bridge_rate_share") == 1.0, 30, "full share")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
