#!/usr/bin/env bash
# Renders deploy/k8s with `kubectl kustomize` and validates every object
# against the Kubernetes and Prometheus Operator schemas
# (k8s_validate/validate.mjs, npm kubernetes-models and
# @kubernetes-models/prometheus-operator, installed by
# `deploy/install-deps.sh test`). Then breaks a copy of the rendering in two
# ways the schemas forbid and checks that the validator rejects each, so this
# test cannot pass with a validator that accepts anything.
# Usage: k8s_validate.sh REPO_DIR KUBECTL NODE
set -euo pipefail
repo=$1 kubectl=$2 node=$3
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/k8s_validate/node_modules/kubernetes-models" ]; then
  echo "FAIL: $here/k8s_validate/node_modules missing: run deploy/install-deps.sh test" >&2
  exit 1
fi
rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
"$kubectl" kustomize "$repo/deploy/k8s" > "$rendered"
echo "== deploy/k8s rendered by $("$kubectl" version --client 2>/dev/null | head -1)"
"$node" "$here/k8s_validate/validate.mjs" < "$rendered"

expect_invalid() {  # $1: what, $2: sed expression that breaks the rendering
  if sed "$2" "$rendered" | "$node" "$here/k8s_validate/validate.mjs" > /dev/null; then
    echo "FAIL: the validator accepted a manifest with $1" >&2
    exit 1
  fi
  echo "rejected, as it must: $1"
}
expect_invalid "a string containerPort" 's/containerPort: 8001/containerPort: "8001x"/'
expect_invalid "a PodMonitor endpoint port that is a number" \
  '/podMetricsEndpoints:/,/port:/ s/port: metrics/port: [8002]/'
echo "PASS"
