"""`meisa-bridge replay --dry-run` end to end on the in-memory broker: plan the ranges, read them,
fold, and print what a real run would send, without Kafka or Meisa."""

from __future__ import annotations

import io
import json
from pathlib import Path

import orjson

from bridge.config import load_config
from bridge.exitcodes import ExitCode
from bridge.kafka.memory import MemoryBroker, MemoryRangeReader
from bridge.replay.command import ReplayOptions, run_replay

CONFIG = """
topics: [users]
rules:
  - name: profile
    on: user.updated
    do:
      - upsert:
          email: "{{ data.email }}"
          external_id: "{{ data.user_id }}"
          first_name: "{{ data.first_name }}"
  - name: seen
    on: user.seen
    do:
      - track:
          external_id: "{{ data.user_id }}"
          event_name: seen
"""


def event(kind: str, user: int, **data: object) -> bytes:
    body = {"user_id": f"u{user}", "email": f"u{user}@example.com", **data}
    envelope = {"specversion": "1.0", "id": f"{kind}-{user}", "source": "test", "type": kind}
    return orjson.dumps({**envelope, "data": body})


def test_a_dry_run_folds_each_contact_into_one_upsert_and_skips_tracks(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(CONFIG)
    config = load_config(path, strict_env=False)
    broker = MemoryBroker()
    broker.create_topic("users", 2)
    for user in range(3):
        for name in ("Ann", "Bea"):  # two updates per person: one folded upsert each
            broker.produce(
                "users", event("user.updated", user, first_name=name), partition=user % 2
            )
        broker.produce("users", event("user.seen", user), partition=user % 2)
    options = ReplayOptions(
        topics=("users",),
        from_spec="earliest",
        to_spec="now",
        dry_run=True,
        state_dir=tmp_path,
        run_name="test",
        output="json",
    )
    out = io.StringIO()

    code = run_replay(
        config, options, out=out, open_reader=lambda kafka, g: MemoryRangeReader(broker)
    )

    assert code == ExitCode.OK
    plan = json.loads(out.getvalue())
    assert plan["calls"] == {"upsert": 3}  # tracks skip on replay unless a rule says otherwise
    assert plan["events"] == 9
