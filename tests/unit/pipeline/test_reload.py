"""Rules reloads: valid rules are swapped in, invalid ones and ones needing a missing scope are
refused with every error logged, and the file watch notices a changed file."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bridge.config import load_config
from bridge.errors import TransportError
from bridge.observability import Metrics
from bridge.pipeline.reload import RulesReloader
from bridge.rules.engine import RuleSet

UPSERT = """\
rules:
  - name: profile
    on: user.updated
    do:
      - upsert: {email: "{{ data.email }}"}
"""
TRACK = (
    UPSERT
    + """\
  - name: act
    on: user.acted
    do:
      - track: {email: "{{ data.email }}", event_name: acted}
"""
)
TRIGGER = (
    UPSERT
    + """\
  - name: otp
    on: auth.otp
    do:
      - trigger: {trigger_key: code, to_email: "{{ data.email }}"}
"""
)
BROKEN = (
    UPSERT
    + """\
  - name: act
    on: user.acted
    do:
      - track: {email: "{{ data.email }}", event_nam: acted}
      - upsert: {emial: x}
"""
)
SCOPES = frozenset({"contacts:write", "events:track"})


class Harness:
    def __init__(self, tmp_path: Path, text: str = UPSERT) -> None:
        self.rules_file = tmp_path / "rules.yaml"
        self.rules_file.write_text(text)
        self.config = tmp_path / "bridge.yaml"
        self.config.write_text("topics: [t]\nrules_file: rules.yaml\n")
        self.applied: list[RuleSet] = []
        self.metrics = Metrics()
        self.scopes: frozenset[str] | Exception = SCOPES
        loaded = load_config(self.config)
        self.reloader = RulesReloader(
            source=str(self.config),
            rules=loaded.rules,
            settings=loaded,
            apply=self.applied.append,
            key_scopes=self.key_scopes,
            scopes=SCOPES,
            metrics=self.metrics,
        )

    async def key_scopes(self) -> frozenset[str]:
        if isinstance(self.scopes, Exception):
            raise self.scopes
        return self.scopes

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


async def test_valid_rules_are_applied_and_their_version_exported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(tmp_path)
    old = h.reloader.rules.version
    assert h.sample("meisa_bridge_rules_version", version=old) == 1
    h.rules_file.write_text(TRACK)
    with caplog.at_level(logging.INFO, logger="bridge.reload"):
        assert await h.reloader.reload()
    [new] = h.applied
    assert [r.name for r in new] == ["profile", "act"]
    assert new.version != old
    assert h.sample("meisa_bridge_rules_version", version=new.version) == 1
    assert h.sample("meisa_bridge_rules_version", version=old) is None
    assert h.sample("meisa_bridge_rules_reloads_total", result="ok") == 1
    assert h.sample("meisa_bridge_rules_reload_failed") == 0
    [line] = [r for r in caplog.records if r.levelno == logging.INFO]
    assert f"version {new.version} (was {old})" in line.getMessage()


async def test_invalid_rules_keep_the_old_ones_and_log_every_error_with_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(tmp_path)
    before = h.reloader.rules
    h.rules_file.write_text(BROKEN)
    with caplog.at_level(logging.INFO, logger="bridge.reload"):
        assert not await h.reloader.reload()
    assert h.applied == []
    assert h.reloader.rules is before
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(e.startswith(f"{h.rules_file}:9: ") and "event_nam" in e for e in errors)
    assert any(e.startswith(f"{h.rules_file}:10: ") and "emial" in e for e in errors)
    assert f"still using version {before.version}" in errors[-1]
    assert h.sample("meisa_bridge_rules_reload_failed") == 1
    assert h.sample("meisa_bridge_rules_reloads_total", result="invalid") == 1
    assert h.sample("meisa_bridge_rules_version", version=before.version) == 1


async def test_an_empty_rules_list_is_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.rules_file.write_text("rules: []\n")
    assert not await h.reloader.reload()
    assert h.applied == []


async def test_rules_needing_a_scope_the_key_lacks_are_refused_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(tmp_path)
    h.rules_file.write_text(TRIGGER)
    with caplog.at_level(logging.ERROR, logger="bridge.reload"):
        assert not await h.reloader.reload()
    assert h.applied == []
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "emails:trigger" in text
    assert "otp" in text
    assert h.sample("meisa_bridge_rules_reloads_total", result="missing_scope") == 1
    assert h.sample("meisa_bridge_rules_reload_failed") == 1
    # the key gains the scope: the same file goes through, and the failure gauge clears
    h.scopes = SCOPES | {"emails:trigger"}
    assert await h.reloader.reload()
    assert h.sample("meisa_bridge_rules_reload_failed") == 0


async def test_without_meisa_the_scopes_it_gave_last_are_checked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(tmp_path)
    h.scopes = TransportError("connection refused")
    h.rules_file.write_text(TRACK)
    with caplog.at_level(logging.WARNING, logger="bridge.reload"):
        assert await h.reloader.reload()
    h.rules_file.write_text(TRIGGER)
    assert not await h.reloader.reload()
    assert "GET /ping failed" in caplog.text


async def test_requests_during_a_reload_fold_into_one_more(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    task = asyncio.create_task(h.reloader.run())
    for _ in range(3):
        h.reloader.request()
    for _ in range(50):
        await asyncio.sleep(0.01)
        if h.applied:
            break
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(h.applied) == 1


async def test_the_watch_reloads_once_a_changed_file_stays_the_same(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    assert h.reloader.files() == (str(h.config), str(h.rules_file))
    watch = asyncio.create_task(h.reloader.watch(0.02))
    run = asyncio.create_task(h.reloader.run())
    await asyncio.sleep(0.1)
    assert h.applied == []  # nothing changed
    replacement = tmp_path / "rules.new"
    replacement.write_text(TRACK)
    replacement.replace(h.rules_file)  # a new inode, as a ConfigMap update makes
    for _ in range(100):
        await asyncio.sleep(0.02)
        if h.applied:
            break
    watch.cancel()
    run.cancel()
    await asyncio.gather(watch, run, return_exceptions=True)
    assert [[r.name for r in rules] for rules in h.applied] == [["profile", "act"]]


async def test_a_changed_setting_besides_the_rules_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(tmp_path)
    h.rules_file.write_text(TRACK)
    with caplog.at_level(logging.WARNING, logger="bridge.reload"):
        assert await h.reloader.reload()
    assert "settings other than the rules" not in caplog.text
    h.config.write_text("topics: [t, u]\nrules_file: rules.yaml\n")
    with caplog.at_level(logging.WARNING, logger="bridge.reload"):
        assert await h.reloader.reload()
    assert "settings other than the rules changed; they apply at the next restart" in caplog.text
