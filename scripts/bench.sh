#!/usr/bin/env bash
# `make bench`: run every bench/*.py with the project's Python; each prints its own numbers.
# Files starting with _ (shared helpers) are not benchmarks and are skipped. With arguments,
# runs only those files (`make bench-side` runs bench/side_by_side.py).
# Starts the local broker if it is not running, and stops it at the end only if it started it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export KAFKA_PORT=${KAFKA_PORT:-9092}
export KAFKA_BOOTSTRAP=${KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}

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

shopt -s nullglob
if [ $# -gt 0 ]; then benches=("$@"); else benches=(bench/[!_]*.py); fi
[ ${#benches[@]} -gt 0 ] || { echo "no benchmarks in bench/"; exit 0; }
failed=0
for bench in "${benches[@]}"; do
  printf '\n== %s\n' "$bench"
  "$PY" "$bench" || { echo "FAILED: $bench"; failed=1; }
done
exit $failed
