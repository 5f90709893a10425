#!/usr/bin/env bash
# `make chaos`: the chaos suite (python -m chaos) against the local broker on KAFKA_PORT.
# PROFILE=short|long (default long), SEED=N (default 1), INSTANCES=N (default: the profile's).
# Starts the broker only if it is not running, and stops what it started, also on failure.
# The run restarts the broker itself (a scheduled fault), so it must be scripts/kafka.sh's broker.
set -euo pipefail
cd "$(dirname "$0")/.."
export KAFKA_PORT=${KAFKA_PORT:-9092}
PROFILE=${PROFILE:-long}
SEED=${SEED:-1}

started_kafka=0
cleanup() {
  if [ "$started_kafka" = 1 ]; then scripts/kafka.sh stop || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! scripts/kafka.sh status >/dev/null 2>&1; then
  started_kafka=1
  scripts/kafka.sh start
fi
args=(--profile "$PROFILE" --seed "$SEED" --kafka-port "$KAFKA_PORT" --protocol "${PROTOCOL:-consumer}")
if [ -n "${INSTANCES:-}" ]; then args+=(--instances "$INSTANCES"); fi
.venv/bin/python -m chaos "${args[@]}"
