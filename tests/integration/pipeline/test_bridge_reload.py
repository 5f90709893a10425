"""Reloading the rules of a running bridge, on the real broker and the sandbox: a valid file is
applied to the messages read after the SIGHUP, a broken one and one needing a scope the key lacks
are refused with ERROR lines while the bridge goes on with the rules it had; the file watch
applies a changed file without a signal."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from bridge_harness import (
    bridge_in_process,
    bridge_process,
    event,
    produce,
    reached_end,
    wait_for,
    write_config,
)
from bridge_probes import metrics, ready, sample

from bridge.config import load_config
from bridge.sandbox.testing import SandboxHandle, SandboxPool, free_port

pytestmark = pytest.mark.integration

KEY = "meisa_test_reloadscopes_00000000000000000"
SCOPES = ["contacts:write", "contacts:read", "events:track"]  # no emails:trigger
PROFILE = """\
rules:
  - name: profile
    on: user.updated
    do:
      - upsert: {email: "{{ data.email }}", external_id: "{{ data.user_id }}"}
"""
WITH_TRACK = (
    PROFILE
    + """\
  - name: act
    on: user.acted
    do:
      - track:
          external_id: "{{ data.user_id }}"
          event_name: acted
          properties: {seq: "{{ data.seq }}"}
"""
)
BROKEN = WITH_TRACK.replace("event_name: acted", "event_nam: acted")
WITH_TRIGGER = (
    WITH_TRACK
    + """\
  - name: otp
    on: auth.otp
    do:
      - trigger: {trigger_key: verification_code, to_email: "{{ data.email }}"}
"""
)


def _config(tmp_path: Path, bootstrap: str, topic: str, sb: SandboxHandle, **extra: Any) -> Path:
    path = write_config(
        tmp_path,
        bootstrap=bootstrap,
        topics=[topic],
        base_url=sb.base_url,
        api_key=KEY,
        sections={
            "server": {"host": "127.0.0.1", "port": free_port()},
            "ledger": {"enabled": False},
        },
        extra=extra,
    )
    doc = yaml.safe_load(path.read_text())
    del doc["rules"]
    doc["rules_file"] = "rules.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _version(config: Path) -> str:
    return load_config(config).rules.version


def _port(config: Path) -> int:
    return int(yaml.safe_load(config.read_text())["server"]["port"])


def _acted(sb: SandboxHandle) -> list[int]:
    return sorted(int(e["properties"]["seq"]) for e in sb.events())


def test_sighup_applies_valid_rules_and_refuses_broken_ones_and_missing_scopes(
    kafka_bootstrap: str, make_topic: Any, sandboxes: SandboxPool, tmp_path: Path
) -> None:
    keys = [
        {"key": KEY, "name": "reload", "scopes": SCOPES, "rate_limit_per_minute": None,
         "rate_limit_per_hour": None}
    ]  # fmt: skip
    sb = sandboxes.get({"keys": keys})
    topic = make_topic()
    config = _config(tmp_path, kafka_bootstrap, topic, sb)
    group = yaml.safe_load(config.read_text())["kafka"]["group.id"]
    rules = tmp_path / "rules.yaml"
    rules.write_text(PROFILE)
    first = _version(config)
    log = tmp_path / "bridge.log"
    port = _port(config)
    bridge = bridge_process(config, log)
    try:
        wait_for(lambda: ready(port), 60, "the bridge to be ready")
        assert sample(metrics(port), "meisa_bridge_rules_version", version=first) == 1
        produce(kafka_bootstrap, topic, [event("user.updated", 1, 0), event("user.acted", 1, 1)])
        wait_for(reached_end(kafka_bootstrap, group, topic, 1), 60, "the first events")
        assert _acted(sb) == []  # no rule for user.acted yet

        rules.write_text(WITH_TRACK)
        second = _version(config)
        _hangup(bridge, port, "meisa_bridge_rules_reloads_total", result="ok")
        samples = metrics(port)
        assert sample(samples, "meisa_bridge_rules_version", version=second) == 1
        assert sample(samples, "meisa_bridge_rules_version", version=first) == 0
        assert sample(samples, "meisa_bridge_rules_reload_failed") == 0
        assert f"2 rules, version {second} (was {first})" in log.read_text()
        produce(kafka_bootstrap, topic, [event("user.acted", 1, 2)])
        wait_for(lambda: _acted(sb) == [2], 60, "the new rule to track the event read after it")

        rules.write_text(BROKEN)
        _hangup(bridge, port, "meisa_bridge_rules_reloads_total", result="invalid")
        assert sample(metrics(port), "meisa_bridge_rules_reload_failed") == 1
        errors = [line for line in log.read_text().splitlines() if "ERROR" in line]
        where = re.compile(re.escape(f"{rules}:11: ") + ".*event_nam")
        assert any(where.search(line) for line in errors), errors
        produce(kafka_bootstrap, topic, [event("user.acted", 1, 3)])
        wait_for(lambda: _acted(sb) == [2, 3], 60, "the rules before the broken file to go on")

        rules.write_text(WITH_TRIGGER)
        _hangup(bridge, port, "meisa_bridge_rules_reloads_total", result="missing_scope")
        samples = metrics(port)
        assert sample(samples, "meisa_bridge_rules_version", version=second) == 1
        assert sample(samples, "meisa_bridge_rules_reload_failed") == 1
        assert "emails:trigger" in log.read_text()
        produce(kafka_bootstrap, topic, [event("auth.otp", 1, 4), event("user.acted", 1, 5)])
        wait_for(lambda: _acted(sb) == [2, 3, 5], 60, "the bridge to go on with its rules")
        assert sb.sends() == []  # the refused rule never ran
        assert bridge.poll() is None
    finally:
        bridge.send_signal(signal.SIGTERM)
        code = bridge.wait(60)
    assert code == 0, log.read_text()[-3000:]


def _hangup(bridge: subprocess.Popen[bytes], port: int, name: str, **labels: str) -> None:
    before = sample(metrics(port), name, **labels)
    bridge.send_signal(signal.SIGHUP)
    wait_for(lambda: sample(metrics(port), name, **labels) > before, 30, f"{name}{labels}")


def test_the_file_watch_applies_a_changed_rules_file_without_a_signal(
    kafka_bootstrap: str, make_topic: Any, sandboxes: SandboxPool, tmp_path: Path
) -> None:
    keys = [
        {"key": KEY, "name": "reload", "scopes": SCOPES, "rate_limit_per_minute": None,
         "rate_limit_per_hour": None}
    ]  # fmt: skip
    sb = sandboxes.get({"keys": keys})
    topic = make_topic()
    reload = {"watch": True, "watch_interval_seconds": 0.2}
    config = _config(tmp_path, kafka_bootstrap, topic, sb, reload=reload)
    (tmp_path / "rules.yaml").write_text(PROFILE)
    port = _port(config)
    with bridge_in_process(config):
        wait_for(lambda: ready(port), 60, "the bridge to be ready")
        replacement = tmp_path / "rules.next"
        replacement.write_text(WITH_TRACK)
        replacement.replace(tmp_path / "rules.yaml")
        version = _version(config)
        wait_for(
            lambda: sample(metrics(port), "meisa_bridge_rules_version", version=version) == 1,
            30,
            "the watch to load the new rules",
        )
        produce(kafka_bootstrap, topic, [event("user.updated", 1, 0), event("user.acted", 1, 1)])
        wait_for(lambda: _acted(sb) == [1], 60, "the new rule to track the event")
