"""`plan`, `test`, `replay` (read phase), `dlq show` and `dlq redrive` read registry-framed
Protobuf through the one decode -> map path, with values from confluent-kafka's serialiser."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import message_factory
from stub_registry import StubRegistry, stub_registry

from bridge.codecs import build_decoder
from bridge.codecs.protobuf import new_pool
from bridge.codecs.protoparse import parse_proto
from bridge.config import BridgeConfig, load_config
from bridge.dlq_admin.commands import _decoded_value
from bridge.dlq_admin.records import DlqRecord
from bridge.dlq_admin.redrive import Redriver
from bridge.events import Record
from bridge.kafka.protocols import Batch, Range
from bridge.replay.runner import ReadPhase
from bridge.replay.state import StateStore
from bridge.rules.plan import plan_lines
from bridge.rules.testcommand import run_file

PROTO = """
syntax = "proto3";
package acme.users;
message SignedUp { string user_id = 1; string email = 2; int64 visits = 3; }
"""
RULES = [
    {
        "name": "signed-up",
        "on": "acme.users.SignedUp",
        "do": [
            {
                "upsert": {
                    "email": "{{ data.email }}",
                    "external_id": "{{ data.user_id }}",
                    "custom_fields": {"visits": "{{ data.visits }}"},
                }
            }
        ],
    }
]
UPSERT = {
    "email": "sam@example.com",
    "external_id": "usr_5",
    "custom_fields": {"visits": 2**40},
}


@pytest.fixture
def stub() -> Iterator[StubRegistry]:
    with stub_registry() as registry:
        yield registry


def _value(stub: StubRegistry) -> bytes:
    pool = new_pool()
    pool.Add(parse_proto(PROTO, "acme/users.proto"))
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("acme.users.SignedUp"))
    client = SchemaRegistryClient({"url": stub.url})
    serialise = ProtobufSerializer(cls, client, {"use.deprecated.format": False})
    message = cls(user_id="usr_5", email="sam@example.com", visits=2**40)
    value: bytes = serialise(message, SerializationContext("app.users", MessageField.VALUE))
    return value


def _config(tmp_path: Path, stub: StubRegistry) -> tuple[Path, BridgeConfig]:
    path = tmp_path / "bridge.yaml"
    doc = {"codec": {"schema_registry_url": stub.url}, "rules": RULES}
    path.write_text(yaml.safe_dump(doc))
    return path, load_config(path, strict_env=False)


def _record(value: bytes) -> Record:
    return Record("app.users", 0, 3, b"usr_5", value, (), 1_700_000_000_000)


def test_plan_maps_a_registry_framed_message(tmp_path: Path, stub: StubRegistry) -> None:
    _, config = _config(tmp_path, stub)
    line = orjson.dumps({"topic": "app.users", "value": {"base64": b64(_value(stub))}}).decode()
    rows = list(plan_lines([line], config.rules, build_decoder(config.codec)))
    assert [(call.kind, call.body) for _, call, _ in rows if call] == [("upsert", UPSERT)]


def test_rule_tests_read_a_registry_framed_message(tmp_path: Path, stub: StubRegistry) -> None:
    path, _ = _config(tmp_path, stub)
    spec = {
        "rules": str(path),
        "tests": [
            {
                "name": "protobuf sign-up",
                "message": {"topic": "app.users", "value": {"base64": b64(_value(stub))}},
                "expect": {"calls": [{"upsert": UPSERT}]},
            }
        ],
    }
    test_file = tmp_path / "signup.test.yaml"
    test_file.write_text(yaml.safe_dump(spec))
    report = run_file(str(test_file))
    assert report.errors == []
    assert [r.problems for r in report.results] == [()]


def test_replay_reads_registry_framed_messages(tmp_path: Path, stub: StubRegistry) -> None:
    _, config = _config(tmp_path, stub)
    store = StateStore(tmp_path / "replay.sqlite")
    store.init_ranges([Range("app.users", 0, 3, 4, 3)])
    batch = Batch([_record(_value(stub))], {("app.users", 0): 4})
    ReadPhase(store, build_decoder(config.codec), config.rules).run([batch])
    folds = [fold for shard in range(64) for fold, _ in store.pending_contacts(shard)]
    assert [fold.key for fold in folds] == ["usr_5"]


def _dead_letter(value: bytes) -> DlqRecord:
    return DlqRecord(
        partition=0,
        offset=9,
        error_class="TransportError",
        error_message="schema registry unreachable",
        rule="",
        stage="decode",
        origin_topic="app.users",
        origin_partition=0,
        origin_offset=3,
        origin_timestamp=1_700_000_000_000,
        attempts=1,
        dlq_timestamp=None,
        key=b"usr_5",
        value=value,
        headers=(),
    )


def test_dlq_show_decodes_a_registry_framed_message(tmp_path: Path, stub: StubRegistry) -> None:
    _, config = _config(tmp_path, stub)
    data = _decoded_value(config, _dead_letter(_value(stub)))
    assert data == {"user_id": "usr_5", "email": "sam@example.com", "visits": 2**40}


def test_dlq_redrive_fetches_schemas_off_the_loop_first(tmp_path: Path, stub: StubRegistry) -> None:
    _, config = _config(tmp_path, stub)
    decoder = build_decoder(config.codec)
    redriver = Redriver(
        decoder, config.rules, deliver=None, dead_letter=None, mark=None, clock=lambda: 1.7e9
    )
    summary: Any = asyncio.run(redriver.run([_dead_letter(_value(stub))]))
    assert (summary.selected, summary.calls, summary.outcomes) == (1, {"upsert": 1}, {"ok": 1})


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()
