#!/usr/bin/env bash
# The Gateway API conformance suite (kubernetes-sigs/gateway-api `conformance/`) against
# frontdesk installed on the cluster of KUBECONFIG, as scripts/e2e-kind.sh leaves it
# (`E2E_CONFORMANCE=1 make e2e-kind` runs this before deleting the cluster; docs/gateway-api.md).
#
#   GATEWAY_API_VERSION     the release whose suite runs; its standard CRDs must be the ones
#                           installed (default v1.6.3)
#   CONFORMANCE_PROFILES    default GATEWAY-HTTP,GATEWAY-GRPC
#   CONFORMANCE_REPORT_DIR  where the report goes (default target/conformance)
#   CONFORMANCE_RUN_TEST    one test only (the suite's --run-test), for debugging
#
# The features claimed are conformance/features.txt, the same list frontdesk's GatewayClasses
# report in status.supportedFeatures. Needs go, git and kubectl, and Gateway addresses the host
# can reach: on kind, cloud-provider-kind running (the provisioned Services are LoadBalancers).
set -euo pipefail
cd "$(dirname "$0")/.."

version="${GATEWAY_API_VERSION:-v1.6.3}"
profiles="${CONFORMANCE_PROFILES:-GATEWAY-HTTP,GATEWAY-GRPC}"
report_dir="$(mkdir -p "${CONFORMANCE_REPORT_DIR:-target/conformance}" && cd "${CONFORMANCE_REPORT_DIR:-target/conformance}" && pwd)"
say() { echo "conformance: $*"; }

missing=()
for tool in go git kubectl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "conformance: missing prerequisites: ${missing[*]}" >&2
  exit 1
fi
kubectl get gatewayclass frontdesk >/dev/null ||
  { echo "conformance: no GatewayClass frontdesk on this cluster (install the chart first)" >&2; exit 1; }

features="$(sed -e 's/#.*//' -e 's/[[:space:]]//g' conformance/features.txt | sed '/^$/d' | paste -sd, -)"
frontdesk_version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"

suite="$report_dir/gateway-api-$version"
if [[ ! -d "$suite" ]]; then
  say "fetching the suite ($version)"
  git clone --quiet --depth 1 --branch "$version" https://github.com/kubernetes-sigs/gateway-api "$suite"
fi

args=(
  --gateway-class=frontdesk
  --conformance-profiles="$profiles"
  --supported-features="$features"
  --organization=frontdesk
  --project=frontdesk
  --url=https://github.com/frontdesk-dev/frontdesk
  --version="v$frontdesk_version"
  --contact=https://github.com/frontdesk-dev/frontdesk/issues
  --report-output="$report_dir/report.yaml"
)
[[ -n "${CONFORMANCE_RUN_TEST:-}" ]] && args+=(--run-test="$CONFORMANCE_RUN_TEST")

say "running $profiles with: $features"
(cd "$suite" && GOTOOLCHAIN=auto go test ./conformance -run TestConformance -count=1 -timeout 60m -v \
  -args "${args[@]}") 2>&1 | tee "$report_dir/conformance.log"
say "report: $report_dir/report.yaml"
