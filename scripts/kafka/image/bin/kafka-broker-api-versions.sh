#!/usr/bin/env bash
# Health check: exit 0 when the broker at --bootstrap-server answers an admin request.
# Named like apache/kafka's tool so docker-compose.yml's health check runs with either image; the
# jars here (those the tests use) have no kafka-tools, so kafka_2.13's ConfigCommand asks instead.
set -euo pipefail
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
server=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bootstrap-server) server=$2; shift 2 ;;
    --bootstrap-server=*) server=${1#*=}; shift ;;
    *) shift ;;
  esac
done
[ -n "$server" ] || { echo "usage: $0 --bootstrap-server HOST:PORT" >&2; exit 2; }
exec java -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$KAFKA_HOME/etc/log4j2.xml" \
  -cp "$KAFKA_HOME/libs/*" kafka.admin.ConfigCommand --bootstrap-server "$server" \
  --command-config "$KAFKA_HOME/etc/client.properties" --describe --entity-type brokers --entity-default
