#!/usr/bin/env bash
# `make test`: lint, types, then every test against a real local broker.
# Starts the broker only if it is not already running, and stops what it started, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

started_kafka=0
cleanup() {
  if [ "$started_kafka" = 1 ]; then scripts/kafka.sh stop || true; fi
}
trap cleanup EXIT

echo "== ruff"
$BIN/ruff check bridge tests bench scripts
$BIN/ruff format --check bridge tests bench scripts
echo "== mypy --strict bridge"
$BIN/mypy bridge

if ! scripts/kafka.sh status >/dev/null 2>&1; then
  scripts/kafka.sh start
  started_kafka=1
fi

echo "== pytest"
$BIN/pytest "$@"
