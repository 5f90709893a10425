#!/usr/bin/env bash
# Container images for meisa-bridge, also on a machine that reaches no image registry.
#
#   scripts/images.sh engine         a Docker engine that answers: installs Debian's docker.io when
#                                    dockerd is missing (as root, via apt-get), starts dockerd when
#                                    it is not running (left running, like a system service)
#   scripts/images.sh build          engine + base images + the bridge image (+ the local Kafka
#                                    image when apache/kafka cannot be had); what `make image` runs
#   scripts/images.sh kafka          the local Kafka image (meisa-bridge-kafka:VERSION) even where
#                                    apache/kafka can be pulled
#   scripts/images.sh env            the variables docker compose needs, as KEY=VALUE lines
#   scripts/images.sh compose ARGS   docker compose (the plugin, else docker-compose) with them
#
# Base images: the stock ones (python:3.11-slim, apache/kafka, eclipse-temurin JRE) when they are
# present or can be pulled. Where no registry answers, stand-ins are made once from Debian's
# packages with debootstrap (minbase bookworm) and imported; they are rebuilt only when their recipe
# changes. PYTHON_IMAGE, KAFKA_IMAGE and JRE_IMAGE, when set, are used as given.
#
# Environment:
#   PYTHON_IMAGE   base of the bridge image (default python:3.11-slim, else the local stand-in)
#   KAFKA_IMAGE    broker image for docker compose (default apache/kafka:KAFKA_VERSION, else local)
#   JRE_IMAGE      base of the local Kafka image (default eclipse-temurin:17-jre, else local)
#   BRIDGE_IMAGE   the bridge image to build (default meisa-bridge:local, as docker-compose.yml)
#   DEBIAN_MIRROR  debootstrap's mirror (default: the first deb.debian.org-style URI apt uses)
#   PULL_TIMEOUT   seconds one `docker pull` may take before the registry counts as unreachable
#   DOCKERD_LOG    dockerd's log when this script starts it (default /var/log/dockerd.log)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
BRIDGE_IMAGE=${BRIDGE_IMAGE:-meisa-bridge:local}
PULL_TIMEOUT=${PULL_TIMEOUT:-60}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
CACHE="$ROOT/.cache/images"
SUITE=bookworm

say() { echo "images.sh: $*" >&2; }
die() {
  echo "images.sh: $*" >&2
  exit 1
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "'$*' needs root (or sudo)"
  fi
}

apt_install() {
  say "installing Debian packages: $*"
  # Waits for another apt-get (another checkout's run) instead of failing on its lock.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "$@" >/dev/null
}

# --- engine -----------------------------------------------------------------------------------

engine_answers() { docker info >/dev/null 2>&1; }

# After dockerd and its containerd were killed (a machine's processes ended without a shutdown),
# their pid files remain; if such a pid is reused, or the process is not yet reaped, dockerd waits
# for a containerd that never answers. A pid file counts only for a live process of that name.
clear_stale_pid_files() {
  local file name pid
  for file in /var/run/docker.pid:dockerd /var/run/docker/containerd/containerd.pid:containerd; do
    name=${file##*:}
    file=${file%:*}
    as_root test -f "$file" || continue
    pid=$(as_root cat "$file" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] &&
      [ "$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null)" != Z ]; then
      continue
    fi
    as_root rm -f "$file"
  done
}

# In its own session, so a Ctrl-C or a cancelled CI step aimed at the caller never reaches it.
start_dockerd() {
  local cmd=(setsid nohup dockerd)
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "starting dockerd needs root (or sudo)"
    cmd=(sudo "${cmd[@]}")
    DOCKERD_LOG=${DOCKERD_LOG/#\/var\/log\/dockerd.log/$CACHE/dockerd.log}
  fi
  mkdir -p "$(dirname "$DOCKERD_LOG")"
  say "starting dockerd (log: $DOCKERD_LOG)"
  "${cmd[@]}" </dev/null >>"$DOCKERD_LOG" 2>&1 8>&- &
}

cmd_engine() {
  if engine_answers; then return 0; fi
  # One installer and starter at a time on this machine (several checkouts may get here at once).
  exec 8>"${TMPDIR:-/tmp}/meisa-bridge-docker-engine.lock"
  flock -w 600 8 || die "another scripts/images.sh holds the engine lock"
  if engine_answers; then return 0; fi
  if ! command -v dockerd >/dev/null; then
    apt_install docker.io
  fi
  command -v docker >/dev/null || die "no docker CLI after installing docker.io"
  if engine_answers; then return 0; fi # the package's init script may have started it
  if ! pgrep -x dockerd >/dev/null; then
    clear_stale_pid_files
    start_dockerd
  fi
  local deadline=$((SECONDS + 60))
  until engine_answers; do
    if [ $SECONDS -ge $deadline ]; then
      tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
      docker info 2>&1 | tail -n 3 >&2 || true
      die "the Docker engine did not answer within 60s (not root and not in the docker group?)"
    fi
    sleep 0.5
  done
  say "engine ready: $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}')"
}

# --- base images ------------------------------------------------------------------------------

PYTHON_STOCK=python:3.11-slim
JRE_STOCK=eclipse-temurin:17-jre
KAFKA_STOCK=apache/kafka:$KAFKA_VERSION
PYTHON_LOCAL=meisa-bridge-base/python:3.11-$SUITE
JRE_LOCAL=meisa-bridge-base/jre:17-$SUITE
KAFKA_LOCAL=meisa-bridge-kafka:$KAFKA_VERSION
RECIPE_LABEL=dev.meisa-bridge.recipe
# Marks, for the rest of this run (subshells included), that a pull has failed.
REGISTRY_DOWN="${TMPDIR:-/tmp}/images.sh-registry-down.$$"
trap 'rm -f "$REGISTRY_DOWN"' EXIT

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

recipe_of() { docker image inspect -f "{{index .Config.Labels \"$RECIPE_LABEL\"}}" "$1" 2>/dev/null || true; }

# Present, or pulled now. One failed pull marks the registry unreachable for the rest of the run.
obtainable() {
  have_image "$1" && return 0
  [ -e "$REGISTRY_DOWN" ] && return 1
  say "pulling $1"
  if timeout "$PULL_TIMEOUT" docker pull -q "$1" >/dev/null 2>&1; then return 0; fi
  say "$1 cannot be pulled (no registry reachable?); using local stand-ins"
  : >"$REGISTRY_DOWN"
  return 1
}

debian_mirror() {
  local uri
  uri=$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources \
    /etc/apt/sources.list 2>/dev/null | head -n 1 | tr -d ' ' || true)
  echo "${DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

# debootstrap --variant=minbase SUITE with PACKAGES, imported as TAG. The machine's CA bundle goes
# in so that TLS to the package registries (pip in the build) verifies as it does on the machine.
# Skipped when TAG exists with the same recipe.
local_base() {
  local tag=$1 packages=$2 recipe rootfs log
  recipe=$(printf '%s\n' "v1 $SUITE minbase $packages" | sha256sum | cut -c1-16)
  if [ "$(recipe_of "$tag")" = "$recipe" ]; then return 0; fi
  command -v debootstrap >/dev/null || apt_install debootstrap debian-archive-keyring
  rootfs="$CACHE/rootfs-${tag//[\/:]/-}"
  log="$CACHE/debootstrap-${tag//[\/:]/-}.log"
  mkdir -p "$CACHE"
  as_root rm -rf "$rootfs"
  say "building $tag with debootstrap ($SUITE, $packages; log $log)"
  if ! as_root debootstrap --variant=minbase --include="$packages" "$SUITE" "$rootfs" \
    "$(debian_mirror)" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "debootstrap failed for $tag"
  fi
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    as_root cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  fi
  [ -e "$rootfs/usr/bin/python3" ] && as_root ln -sf python3 "$rootfs/usr/bin/python"
  as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/*.log "$rootfs"/tmp/*
  as_root tar -C "$rootfs" -c . | docker import \
    --change "LABEL $RECIPE_LABEL=$recipe" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    --change 'CMD ["bash"]' - "$tag" >/dev/null
  as_root rm -rf "$rootfs"
  say "imported $tag ($(image_size "$tag"))"
}

image_size() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }

python_base() {
  if [ -n "${PYTHON_IMAGE:-}" ]; then echo "$PYTHON_IMAGE"; elif obtainable "$PYTHON_STOCK"; then
    echo "$PYTHON_STOCK"
  else
    local_base "$PYTHON_LOCAL" python3,python3-venv,python3-pip,ca-certificates
    echo "$PYTHON_LOCAL"
  fi
}

jre_base() {
  if [ -n "${JRE_IMAGE:-}" ]; then echo "$JRE_IMAGE"; elif obtainable "$JRE_STOCK"; then
    echo "$JRE_STOCK"
  else
    local_base "$JRE_LOCAL" openjdk-17-jre-headless,ca-certificates
    echo "$JRE_LOCAL"
  fi
}

# --- images -----------------------------------------------------------------------------------

project_version() { sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml" | head -n 1; }

# docker build with the output in a log, shown only when it fails.
build() {
  local log="$CACHE/build-${1//[\/:]/-}.log" tag=$1
  shift
  mkdir -p "$CACHE"
  if ! docker build --network host -t "$tag" "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "building $tag failed (log $log)"
  fi
}

# The Kafka image from scripts/kafka.sh's jars, rebuilt only when its inputs change.
build_kafka() {
  local lib jre recipe context
  lib=$("$ROOT/scripts/kafka.sh" libdir)
  jre=$(jre_base)
  # The jar folder's name (Kafka version and POM hash), not its path: checkouts share the image.
  recipe=$({
    echo "$(basename "$(dirname "$lib")") $jre $(docker image inspect -f '{{.Id}}' "$jre")"
    find "$ROOT/scripts/kafka/image" -type f | sort | xargs cat
  } | sha256sum | cut -c1-16)
  if [ "$(recipe_of "$KAFKA_LOCAL")" = "$recipe" ]; then return 0; fi
  context="$CACHE/kafka-context"
  rm -rf "$context"
  mkdir -p "$context"
  cp -r "$ROOT/scripts/kafka/image/." "$context/"
  cp -r "$lib" "$context/libs"
  rm -f "$context/libs/.complete"
  say "building $KAFKA_LOCAL from the test broker's jars on $jre"
  build "$KAFKA_LOCAL" --build-arg JRE_IMAGE="$jre" --build-arg KAFKA_VERSION="$KAFKA_VERSION" \
    --label "$RECIPE_LABEL=$recipe" "$context"
  rm -rf "$context"
}

kafka_image() {
  if [ -n "${KAFKA_IMAGE:-}" ] && [ "$KAFKA_IMAGE" != "$KAFKA_LOCAL" ]; then
    echo "$KAFKA_IMAGE"
  elif [ -z "${KAFKA_IMAGE:-}" ] && obtainable "$KAFKA_STOCK"; then
    echo "$KAFKA_STOCK"
  else
    build_kafka
    echo "$KAFKA_LOCAL"
  fi
}

cmd_build() {
  local python kafka start=$SECONDS
  cmd_engine
  python=$(python_base)
  say "building $BRIDGE_IMAGE on $python"
  build "$BRIDGE_IMAGE" --build-arg PYTHON_IMAGE="$python" --build-arg VERSION="$(project_version)" "$ROOT"
  # The classic builder keeps each build's builder stage (its cache), and a rebuild leaves the
  # previous image untagged: drop those of this project older than a day.
  local label
  for label in dev.meisa-bridge.stage=builder dev.meisa-bridge.recipe org.opencontainers.image.title=meisa-bridge; do
    docker image prune -f --filter "label=$label" --filter until=24h >/dev/null
  done
  kafka=$(kafka_image)
  compose_command >/dev/null # installed now rather than on the first `compose` call
  say "ready in $((SECONDS - start))s: $BRIDGE_IMAGE ($(image_size "$BRIDGE_IMAGE")), Kafka $kafka ($(image_size "$kafka"))"
}

# What docker compose needs, without pulling or building: the stock images when present, else the
# local stand-ins when present, else the stock names (the defaults docker-compose.yml has).
cmd_env() {
  local python=${PYTHON_IMAGE:-} kafka=${KAFKA_IMAGE:-}
  if [ -z "$python" ]; then
    python=$PYTHON_STOCK
    if ! have_image "$PYTHON_STOCK" && have_image "$PYTHON_LOCAL"; then python=$PYTHON_LOCAL; fi
  fi
  if [ -z "$kafka" ]; then
    kafka=$KAFKA_STOCK
    if ! have_image "$KAFKA_STOCK" && have_image "$KAFKA_LOCAL"; then kafka=$KAFKA_LOCAL; fi
  fi
  echo "BRIDGE_IMAGE=$BRIDGE_IMAGE"
  echo "PYTHON_IMAGE=$python"
  echo "KAFKA_IMAGE=$kafka"
}

compose_command() {
  if docker compose version >/dev/null 2>&1; then echo "docker compose"; return 0; fi
  command -v docker-compose >/dev/null || apt_install docker-compose
  echo docker-compose
}

cmd_compose() {
  local line compose
  cmd_engine
  while IFS= read -r line; do export "${line?}"; done < <(cmd_env)
  compose=$(compose_command)
  cd "$ROOT"
  # shellcheck disable=SC2086 # "docker compose" is two words
  exec $compose "$@"
}

case "${1:-}" in
  engine) cmd_engine ;;
  build) cmd_build ;;
  kafka) cmd_engine && KAFKA_IMAGE=$KAFKA_LOCAL kafka_image >/dev/null ;;
  env) cmd_env ;;
  compose)
    shift
    cmd_compose "$@"
    ;;
  *)
    echo "usage: $0 engine|build|kafka|env|compose ARGS..." >&2
    exit 2
    ;;
esac
