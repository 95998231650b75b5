#!/usr/bin/env bash
# Builds bin/local-cluster (etcd, kube-apiserver, kube-controller-manager from
# upstream's Go modules; see hack/local-cluster). Rebuilds only when the Go
# sources, go.sum or the Go toolchain change: Go's own module and build caches
# make a rebuild after a small change take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
src=hack/local-cluster
out=bin/local-cluster
stamp=bin/.local-cluster-stamp
k8s_version=$(sed -n 's/^\s*k8s.io\/kubernetes v\([0-9.]*\)$/\1/p' "$src/go.mod" | head -1)
if ! command -v go >/dev/null 2>&1; then
  echo "go is not on PATH: install Go >= 1.24 (Debian: apt-get install golang, or https://go.dev/dl)" >&2
  exit 1
fi
want=$( (cat "$src/go.mod" "$src/go.sum" "$src"/*.go; go version) | sha256sum | cut -d' ' -f1)
if [ -x "$out" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
mkdir -p bin
echo "Building $out (Kubernetes v$k8s_version); the first build downloads ~1 GB of modules and takes several minutes..." >&2
start=$(date +%s)
(cd "$src" && CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v$k8s_version -X k8s.io/component-base/version.gitMajor=${k8s_version%%.*} -X k8s.io/component-base/version.gitMinor=$(echo "$k8s_version" | cut -d. -f2)" \
  -o "../../$out.tmp" .)
mv "$out.tmp" "$out"
echo "$want" > "$stamp"
echo "Built $out in $(( $(date +%s) - start ))s" >&2
