#!/usr/bin/env bash
# Run a pinned helm, building it from the Go module proxy on first use (no helm download needed).
# The binary is cached in .cache/bin/helm-<version>/ (git-ignored); later calls exec it directly.
# Usage: scripts/helm.sh <helm args...>      e.g. scripts/helm.sh lint helm/meisa-bridge
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v3.19.0}"
# The Kubernetes minor helm v3.19 is built against (its k8s.io modules are v0.34); helm's own
# Makefile stamps it in, without it `helm template` assumes Kubernetes 1.20.
K8S_MINOR="${HELM_K8S_MINOR:-34}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bindir="$root/.cache/bin/helm-$HELM_VERSION"
helm="$bindir/helm"

if [ ! -x "$helm" ]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "scripts/helm.sh: helm $HELM_VERSION is not built and 'go' is not on PATH;" \
      "install Go (https://go.dev/dl/) so helm can be built from the module proxy" >&2
    exit 127
  fi
  echo "scripts/helm.sh: building helm $HELM_VERSION with $(go version) (first run only)" >&2
  mkdir -p "$bindir"
  start=$(date +%s)
  # A lock keeps parallel test workers from building twice into the same folder.
  (
    flock 9
    if [ ! -x "$helm" ]; then
      ldflags="-w -s -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
      for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
        ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$K8S_MINOR"
      done
      GOBIN="$bindir" GOFLAGS="${GOFLAGS:-} -buildvcs=false" CGO_ENABLED=0 \
        go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    fi
  ) 9>"$bindir.lock"
  echo "scripts/helm.sh: helm built in $(( $(date +%s) - start ))s -> $helm" >&2
fi
exec "$helm" "$@"
