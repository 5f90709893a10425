"""Replay on the real broker into the sandbox over HTTP, through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import replay_env as env

from bridge.settings import PipelineSettings

pytestmark = pytest.mark.integration


def _replay(config: Path, state: Path, *extra: str) -> dict[str, Any]:
    done = env.cli(
        "replay",
        "--config",
        config,
        "--from",
        "earliest",
        "--state-dir",
        state,
        "--format",
        "json",
        *extra,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_backfill_of_100k_events_sends_about_one_upsert_per_contact(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: Any,
    replay_config: env.ConfigFactory,
) -> None:
    topic = make_topic(partitions=4)
    events = env.history(users=1000, events=100_000)
    env.produce(kafka_bootstrap, topic, events)
    live = f"live-{uuid.uuid4().hex[:8]}"
    env.commit_live_group(kafka_bootstrap, live, topic, [5, 17, 0, 3])
    config = replay_config(topic, live)

    plan = _replay(config, tmp_path / "state", "--dry-run")
    assert env.requests_by_endpoint(sandbox) == {}  # a dry run sends nothing
    summary = _replay(config, tmp_path / "state")

    sent = env.requests_by_endpoint(sandbox)
    assert plan["events"] == summary["events"] == 100_000
    assert sent == plan["calls"] == summary["calls"]
    assert sent["upsert"] <= 1050
    assert not {"trigger", "enroll", "track"} & set(sent)  # default on_replay policies
    assert env.actual_state(sandbox.contacts()) == env.expected_state(events)
    assert env.committed(kafka_bootstrap, live, topic, 4) == [5, 17, 0, 3]


def test_rerunning_a_finished_replay_sends_nothing(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: Any,
    replay_config: env.ConfigFactory,
) -> None:
    topic = make_topic(partitions=2)
    events = env.history(users=20, events=400)
    env.produce(kafka_bootstrap, topic, events)
    config = replay_config(topic)
    first = _replay(config, tmp_path / "state")
    before = env.requests_by_endpoint(sandbox)
    again = _replay(config, tmp_path / "state")
    assert env.requests_by_endpoint(sandbox) == before == first["calls"] == again["calls"]
    assert env.actual_state(sandbox.contacts()) == env.expected_state(events)


def test_a_rule_can_opt_a_trigger_into_replay(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: Any,
    replay_config: env.ConfigFactory,
) -> None:
    topic = make_topic()
    rules = [dict(r) for r in env.RULES]
    otp = next(r for r in rules if r["name"] == "otp")
    otp["do"] = [{**otp["do"][0], "on_replay": "send"}]
    events = [env._event("user.updated", 1, 0, tier="free"), env._event("auth.otp", 1, 1, code="1")]
    env.produce(kafka_bootstrap, topic, events)
    config = replay_config(topic, rules=rules)
    summary = _replay(config, tmp_path / "state")
    assert summary["calls"] == {"upsert": 1, "trigger": 1}
    assert len(sandbox.sends()) == 1


def test_replay_killed_halfway_resumes_and_sends_each_final_upsert_once(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: Any,
    replay_config: env.ConfigFactory,
) -> None:
    topic = make_topic(partitions=2)
    events = env.history(users=300, events=3000)
    env.produce(kafka_bootstrap, topic, events)
    # The demo key's 60/min keeps the send phase slow enough to kill it in the middle.
    config = replay_config(topic, api_key=sandbox.api_key)
    state = tmp_path / "state"
    args = [
        "replay",
        "--config",
        str(config),
        "--from",
        "earliest",
        "--state-dir",
        str(state),
        "--run-name",
        "killed",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(sandbox.requests(path="/api/v1/contacts/upsert/")) < 30:
            assert time.monotonic() < deadline, "the replay never started sending"
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    before = len(sandbox.requests(path="/api/v1/contacts/upsert/"))
    assert before < 300
    # Run it again with the unlimited key, so the rest does not take five minutes.
    fast = replay_config(topic)
    fast.replace(config)
    summary = _replay(config, state, "--run-name", "killed")
    upserts = sandbox.requests(path="/api/v1/contacts/upsert/")
    per_contact: dict[str, int] = {}
    for req in upserts:
        per_contact[req["body"]["email"]] = per_contact.get(req["body"]["email"], 0) + 1
    assert len(per_contact) == 300
    resent = len(upserts) - 300
    assert 0 <= resent <= PipelineSettings().max_in_flight  # at most those in flight at the kill
    assert summary["calls"]["upsert"] >= 300 - before
    assert env.actual_state(sandbox.contacts()) == env.expected_state(events)


@pytest.mark.parametrize(
    "case",
    [({}, "60/min, 1000/h (default)"), ({"rate_limit_per_minute": 30}, "30/min, 1000/h (config)")],
)
def test_a_dry_run_without_an_api_key_estimates_from_config_or_the_spec_defaults(
    tmp_path: Path,
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: Any,
    case: tuple[dict[str, int], str],
) -> None:
    limits, budget = case
    topic = make_topic()
    env.produce(kafka_bootstrap, topic, env.history(users=3, events=10))
    config = env.write_config(
        tmp_path,
        bootstrap=kafka_bootstrap,
        topic=topic,
        base_url=sandbox.base_url,
        api_key="${MEISA_API_KEY}",
        group="live-unused",
        meisa=limits,
    )
    args = ("replay", "--config", config, "--from", "earliest", "--state-dir", tmp_path / "s")
    no_key = env.without_api_key()
    done = env.cli(*args, "--dry-run", "--format", "json", env=no_key)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout.strip().splitlines()[-1])
    assert (plan["events"], plan["budget"]) == (10, budget)
    assert "no Meisa API key" in done.stderr  # says where the estimate comes from
    assert sandbox.requests(limit=1000) == []  # not even GET /ping
    refused = env.cli(*args, env=no_key)
    assert refused.returncode == 2
    assert "MEISA_API_KEY" in refused.stderr
