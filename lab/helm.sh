# helm (Go module helm.sh/helm/v4, pinned), for tests/lab/test_chart.py: lint, template and a
# server-side install of charts/certbotk8s into the lab's API server. Sourced by lab/up.
# Writes HELM=<path> to .lab/env. Nothing is started.
# shellcheck shell=bash

HELM_VERSION="${HELM_VERSION:-v4.3.2}"
HELM_BIN="$LAB_CACHE/helm-$HELM_VERSION/helm"

helm_build() {
  go_tool_build helm "$HELM_BIN" "~5-10 min on 2 busy cores" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" \
    -ldflags "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
}

helm_start() {
  env_add HELM "$HELM_BIN"
}
