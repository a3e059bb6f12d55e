#!/usr/bin/env bash
# End-to-end test on a kind cluster (`make e2e-kind`): builds the images, installs the chart the
# way a user would, runs the scenarios of e2e/tests/scenarios.rs against the gateways, then
# upgrades the release (which rotates the channel credentials) and runs them again.
#
#   KIND_CLUSTER     cluster name (default frontdesk-e2e); created unless it exists
#   KIND_NODE_IMAGE  node image for a new cluster (default: the kind release's default)
#   KEEP_CLUSTER=1   keep the cluster afterwards (default: delete it, pass or fail)
#   E2E_LOG_DIR      where diagnostics go on failure (default target/e2e-kind-logs)
#   CARGO            cargo to run the scenarios with (default cargo)
#   GATEWAY_API_VERSION  the Gateway API release whose standard CRDs are installed (default v1.4.0)
#   E2E_CONFORMANCE=1    then run that release's conformance suite (scripts/conformance.sh; needs
#                        go, and cloud-provider-kind running for the Gateways' addresses)
#
# Needs docker (with a running engine), kind, kubectl, helm and cargo. The Gateway API CRDs are
# installed first, as docs/install.md tells users, so the chart's gateways are Gateways whose
# proxies the controller provisions. The gateways are reached on 127.0.0.1:18080 (default),
# https://127.0.0.1:18443 (default's HTTPS listener) and 127.0.0.1:18081 (partner): NodePorts
# 30080, 30443 and 30081, mapped by e2e/kind/cluster.yaml and set in e2e/kind/values.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster="${KIND_CLUSTER:-frontdesk-e2e}"
node_image="${KIND_NODE_IMAGE:-}"
keep_cluster="${KEEP_CLUSTER:-0}"
log_dir="${E2E_LOG_DIR:-target/e2e-kind-logs}"
cargo="${CARGO:-cargo}"
gateway_api_version="${GATEWAY_API_VERSION:-v1.4.0}"

release=frontdesk
namespace=frontdesk-system
chart=charts/frontdesk
values=e2e/kind/values.yaml
# Must match image.registry and image.tag in e2e/kind/values.yaml.
image_registry=e2e.local
image_tag=e2e
images=(
  "$image_registry/frontdesk-controller:$image_tag"
  "$image_registry/frontdesk-proxy:$image_tag"
  "$image_registry/frontdesk-demo:$image_tag"
)
# The controller's (the chart's) and the proxies' the controller provisions for the Gateways.
deployments=(frontdesk-controller frontdesk-gw-default frontdesk-gw-partner)
gateway_urls="default=http://127.0.0.1:18080,partner=http://127.0.0.1:18081"
https_url="https://127.0.0.1:18443"
min_kubernetes_minor=30

say() { echo "e2e-kind: $*"; }

# === prerequisites ===
missing=()
if ! command -v docker >/dev/null 2>&1; then
  missing+=("docker: install Docker Engine, https://docs.docker.com/engine/install/")
elif ! docker info >/dev/null 2>&1; then
  missing+=("a running Docker engine: \`docker info\` failed; start it (sudo systemctl start docker) or set DOCKER_HOST")
fi
command -v kind >/dev/null 2>&1 ||
  missing+=("kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation (or \`go install sigs.k8s.io/kind@v0.33.0\`)")
command -v kubectl >/dev/null 2>&1 ||
  missing+=("kubectl: https://kubernetes.io/docs/tasks/tools/#kubectl")
command -v helm >/dev/null 2>&1 ||
  missing+=("helm: https://helm.sh/docs/intro/install/")
command -v "$cargo" >/dev/null 2>&1 ||
  missing+=("cargo: the Rust toolchain, https://rustup.rs")
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "e2e-kind: missing prerequisites:" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  exit 1
fi

# A kubeconfig of our own: the user's ~/.kube/config and current context are left alone, and
# the scenarios' kubectl calls reach this cluster whatever the user's context is.
mkdir -p target/e2e-kind
export KUBECONFIG="$PWD/target/e2e-kind/kubeconfig"
rm -rf "$log_dir"
# The scenarios decide what to check after the upgrade from this; never inherit it.
unset FRONTDESK_E2E_AFTER_UPGRADE

# === diagnostics and cleanup ===
# section FILE TITLE CMD...: runs CMD, prints its output under TITLE and keeps it in FILE.
section() {
  local file="$1" title="$2"
  shift 2
  { echo "=== $title"; "$@" 2>&1; echo; } | tee "$log_dir/$file"
}

dump_diagnostics() {
  mkdir -p "$log_dir"
  say "failed: diagnostics follow, and are kept in $log_dir"
  section resources.txt "kubectl get all -A" kubectl get all -A -o wide
  section frontdesk-resources.txt "Routes, Policies, Aggregates" \
    kubectl get routes.frontdesk.dev,policies.frontdesk.dev,aggregates.frontdesk.dev -A -o wide
  kubectl get routes.frontdesk.dev,policies.frontdesk.dev,aggregates.frontdesk.dev -A -o yaml \
    >"$log_dir/frontdesk-resources.yaml" 2>&1
  # Apart: if the Gateway API CRDs are what failed, the frontdesk kinds above still show.
  local gateway_api=gatewayclasses.gateway.networking.k8s.io,gateways.gateway.networking.k8s.io,httproutes.gateway.networking.k8s.io,grpcroutes.gateway.networking.k8s.io
  section gateway-api-resources.txt "GatewayClasses, Gateways" kubectl get "$gateway_api" -A -o wide
  kubectl get "$gateway_api" -A -o yaml >"$log_dir/gateway-api-resources.yaml" 2>&1
  section events.txt "events" kubectl get events -A --sort-by=.lastTimestamp
  section helm.txt "helm history $release" helm -n "$namespace" history "$release"
  section describe-pods.txt "pods of $namespace" kubectl -n "$namespace" describe pods
  local pod
  for pod in $(kubectl -n "$namespace" get pods -o name 2>/dev/null); do
    section "logs-${pod#pod/}.txt" "logs of $pod (last 200 lines)" \
      kubectl -n "$namespace" logs "$pod" --all-containers --prefix --timestamps --tail=200
    # A container that restarted: the previous run's end says why.
    kubectl -n "$namespace" logs "$pod" --all-containers --prefix --timestamps --tail=200 \
      --previous >"$log_dir/logs-${pod#pod/}.previous.txt" 2>&1 ||
      rm -f "$log_dir/logs-${pod#pod/}.previous.txt"
  done
  # Node and kubelet logs, for the artifact only (too long to print).
  kind export logs --name "$cluster" "$log_dir/kind" >/dev/null 2>&1
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT
  if [[ $rc -ne 0 && $cluster_up == 1 ]]; then
    dump_diagnostics
  fi
  if [[ "$keep_cluster" == 1 ]]; then
    say "keeping cluster $cluster: export KUBECONFIG=$KUBECONFIG"
  else
    say "deleting cluster $cluster (KEEP_CLUSTER=1 keeps it)"
    kind delete cluster --name "$cluster" --kubeconfig "$KUBECONFIG"
  fi
  exit "$rc"
}

# === the steps ===
scenarios() {
  FRONTDESK_E2E_TARGET=kind \
    FRONTDESK_E2E_GATEWAYS="$gateway_urls" \
    FRONTDESK_E2E_HTTPS_URL="$https_url" \
    FRONTDESK_E2E_RELEASE_NAMESPACE="$namespace" \
    FRONTDESK_E2E_DEMO_IMAGE="$image_registry/frontdesk-demo:$image_tag" \
    "$cargo" test -p frontdesk-e2e --test scenarios -- --include-ignored --test-threads=1 --nocapture
}

wait_for_rollouts() {
  local deployment deadline
  for deployment in "${deployments[@]}"; do
    # The provisioned ones exist once the controller has accepted their Gateway.
    deadline=$((SECONDS + 180))
    until kubectl -n "$namespace" get "deploy/$deployment" >/dev/null 2>&1; do
      if ((SECONDS >= deadline)); then
        echo "e2e-kind: deployment $deployment not created after 180s (is its Gateway accepted?)" >&2
        return 1
      fi
      sleep 2
    done
    kubectl -n "$namespace" rollout status "deploy/$deployment" --timeout=5m
  done
}

# Any HTTP answer (a 404 problem+json is fine) shows the host -> NodePort -> proxy path works,
# so a broken port mapping fails here with its name rather than in every scenario.
wait_for_gateways() {
  command -v curl >/dev/null 2>&1 || return 0
  local entry url code deadline
  for entry in ${gateway_urls//,/ }; do
    url="${entry#*=}"
    deadline=$((SECONDS + 60))
    until code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/")" && [[ "$code" != 000 ]]; do
      if ((SECONDS >= deadline)); then
        echo "e2e-kind: gateway ${entry%%=*} does not answer on $url after 60s" >&2
        return 1
      fi
      sleep 1
    done
    say "gateway ${entry%%=*} answers on $url (HTTP $code)"
  done
}

# Compile the scenarios first: a build error fails in seconds, before a cluster exists.
say "building the scenarios"
"$cargo" test -p frontdesk-e2e --test scenarios --no-run

cluster_up=0
trap cleanup EXIT
trap 'exit 130' INT TERM

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  say "reusing cluster $cluster"
  # A cluster kept from an older e2e/kind/cluster.yaml lacks later port mappings.
  if ! docker port "$cluster-control-plane" 2>/dev/null | grep -q ':18443$'; then
    echo "e2e-kind: cluster $cluster does not map 127.0.0.1:18443 (e2e/kind/cluster.yaml changed);" >&2
    echo "  delete it (kind delete cluster --name $cluster) and run again" >&2
    exit 1
  fi
  kind get kubeconfig --name "$cluster" >"$KUBECONFIG"
else
  say "creating cluster $cluster"
  create=(kind create cluster --name "$cluster" --config e2e/kind/cluster.yaml
    --kubeconfig "$KUBECONFIG" --wait 2m)
  [[ -n "$node_image" ]] && create+=(--image "$node_image")
  "${create[@]}"
fi
cluster_up=1

minor="$(kubectl get --raw /version | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p')"
if [[ -z "$minor" || "$minor" -lt "$min_kubernetes_minor" ]]; then
  echo "e2e-kind: the chart needs Kubernetes >= 1.$min_kubernetes_minor, cluster $cluster runs 1.${minor:-?}:" >&2
  echo "  upgrade kind, or set KIND_NODE_IMAGE (e2e/kind/cluster.yaml)" >&2
  exit 1
fi

say "installing the Gateway API CRDs ($gateway_api_version, standard channel)"
kubectl apply --server-side \
  -f "https://github.com/kubernetes-sigs/gateway-api/releases/download/$gateway_api_version/standard-install.yaml"
kubectl wait --for=condition=Established --timeout=1m \
  crd/gatewayclasses.gateway.networking.k8s.io crd/gateways.gateway.networking.k8s.io \
  crd/referencegrants.gateway.networking.k8s.io crd/httproutes.gateway.networking.k8s.io \
  crd/grpcroutes.gateway.networking.k8s.io

say "building images"
# No provenance attestations: with the containerd image store they break `kind load`.
IMAGE_REGISTRY="$image_registry" IMAGE_TAG="$image_tag" \
  DOCKER_BUILD_ARGS="${DOCKER_BUILD_ARGS:-} --provenance=false" scripts/build-images.sh
say "loading images into $cluster"
kind load docker-image --name "$cluster" "${images[@]}"

say "installing $chart"
helm upgrade --install "$release" "$chart" -n "$namespace" --create-namespace \
  -f "$values" --wait --timeout 5m
kubectl wait --for=condition=Established --timeout=1m \
  crd/routes.frontdesk.dev crd/policies.frontdesk.dev crd/aggregates.frontdesk.dev
wait_for_rollouts
wait_for_gateways

say "scenarios"
scenarios

# An upgrade rotates the channel credentials: proxies must keep serving and reconnect.
say "upgrading $release"
helm upgrade "$release" "$chart" -n "$namespace" -f "$values" --wait --timeout 5m
wait_for_rollouts
wait_for_gateways

say "scenarios after the upgrade"
FRONTDESK_E2E_AFTER_UPGRADE=1 scenarios

if [[ "${E2E_CONFORMANCE:-0}" == 1 ]]; then
  say "Gateway API conformance ($gateway_api_version)"
  GATEWAY_API_VERSION="$gateway_api_version" scripts/conformance.sh
fi

say "passed"
