#!/usr/bin/env bash
# `make e2e-kind`: the end-to-end tests (tests/e2e) on a kind cluster, for machines with
# Docker and registry access (kindest/node and cert-manager's images are pulled; this
# project's CI cannot). kind is built from the module pinned in localcluster/tools/kind.
#   ES4PS_KIND_CLUSTER   cluster name (default es4ps-e2e)
#   ES4PS_KEEP_CLUSTER=1 keep the cluster afterwards
#   ES4PS_BASE_IMAGE     base of the images (default: debian:bookworm-slim, pulled)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
hack/build-tools.sh kind helm traefik
export PATH=$root/.local/bin:$PATH
name=${ES4PS_KIND_CLUSTER:-es4ps-e2e}
export KUBECONFIG=$root/.local/kind-kubeconfig
export ES4PS_BASE_IMAGE=${ES4PS_BASE_IMAGE:-debian:bookworm-slim}

if ! kind get clusters | grep -qx "$name"; then
  kind create cluster --name "$name" --kubeconfig "$KUBECONFIG" --wait 120s
fi
# cert-manager: the release of the version pinned for the local cluster
version=$(awk '$1 == "require" && $2 == "github.com/cert-manager/cert-manager" {print $3}' localcluster/tools/cert-manager/go.mod)
kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/$version/cert-manager.yaml"
kubectl -n cert-manager wait --for=condition=Available deployment --all --timeout=300s

status=0
ES4PS_E2E_PLATFORM=kind ES4PS_KIND_CLUSTER=$name .venv/bin/python -m pytest tests/e2e "$@" || status=$?
if [ "${ES4PS_KEEP_CLUSTER:-}" != 1 ]; then kind delete cluster --name "$name"; fi
exit $status
