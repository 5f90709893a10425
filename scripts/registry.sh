#!/usr/bin/env bash
# A Confluent-compatible schema registry (Apicurio Registry, in-memory) from Maven Central jars.
#
#   scripts/registry.sh start    fetch the app (first run), start it, wait until it serves
#   scripts/registry.sh stop     stop it (SIGTERM), wait for the process to end
#   scripts/registry.sh status   exit 0 if it answers on /apis/ccompat/v7
#
# The Confluent API is at http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7 (codec.schema_registry_url).
# Environment: REGISTRY_PORT (default 8081), APICURIO_VERSION (default 3.0.9: the newest whose
# classes run on Java 17), REGISTRY_START_TIMEOUT (default 120 s), MVN (default mvn).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=${APICURIO_VERSION:-3.0.9}
PORT=${REGISTRY_PORT:-8081}
START_TIMEOUT=${REGISTRY_START_TIMEOUT:-120}
MVN=${MVN:-mvn}
APP="$ROOT/.cache/apicurio/$VERSION"
DATA="$ROOT/var/registry-$PORT"
PID_FILE="$DATA/registry.pid"
URL="http://127.0.0.1:$PORT/apis/ccompat/v7"

say() { echo "registry.sh: $*"; }
die() { echo "registry.sh: $*" >&2; exit 1; }

answers() { curl -fsS -m 3 "$URL/subjects" >/dev/null 2>&1; }

ensure_app() {
  [ -f "$APP/.complete" ] && return 0
  mkdir -p "$APP"
  say "fetching io.apicurio:apicurio-registry-app:$VERSION (first run)"
  "$MVN" -q -B dependency:copy -Dartifact="io.apicurio:apicurio-registry-app:$VERSION:tar.gz:all" \
    -DoutputDirectory="$APP" >"$APP/mvn.log" 2>&1 || die "maven failed, see $APP/mvn.log"
  tar xzf "$APP/apicurio-registry-app-$VERSION-all.tar.gz" -C "$APP"
  rm -f "$APP/apicurio-registry-app-$VERSION-all.tar.gz"
  touch "$APP/.complete"
}

runner_jar() {
  local jar
  jar=$(ls "$APP"/*-runner.jar "$APP"/quarkus-run.jar 2>/dev/null | head -1 || true)
  [ -n "$jar" ] || die "no runner jar in $APP"
  echo "$jar"
}

running_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid=$(cat "$PID_FILE")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
  if answers; then say "already serving on $URL"; return 0; fi
  ensure_app
  mkdir -p "$DATA"
  local jar
  jar=$(runner_jar)
  cd "$DATA"
  nohup java -Xms64m -Xmx384m -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$PORT" \
    -jar "$jar" >"$DATA/console.log" 2>&1 &
  echo $! >"$PID_FILE"  # the java process itself, so stop signals the JVM
  local waited=0
  until answers; do
    running_pid >/dev/null || die "exited during start-up, see $DATA/console.log"
    [ "$waited" -ge "$START_TIMEOUT" ] && { stop; die "not serving after ${START_TIMEOUT}s"; }
    sleep 1; waited=$((waited + 1))
  done
  say "serving on $URL (pid $(cat "$PID_FILE"))"
}

stop() {
  local pid
  pid=$(running_pid) || { say "not running"; rm -f "$PID_FILE"; return 0; }
  kill "$pid"
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$PID_FILE"
  say "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) answers && say "serving on $URL" || { say "not serving"; exit 1; } ;;
  *) die "usage: $0 start|stop|status" ;;
esac
