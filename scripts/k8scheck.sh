#!/usr/bin/env bash
# Check Kubernetes manifests against Kubernetes' own Go types and KEDA's (scripts/k8scheck/main.go):
# strict decoding into k8s.io/api, metadata validation, Pod Security "restricted", references.
# Built from the Go module proxy on first use and cached in .cache/bin/k8scheck-<hash>/ (the hash
# of its sources, so an edit rebuilds it). Arguments go to the checker; manifests on stdin or as files.
#   scripts/helm.sh template demo helm/meisa-bridge -f my-values.yaml | scripts/k8scheck.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/scripts/k8scheck"
hash=$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-12)
bindir="$root/.cache/bin/k8scheck-$hash"
bin="$bindir/k8scheck"

if [ ! -x "$bin" ]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "scripts/k8scheck.sh: 'go' is not on PATH; install Go (https://go.dev/dl/) so the checker" \
      "can be built from the module proxy" >&2
    exit 127
  fi
  echo "scripts/k8scheck.sh: building the checker with $(go version) (first run only)" >&2
  mkdir -p "$bindir"
  start=$(date +%s)
  (
    flock 9
    if [ ! -x "$bin" ]; then
      cd "$src"
      GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false" CGO_ENABLED=0 \
        go build -trimpath -ldflags "-w -s" -o "$bin.tmp" . && mv "$bin.tmp" "$bin"
    fi
  ) 9>"$bindir.lock"
  # builds of earlier sources are not needed any more
  find "$root/.cache/bin" -maxdepth 1 -name 'k8scheck-*' ! -name "k8scheck-$hash" ! -name "k8scheck-$hash.lock" \
    -exec rm -rf {} + 2>/dev/null || true
  echo "scripts/k8scheck.sh: built in $(($(date +%s) - start))s -> $bin" >&2
fi
exec "$bin" "$@"
