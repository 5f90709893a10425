"""`meisa-bridge run --shadow` against the real broker and the sandbox: the calls are recorded,
Meisa's record shows nothing written, and the live consumer group and the DLQ stay untouched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from bridge_harness import (
    ConfigFactory,
    committed,
    event,
    produce,
    reached_end,
    read_all,
    wait_for,
)

from bridge.errors import ShadowWriteRefused
from bridge.meisa.client import MeisaClient, default_transport
from bridge.meisa.transport import ReadOnlyTransport
from bridge.sandbox.testing import SandboxHandle
from bridge.settings import MeisaSettings, SecretStr

pytestmark = pytest.mark.integration


def _shadow(config: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "meisa-bridge"
    args = ["run", "--config", str(config), "--shadow", "--shadow-from", "earliest"]
    with log.open("ab") as handle:
        return subprocess.Popen(
            [str(exe), *args, "--shadow-output", str(out)], stdout=handle, stderr=handle
        )


def _records(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def test_a_shadow_run_records_the_calls_and_writes_nothing_to_meisa(
    kafka_bootstrap: str,
    make_topic: Any,
    sandbox: SandboxHandle,
    bridge_config: ConfigFactory,
    tmp_path: Path,
) -> None:
    topic, dlq, group = make_topic(partitions=2), make_topic(), f"g-live-{os.getpid()}"
    config = bridge_config(topic, group, dlq=dlq, sections={"suppression": {"enabled": True}})
    events = [event("user.updated", u, 0) for u in range(4)]
    events += [event("user.acted", u, 1) for u in range(3)]
    events += [event("auth.otp", 9, 2, code="123456")]
    produce(kafka_bootstrap, topic, events)
    produce(kafka_bootstrap, topic, [(b"usr_5", b"{not json", None)])
    out, log = tmp_path / "calls.jsonl", tmp_path / "shadow.log"

    proc = _shadow(config, out, log)
    try:
        check = reached_end(kafka_bootstrap, f"{group}.shadow", topic, 2)
        wait_for(check, 60, "the shadow group to commit every offset")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, log.read_text()

    assert sandbox.contacts() == []
    assert sandbox.sends() == []
    assert sandbox.events() == []
    assert sandbox.enrollments() == []
    methods = Counter((r["method"], r["path"]) for r in sandbox.requests(path="/api/v1/"))
    assert {m for m, _ in methods} == {"GET"}, methods
    assert ("GET", "/api/v1/ping/") in methods

    assert all(offset < 0 for offset in committed(kafka_bootstrap, group, topic, 2).values())
    assert read_all(kafka_bootstrap, dlq, expect=0, timeout=2) == []

    records = _records(out)
    calls = [r for r in records if r["record"] == "call"]
    kinds = Counter(r["kind"] for r in calls)
    assert kinds["track"] == 3
    assert kinds["trigger"] == 1
    upserted = {r["body"]["external_id"] for r in calls if r["kind"] == "upsert"}
    assert upserted == {f"usr_{u}" for u in range(4)}
    [otp] = [r for r in calls if r["kind"] == "trigger"]
    assert otp["rule"] == "otp"
    assert otp["body"]["to_email"] == "user9@example.com"
    assert otp["body"]["variables"] == {"code": "123456"}
    assert otp["events"][0]["topic"] == topic
    [poison] = [r for r in records if r["record"] == "dead_letter"]
    assert (poison["stage"], poison["error"]) == ("decode", "DecodeError")
    assert "would dead-letter" in log.read_text()


async def test_the_read_only_transport_refuses_writes_before_they_reach_meisa(
    sandbox: SandboxHandle,
) -> None:
    settings = MeisaSettings(base_url=sandbox.base_url, api_key=SecretStr(sandbox.unlimited_key))
    client = MeisaClient(settings, transport=ReadOnlyTransport(default_transport(settings)))
    async with client:
        assert (await client.ping()).scopes
        with pytest.raises(ShadowWriteRefused, match="POST /api/v1/contacts/upsert/"):
            await client.upsert({"email": "a@example.com"})
        with pytest.raises(ShadowWriteRefused):
            await client.trigger({"trigger_key": "verification_code", "to_email": "a@example.com"})
    paths = {(r["method"], r["path"]) for r in sandbox.requests(path="/api/v1/")}
    assert paths == {("GET", "/api/v1/ping/")}
    assert sandbox.contacts() == []
    assert sandbox.sends() == []
