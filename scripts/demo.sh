#!/usr/bin/env bash
# `make demo`: the story end to end on this machine.
# Starts the local broker if it is not running (and stops it at the end only if it started it),
# then runs each step below in order.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export KAFKA_PORT=${KAFKA_PORT:-9092}
export KAFKA_BOOTSTRAP=${KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}

started_kafka=0

cleanup() {
  if [ "$started_kafka" = 1 ]; then scripts/kafka.sh stop || true; fi
}

step() { printf '\n== %s\n' "$*"; }

start_broker() {
  step "Kafka broker on $KAFKA_BOOTSTRAP"
  if scripts/kafka.sh status; then return 0; fi
  started_kafka=1
  scripts/kafka.sh start
}

# Produce one keyed event to a demo topic and read it back from a fresh consumer group.
kafka_round_trip() {
  step "Kafka round trip"
  "$PY" - <<'PY'
import json
import os
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap = os.environ["KAFKA_BOOTSTRAP"]
topic = "demo.roundtrip"
admin = AdminClient({"bootstrap.servers": bootstrap})
if topic not in admin.list_topics(timeout=10).topics:
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)

event = {"type": "user.signed_up", "id": str(uuid.uuid4()), "data": {"email": "ada@example.com"}}
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
producer.produce(topic, key=b"user-1", value=json.dumps(event).encode())
assert producer.flush(30) == 0, "not delivered"
print(f"produced  {event['type']} {event['id']} to {topic}")

consumer = Consumer(
    {"bootstrap.servers": bootstrap, "group.id": f"demo-{uuid.uuid4().hex[:8]}",
     "auto.offset.reset": "earliest", "enable.auto.commit": False}
)
consumer.subscribe([topic])
deadline = time.monotonic() + 30
try:
    while time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error() is not None:
            continue
        got = json.loads(msg.value())
        if got["id"] == event["id"]:
            where = f"partition {msg.partition()} offset {msg.offset()}"
            print(f"consumed  {got['type']} {got['id']} from {topic} {where}")
            break
    else:
        raise SystemExit("the event did not come back within 30 s")
finally:
    consumer.close()
PY
}

main() {
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  start_broker
  kafka_round_trip
  step "done"
}

main "$@"
