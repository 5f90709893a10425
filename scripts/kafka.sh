#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft) broker on 127.0.0.1 from Maven Central jars: no tarball, no Docker.
#
#   scripts/kafka.sh start    resolve jars (first run), format storage, start, wait until it serves
#   scripts/kafka.sh stop     controlled shutdown (SIGTERM), wait until the ports are free
#   scripts/kafka.sh status   exit 0 if the broker is running and answers clients
#   scripts/kafka.sh reset    stop if running, wipe data and logs
#   scripts/kafka.sh libdir   resolve the jars (first run) and print their folder (the Kafka image)
#
# Environment:
#   KAFKA_PORT             client port (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default KAFKA_PORT + 1)
#   KAFKA_DATA_DIR         data, logs, pid file (default var/kafka, or var/kafka-PORT off 9092)
#   KAFKA_VERSION          org.apache.kafka:kafka_2.13 version (default 4.1.1)
#   KAFKA_HEAP_OPTS        JVM heap (default -Xms128m -Xmx512m)
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to serve (default 120)
#   KAFKA_STOP_TIMEOUT     seconds to wait for a clean shutdown before SIGKILL (default 60)
#   MVN                    Maven command (default mvn); Maven's local repository is its default
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE="$ROOT/scripts/kafka"

KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
if [ "$KAFKA_PORT" = 9092 ]; then default_data="$ROOT/var/kafka"; else default_data="$ROOT/var/kafka-$KAFKA_PORT"; fi
DATA=$(realpath -m "${KAFKA_DATA_DIR:-$default_data}")
HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}
START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-60}
MVN=${MVN:-mvn}
HOST=127.0.0.1

PID_FILE="$DATA/kafka.pid"
LOG_DIR="$DATA/logs"
SERVER_LOG="$LOG_DIR/server.log"
CONSOLE_LOG="$LOG_DIR/console.log" # JVM output that never reaches log4j (bad options, crashes)
PROPS="$DATA/server.properties"
CLUSTER_ID_FILE="$DATA/cluster-id"

say() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: $*" >&2; exit 1; }

java_bin() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then echo "$JAVA_HOME/bin/java"; else echo java; fi
}

# --- jars -------------------------------------------------------------------------------------

# The cache key includes the POM's hash so a changed binding or version never reuses stale jars.
lib_dir() {
  local pom_hash
  pom_hash=$(sha256sum "$HERE/pom.xml" | cut -c1-12)
  echo "$ROOT/.cache/kafka/$KAFKA_VERSION-$pom_hash/lib"
}

ensure_jars() {
  local lib tmp
  lib=$(lib_dir)
  [ -f "$lib/.complete" ] && return 0
  command -v "$MVN" >/dev/null || die "Maven ($MVN) is not installed; it resolves Kafka from Maven Central"
  say "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven Central (first run only)"
  tmp="$lib.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  if ! "$MVN" -B -q -Dstyle.color=never -f "$HERE/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -Dkafka.version="$KAFKA_VERSION" -DincludeScope=runtime -DoutputDirectory="$tmp"; then
    rm -rf "$tmp"
    rmdir "$(dirname "$lib")" 2>/dev/null || true
    die "Maven could not resolve Kafka $KAFKA_VERSION"
  fi
  touch "$tmp/.complete"
  rm -rf "$lib" # an interrupted earlier attempt
  mv -T "$tmp" "$lib" 2>/dev/null || rm -rf "$tmp" # a concurrent first start got there first
}

require_tools() {
  local java version
  java=$(java_bin)
  command -v "$java" >/dev/null || die "Java 17 or newer is required (java not found; set JAVA_HOME)"
  version=$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  [ "${version%%.*}" -ge 17 ] 2>/dev/null || die "Kafka 4 needs Java 17 or newer; $java is ${version:-unknown}"
  command -v python3 >/dev/null || die "python3 is required (it checks that the broker answers)"
}

run_java() {
  local lib
  lib=$(lib_dir)
  "$(java_bin)" -cp "$lib/*" "$@"
}

# --- process state ----------------------------------------------------------------------------

# The pid file counts only if that pid is a Kafka JVM started with this data directory's config:
# after a reboot or a crash the pid may belong to something else entirely.
broker_pid() {
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $PROPS" || return 1
  echo "$pid"
}

serves_clients() { python3 "$HERE/probe.py" "$HOST" "$KAFKA_PORT" 3; }

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

clear_stale_pid() {
  if [ -f "$PID_FILE" ] && ! broker_pid >/dev/null; then
    say "removing stale pid file $PID_FILE"
    rm -f "$PID_FILE"
  fi
}

show_log_tail() {
  local f
  for f in "$CONSOLE_LOG" "$SERVER_LOG"; do
    if [ -s "$f" ]; then
      echo "----- last lines of $f -----" >&2
      tail -n 40 "$f" >&2
    fi
  done
}

# Serialises start/stop/reset of one data directory. The broker must not inherit fd 9.
lock() {
  mkdir -p "$DATA"
  exec 9>"$DATA/.lock"
  flock -w 600 9 || die "another kafka.sh holds $DATA/.lock"
}

# --- config -----------------------------------------------------------------------------------

write_config() {
  mkdir -p "$DATA/data" "$LOG_DIR"
  sed -e "s|@PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
    -e "s|@LOG_DIRS@|$DATA/data|g" "$HERE/server.properties.in" >"$PROPS"
}

# The cluster id is generated once per data directory and kept, so restarts reuse the storage.
format_storage() {
  if [ ! -s "$CLUSTER_ID_FILE" ]; then
    run_java kafka.tools.StorageTool random-uuid >"$CLUSTER_ID_FILE.tmp"
    mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
  fi
  # No log4j2 config here: log4j's default (errors to the console) keeps the config dump out.
  if ! run_java kafka.tools.StorageTool format -t "$(cat "$CLUSTER_ID_FILE")" -c "$PROPS" --ignore-formatted \
    >>"$CONSOLE_LOG" 2>&1; then
    show_log_tail
    die "formatting KRaft storage in $DATA/data failed"
  fi
}

# --- verbs ------------------------------------------------------------------------------------

launch() {
  local lib
  lib=$(lib_dir)
  # JVM options as in Kafka's own bin/kafka-run-class.sh, with a small heap.
  # setsid: its own session, so signals meant for the caller's process group (Ctrl-C in a test
  # run, a CI step being cancelled) never reach a broker others may be using; the script is not
  # a process-group leader here, so setsid execs in place and $! stays the JVM's pid.
  # shellcheck disable=SC2086 # HEAP_OPTS is a list of options
  setsid nohup "$(java_bin)" $HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOG_DIR" -Dlog4j2.configurationFile="$HERE/log4j2.xml" \
    -cp "$lib/*" kafka.Kafka "$PROPS" </dev/null >>"$CONSOLE_LOG" 2>&1 9>&- &
  echo $! >"$PID_FILE"
}

wait_until_serving() {
  local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
  while ! serves_clients; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      show_log_tail
      die "the broker exited during startup (logs in $LOG_DIR)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      show_log_tail
      stop_pid "$pid"
      die "the broker did not serve clients within ${START_TIMEOUT}s (logs in $LOG_DIR)"
    fi
    sleep 0.5
  done
}

cmd_start() {
  local pid
  lock
  if pid=$(broker_pid); then
    say "already running (pid $pid) on $HOST:$KAFKA_PORT; nothing to do"
    return 0
  fi
  clear_stale_pid
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is in use by another process (set KAFKA_PORT)"
  port_open "$KAFKA_CONTROLLER_PORT" &&
    die "controller port $KAFKA_CONTROLLER_PORT is in use by another process (set KAFKA_CONTROLLER_PORT)"
  require_tools
  ensure_jars
  write_config
  # Each start gets fresh logs so a failed start shows its own tail; the last run's log is kept.
  : >"$CONSOLE_LOG"
  if [ -f "$SERVER_LOG" ]; then mv "$SERVER_LOG" "$LOG_DIR/previous-server.log"; fi
  format_storage
  launch
  pid=$(cat "$PID_FILE")
  say "starting Kafka $KAFKA_VERSION (pid $pid) on $HOST:$KAFKA_PORT, data in $DATA"
  wait_until_serving "$pid"
  say "ready on $HOST:$KAFKA_PORT (pid $pid); logs in $SERVER_LOG"
}

stop_pid() {
  local pid=$1 deadline=$((SECONDS + STOP_TIMEOUT))
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      say "no clean shutdown within ${STOP_TIMEOUT}s; killing pid $pid"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
  deadline=$((SECONDS + 30))
  while port_open "$KAFKA_PORT" || port_open "$KAFKA_CONTROLLER_PORT"; do
    [ $SECONDS -ge $deadline ] && die "ports $KAFKA_PORT/$KAFKA_CONTROLLER_PORT still in use after stop"
    sleep 0.2
  done
}

cmd_stop() {
  local pid
  lock
  if ! pid=$(broker_pid); then
    clear_stale_pid
    say "not running"
    return 0
  fi
  say "stopping (pid $pid)"
  stop_pid "$pid"
  say "stopped; port $KAFKA_PORT is free"
}

cmd_status() {
  local pid
  if ! pid=$(broker_pid); then
    say "not running (data in $DATA)"
    return 1
  fi
  if serves_clients; then
    say "running (pid $pid) on $HOST:$KAFKA_PORT, data in $DATA"
    return 0
  fi
  say "process $pid is up but does not answer on $HOST:$KAFKA_PORT (starting or unhealthy)"
  return 1
}

cmd_reset() {
  local pid
  lock
  if pid=$(broker_pid); then
    say "stopping (pid $pid)"
    stop_pid "$pid"
  fi
  rm -rf "$DATA/data" "$DATA/logs" "$CLUSTER_ID_FILE" "$PROPS" "$PID_FILE"
  say "wiped $DATA"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  libdir) ensure_jars >&2 && lib_dir ;;
  *)
    echo "usage: $0 start|stop|status|reset|libdir" >&2
    exit 2
    ;;
esac
