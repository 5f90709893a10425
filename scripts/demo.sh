#!/usr/bin/env bash
# `make demo`: the whole story on this machine.
#   1. the Kafka broker (scripts/kafka.sh) and the Meisa sandbox, unless already running
#   2. fresh demo topics, examples/events.jsonl produced keyed by user id
#   3. the bridge with examples/bridge.yaml until every event's offset is committed
#   4. what Meisa received: contacts, tracked events, emails sent and skipped, DLQ entries
# Everything it started is stopped at the end (also on failure or Ctrl-C); nothing else is.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
BRIDGE=.venv/bin/meisa-bridge
export KAFKA_PORT=${KAFKA_PORT:-9092}
export KAFKA_BOOTSTRAP=${KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}
SANDBOX_PORT=${SANDBOX_PORT:-8080}
export SANDBOX_URL="http://127.0.0.1:$SANDBOX_PORT"
export MEISA_BASE_URL="$SANDBOX_URL/api/v1"
export MEISA_API_KEY=${MEISA_API_KEY:-meisa_test_sandbox_0000000000000000000000}
export DEMO_TOPIC=app.events DLQ_TOPIC=meisa-bridge.dlq
export KAFKA_GROUP_ID="meisa-bridge-demo-$$"
export BRIDGE_HTTP_HOST=127.0.0.1 BRIDGE_HTTP_PORT=${BRIDGE_HTTP_PORT:-9400} LOG_LEVEL=${LOG_LEVEL:-INFO}
LOGS=var/demo
mkdir -p "$LOGS"

started_kafka=0
sandbox_pid=""
bridge_pid=""

cleanup() {
  if [ -n "$bridge_pid" ] && kill -0 "$bridge_pid" 2>/dev/null; then
    kill -TERM "$bridge_pid" 2>/dev/null || true
    wait "$bridge_pid" 2>/dev/null || true
  fi
  if [ -n "$sandbox_pid" ] && kill -0 "$sandbox_pid" 2>/dev/null; then
    kill -TERM "$sandbox_pid" 2>/dev/null || true
    wait "$sandbox_pid" 2>/dev/null || true
  fi
  if [ "$started_kafka" = 1 ]; then scripts/kafka.sh stop || true; fi
}

step() { printf '\n== %s\n' "$*"; }

start_broker() {
  step "Kafka broker on $KAFKA_BOOTSTRAP"
  if scripts/kafka.sh status; then return 0; fi
  started_kafka=1
  scripts/kafka.sh start
}

sandbox_up() { curl -fsS "$SANDBOX_URL/_sandbox/config" >/dev/null 2>&1; }

start_sandbox() {
  step "Meisa sandbox on $SANDBOX_URL"
  if sandbox_up; then
    echo "already running; resetting its state"
    curl -fsS -X POST -H 'Content-Type: application/json' -d '{}' "$SANDBOX_URL/_sandbox/reset" >/dev/null
    return 0
  fi
  "$BRIDGE" sandbox --port "$SANDBOX_PORT" >"$LOGS/sandbox.log" 2>&1 &
  sandbox_pid=$!
  for _ in $(seq 1 100); do
    if sandbox_up; then echo "started (pid $sandbox_pid, log $LOGS/sandbox.log)"; return 0; fi
    if ! kill -0 "$sandbox_pid" 2>/dev/null; then cat "$LOGS/sandbox.log"; exit 1; fi
    sleep 0.1
  done
  echo "the sandbox did not start"; exit 1
}

fresh_topics() {
  step "Fresh topics $DEMO_TOPIC and $DLQ_TOPIC"
  # Each run is a new consumer group, so the bridge creates a new sent-email ledger
  # (<group.id>.sent-emails); earlier runs' ledgers are deleted here with the demo topics.
  "$PY" - <<'PY'
import os, re, time
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP"]})
names = [os.environ["DEMO_TOPIC"], os.environ["DLQ_TOPIC"]]
topics = admin.list_topics(timeout=10).topics
ledgers = [t for t in topics if re.fullmatch(r"meisa-bridge-demo-[0-9]+\.sent-emails", t)]
existing = [n for n in names if n in topics] + ledgers
for f in admin.delete_topics(existing, operation_timeout=30).values() if existing else []:
    f.result()
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        for f in admin.create_topics(
            [NewTopic(n, num_partitions=3 if n == names[0] else 1, replication_factor=1)
             for n in names if n not in admin.list_topics(timeout=10).topics]
        ).values():
            f.result()
        break
    except Exception:  # deletion still in progress
        time.sleep(0.5)
print("created", ", ".join(names))
PY
}

produce_events() {
  step "Producing examples/events.jsonl (keyed by user id; event times moved up to now)"
  # The file's events span two hours of a past day. To show max_age at work, each event's `time`
  # is moved so the newest is "now" and the gaps shrink 60x (3 minutes become 3 seconds): the OTPs
  # are fresh, except one OTP that is a day older than the rest and is skipped as stale. Lines that are not JSON
  # go out byte for byte, so the deliberately broken line reaches the DLQ as it is.
  "$PY" - <<'PY'
import json, os, re
from datetime import datetime, timezone
from confluent_kafka import Producer

def parse(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))

lines = [l.rstrip(b"\n") for l in open("examples/events.jsonl", "rb") if l.strip()]
events = {}
for i, line in enumerate(lines):
    try:
        events[i] = json.loads(line)
    except ValueError:
        pass
times = [parse(e["time"]) for e in events.values() if isinstance(e, dict) and "time" in e]
newest, now = max(times), datetime.now(timezone.utc)
for i, event in events.items():
    if isinstance(event, dict) and "time" in event:
        moved = now - (newest - parse(event["time"])) / 60
        event["time"] = moved.isoformat(timespec="seconds").replace("+00:00", "Z")
        lines[i] = json.dumps(event, separators=(",", ":")).encode()
producer = Producer({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP"], "acks": "all",
                     "enable.idempotence": True})
count = 0
for line in lines:
    try:
        key = json.loads(line)["data"]["user_id"]
    except (ValueError, KeyError, TypeError):
        found = re.search(rb'"user_id"\s*:\s*"([^"]+)"', line)
        key = found.group(1).decode() if found else None
    producer.produce(os.environ["DEMO_TOPIC"], key=key.encode() if key else None, value=line)
    count += 1
assert producer.flush(60) == 0, "not every event was delivered"
print(f"produced {count} events to {os.environ['DEMO_TOPIC']}")
PY
}

run_bridge() {
  step "meisa-bridge run --config examples/bridge.yaml (log: $LOGS/bridge.log)"
  "$BRIDGE" run --config examples/bridge.yaml >"$LOGS/bridge.log" 2>&1 &
  bridge_pid=$!
  "$PY" - <<'PY' || { tail -n 30 "$LOGS/bridge.log"; exit 1; }
import os, time
from confluent_kafka import Consumer, TopicPartition
bootstrap, topic, group = (os.environ[k] for k in ("KAFKA_BOOTSTRAP", "DEMO_TOPIC", "KAFKA_GROUP_ID"))
probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
parts = [TopicPartition(topic, p) for p in probe.list_topics(topic, timeout=10).topics[topic].partitions]
ends = {tp.partition: probe.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
deadline = time.monotonic() + 180
while time.monotonic() < deadline:
    done = {tp.partition: tp.offset for tp in probe.committed(parts, timeout=10)}
    if done == ends:
        print(f"all {sum(ends.values())} events processed and committed")
        break
    time.sleep(0.5)
else:
    raise SystemExit(f"timed out: committed {done}, end offsets {ends}")
probe.close()
PY
  kill -TERM "$bridge_pid"
  if wait "$bridge_pid"; then echo "bridge stopped cleanly"; else echo "bridge exit code $?"; fi
  bridge_pid=""
}

report() {
  step "What Meisa received"
  "$PY" scripts/demo_report.py
}

main() {
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  start_broker
  start_sandbox
  fresh_topics
  produce_events
  run_bridge
  report
  step "done"
}

main "$@"
