"""Avro, Protobuf and JSON Schema produced with confluent-kafka's own serialisers against a real
registry (Apicurio, `scripts/registry.sh`), consumed from the real broker by the bridge, mapped
by rules and delivered to the sandbox over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from bridge_harness import ConfigFactory, bridge_in_process, committed, end_offsets, wait_for
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import message_factory

from bridge.codecs.protobuf import new_pool
from bridge.codecs.protoparse import parse_proto
from bridge.sandbox.testing import SandboxHandle

pytestmark = pytest.mark.integration

PROTO = """
syntax = "proto3";
package acme.users;
import "google/protobuf/timestamp.proto";
message SignedUp {
  string user_id = 1;
  string email = 2;
  int64 visits = 3;
  enum Plan { FREE = 0; PRO = 1; }
  Plan plan = 4;
  google.protobuf.Timestamp time = 5;
  map<string, string> labels = 6;
  oneof referral { string code = 7; string partner = 8; }
}
"""
AVRO = """{
  "type": "record", "name": "InvoicePaid", "namespace": "acme.billing",
  "fields": [
    {"name": "user_id", "type": "string"},
    {"name": "amount_cents", "type": "long"},
    {"name": "currency", "type": {"type": "enum", "name": "Currency", "symbols": ["EUR", "USD"]}},
    {"name": "receipt", "type": "bytes"}
  ]
}"""
JSON_SCHEMA = """{
  "title": "acme.users.PlanChanged", "type": "object",
  "properties": {"user_id": {"type": "string"}, "to_plan": {"type": "string"}},
  "required": ["user_id", "to_plan"]
}"""
RULES: list[dict[str, Any]] = [
    {
        "name": "signed-up",
        "on": "acme.users.SignedUp",
        "do": [
            {
                "upsert": {
                    "email": "{{ data.email }}",
                    "external_id": "{{ data.user_id }}",
                    "custom_fields": {
                        "visits": "{{ data.visits }}",
                        "plan": "{{ data.plan }}",
                        "source": "{{ data.labels.source }}",
                        "referral": "{{ data.code }}",
                    },
                }
            }
        ],
    },
    {
        "name": "paid",
        "on": "acme.billing.InvoicePaid",
        "do": [
            {
                "track": {
                    "external_id": "{{ data.user_id }}",
                    "event_name": "invoice_paid",
                    "properties": {
                        "amount_cents": "{{ data.amount_cents }}",
                        "currency": "{{ data.currency }}",
                        "receipt": "{{ data.receipt }}",
                    },
                }
            }
        ],
    },
    {
        "name": "plan",
        "on": "acme.users.PlanChanged",
        "do": [
            {
                "track": {
                    "external_id": "{{ data.user_id }}",
                    "event_name": "plan_changed",
                    "properties": {"to_plan": "{{ data.to_plan }}"},
                }
            }
        ],
    },
]


def _signed_up_class() -> Any:
    pool = new_pool()
    pool.Add(parse_proto(PROTO, "acme/users/signed_up.proto"))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("acme.users.SignedUp"))


def _produce(bootstrap: str, registry: str, topics: dict[str, str], users: list[str]) -> None:
    with SchemaRegistryClient({"url": registry}) as client:
        _produce_with(client, bootstrap, topics, users)


def _produce_with(client: Any, bootstrap: str, topics: dict[str, str], users: list[str]) -> None:
    signed_up = _signed_up_class()
    to_proto = ProtobufSerializer(signed_up, client, {"use.deprecated.format": False})
    to_avro = AvroSerializer(client, AVRO)
    to_json = JSONSerializer(JSON_SCHEMA, client)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})

    def send(kind: str, value: Any, serialise: Any, user: str) -> None:
        ctx = SerializationContext(topics[kind], MessageField.VALUE)
        producer.produce(topics[kind], key=user, value=serialise(value, ctx))
        producer.flush(10)  # one after the other: Kafka timestamps order the three topics

    for n, user in enumerate(users):
        message = signed_up(user_id=user, email=f"{user}@example.com", visits=2**40 + n, plan=1)
        message.time.FromJsonString("2026-03-02T09:00:00Z")
        message.labels["source"] = "ads"
        message.code = f"ref-{n}"
        send("signed_up", message, to_proto, user)
    for n, user in enumerate(users):
        paid = {"user_id": user, "amount_cents": 4900 + n, "currency": "USD", "receipt": b"\x01"}
        send("paid", paid, to_avro, user)
        send("plan", {"user_id": user, "to_plan": "pro"}, to_json, user)


def test_the_three_registry_formats_become_meisa_calls(
    kafka_bootstrap: str,
    make_topic: Any,
    registry: str,
    sandbox: SandboxHandle,
    bridge_config: ConfigFactory,
) -> None:
    topics = {kind: make_topic(partitions=1) for kind in ("signed_up", "paid", "plan")}
    users = [f"usr_{uuid.uuid4().hex[:6]}_{n}" for n in range(3)]
    _produce(kafka_bootstrap, registry, topics, users)
    group = f"g-registry-{uuid.uuid4().hex[:6]}"
    path = bridge_config(
        topics["signed_up"],
        group,
        topics=list(topics.values()),
        extra={"codec": {"schema_registry_url": registry}, "rules": RULES},
    )
    ends = {t: end_offsets(kafka_bootstrap, t, 1) for t in topics.values()}
    with bridge_in_process(path) as bridge:
        wait_for(
            lambda: all(committed(kafka_bootstrap, group, t, 1) == ends[t] for t in ends),
            90,
            "committed offsets to reach the end of the three topics",
        )
        assert bridge.running
    assert bridge.exit_code == 0
    contacts = {c["external_id"]: c for c in sandbox.contacts()}
    assert set(contacts) == set(users)
    first = contacts[users[0]]["custom_fields"]
    assert first == {"visits": 2**40, "plan": "PRO", "source": "ads", "referral": "ref-0"}
    events = sandbox.events()
    paid = [e for e in events if e["event_name"] == "invoice_paid"]
    assert sorted(e["properties"]["amount_cents"] for e in paid) == [4900, 4901, 4902]
    assert {e["properties"]["currency"] for e in paid} == {"USD"}
    assert {e["properties"]["receipt"] for e in paid} == {"AQ=="}  # bytes: base64
    changed = [e for e in events if e["event_name"] == "plan_changed"]
    assert sorted(e["properties"]["to_plan"] for e in changed) == ["pro"] * 3
