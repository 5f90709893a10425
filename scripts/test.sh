#!/usr/bin/env bash
# `make test`: lint, types, then every test against a real local broker, the short chaos profile
# last (CHAOS=0 leaves it out). Starts the broker only if it is not already running, and stops what
# it started, also on failure or Ctrl-C. KAFKA_PORT picks another port; the tests find the broker
# through KAFKA_BOOTSTRAP.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export KAFKA_PORT=${KAFKA_PORT:-9092}
export KAFKA_BOOTSTRAP=${KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}

started_kafka=0
cleanup() {
  if [ "$started_kafka" = 1 ]; then scripts/kafka.sh stop || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== ruff"
$BIN/ruff check bridge tests bench scripts chaos
$BIN/ruff format --check bridge tests bench scripts chaos
echo "== mypy --strict bridge"
$BIN/mypy bridge
echo "== rule tests shipped with the examples"
$BIN/meisa-bridge test examples/

if ! scripts/kafka.sh status >/dev/null 2>&1; then
  started_kafka=1
  scripts/kafka.sh start
fi

echo "== helm (built from the Go module proxy on first run, cached in .cache/bin)"
scripts/helm.sh version --short
echo "== k8scheck (the chart against k8s.io/api and KEDA's types; built from the Go module proxy on first run)"
scripts/k8scheck.sh -version

echo "== images (scripts/images.sh: Docker engine, base images, meisa-bridge:local, Kafka)"
scripts/images.sh build

echo "== pytest (the short chaos profile last, a few minutes; CHAOS=0 leaves it out)"
chaos=(--chaos)
if [ "${CHAOS:-1}" = 0 ]; then chaos=(); fi
$BIN/pytest "${chaos[@]}" "$@"
