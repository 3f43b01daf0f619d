#!/usr/bin/env bash
# The kind path, for anyone with Docker (DESIGN.md §2). Nothing here runs on the build
# machines: they have no Docker engine; the chart is checked there by helm + schemas.
#
#   bash scripts/kind.sh up       kind cluster + cert-manager + KServe (Standard mode) + KFP standalone
#   bash scripts/kind.sh images   build the four images and `kind load` them
#   bash scripts/kind.sh deploy   helm upgrade --install the chart (values: scripts/kind-values.yaml)
#   bash scripts/kind.sh e2e      pytest -m e2e against the cluster
#   bash scripts/kind.sh down     delete the cluster
#
# Versions are pinned here; override with the environment variables below.
set -euo pipefail

CLUSTER="${CASTML_KIND_CLUSTER:-castml}"
NAMESPACE="${CASTML_NAMESPACE:-castml}"
RELEASE="${CASTML_RELEASE:-castml}"
REGISTRY="${CASTML_REGISTRY:-ghcr.io/castml}"
TAG="${CASTML_TAG:-0.1.0}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"                # empty: the kind release's default node
CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.19.1}"
KSERVE_VERSION="${KSERVE_VERSION:-v0.20.0}"           # the CRD schema in ../shared/schemas/kserve
KFP_VERSION="${KFP_VERSION:-2.14.3}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$ROOT/.tools/bin:$PATH"
cd "$ROOT"

need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "kind.sh: '$tool' is not installed (needed here)" >&2; exit 1; }
  done
}

up() {
  need docker kind kubectl
  if ! kind get clusters | grep -qx "$CLUSTER"; then
    kind create cluster --name "$CLUSTER" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s
  fi
  kubectl config use-context "kind-$CLUSTER"

  echo "==> cert-manager $CERT_MANAGER_VERSION (KServe's webhook certificates)"
  kubectl apply -f "https://github.com/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml"
  kubectl -n cert-manager rollout status deploy/cert-manager-webhook --timeout=300s

  echo "==> KServe $KSERVE_VERSION in Standard (raw Deployment) mode"
  kubectl apply --server-side -f "https://github.com/kserve/kserve/releases/download/$KSERVE_VERSION/kserve.yaml"
  kubectl -n kserve rollout status deploy/kserve-controller-manager --timeout=300s
  kubectl apply --server-side -f "https://github.com/kserve/kserve/releases/download/$KSERVE_VERSION/kserve-cluster-resources.yaml"
  # Standard is also set per InferenceService by the chart; this makes it the default.
  kubectl -n kserve patch configmap inferenceservice-config --type merge \
    -p '{"data":{"deploy":"{\"defaultDeploymentMode\":\"Standard\"}"}}'

  echo "==> Kubeflow Pipelines $KFP_VERSION standalone"
  kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$KFP_VERSION"
  kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io
  kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=$KFP_VERSION"
  kubectl -n kubeflow wait --for=condition=Available deploy --all --timeout=900s

  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
  # Restricted is enforced for castml's own pods; KServe injects its agent sidecar, so
  # the namespace only warns and audits.
  kubectl label namespace "$NAMESPACE" --overwrite \
    pod-security.kubernetes.io/warn=restricted pod-security.kubernetes.io/audit=restricted
}

images() {
  need docker kind
  local name dockerfile image
  # The four Dockerfiles are generated from docker/Dockerfile.template: never build stale ones.
  python3 docker/dockerfiles.py --check
  for pair in serving:serving/Dockerfile monitoring:monitoring/Dockerfile \
              pipeline:pipelines/Dockerfile mlflow:mlflow/Dockerfile; do
    name="${pair%%:*}"; dockerfile="${pair#*:}"; image="$REGISTRY/$name:$TAG"
    echo "==> $image"
    docker build -f "$dockerfile" -t "$image" .
    kind load docker-image --name "$CLUSTER" "$image"
  done
}

deploy() {
  need helm kubectl
  kubectl config use-context "kind-$CLUSTER"
  helm upgrade --install "$RELEASE" charts/castml \
    --namespace "$NAMESPACE" --create-namespace \
    --values scripts/kind-values.yaml \
    --set image.registry="$REGISTRY" --set image.tag="$TAG" \
    --wait --timeout 15m
  cat <<NEXT
Deployed. The predictor becomes ready once version 1 of each project is registered:
  kubectl -n kubeflow port-forward svc/ml-pipeline 8888:8888 &
  castml pipeline submit --host http://localhost:8888 --project diecast --mlflow-uri http://$RELEASE-mlflow.$NAMESPACE.svc.cluster.local:5000
then: helm test $RELEASE -n $NAMESPACE --logs   and   bash scripts/kind.sh e2e
NEXT
}

e2e() {
  need kubectl
  kubectl config use-context "kind-$CLUSTER"
  CASTML_E2E_NAMESPACE="$NAMESPACE" CASTML_E2E_RELEASE="$RELEASE" \
    "$ROOT/.venv/bin/pytest" -m e2e tests/e2e -v
}

down() {
  need kind
  kind delete cluster --name "$CLUSTER"
}

case "${1:-}" in
  up) up ;;
  images) images ;;
  deploy) deploy ;;
  e2e) e2e ;;
  down) down ;;
  *) echo "usage: bash scripts/kind.sh {up|images|deploy|e2e|down}" >&2; exit 2 ;;
esac
