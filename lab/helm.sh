# helm (Go module helm.sh/helm/v4, pinned), for tests/lab/test_chart.py: lint, template and a
# server-side install of charts/certbotk8s into the lab's API server. Sourced by lab/up.
# Writes HELM=<path> to .lab/env. Nothing is started.
# shellcheck shell=bash

HELM_VERSION="${HELM_VERSION:-v4.3.2}"
HELM_BIN="$LAB_CACHE/helm-$HELM_VERSION/helm"

helm_build() {
  [ -x "$HELM_BIN" ] && return 0
  command -v go >/dev/null || lab_die "go is needed to build helm"
  mkdir -p "$LAB_CACHE"
  exec {HELM_LOCK_FD}>"$LAB_CACHE/.helm-build.lock"
  if ! flock -n "$HELM_LOCK_FD"; then
    lab_log "another lab/up is building helm; waiting for it"
    flock "$HELM_LOCK_FD"
  fi
  [ -x "$HELM_BIN" ] || helm_compile
  flock -u "$HELM_LOCK_FD"
  exec {HELM_LOCK_FD}>&-
}

helm_compile() {
  local out t0=$SECONDS log="$LAB_CACHE/src/helm-$HELM_VERSION.log"
  out="$(dirname "$HELM_BIN")"
  mkdir -p "$out" "$LAB_CACHE/src"
  lab_log "building helm $HELM_VERSION (cold: ~5-10 min on 2 busy cores)"
  # helm's go.mod has no replace lines, so `go install module@version` works with the proxy.
  GOBIN="$out/.tmp.$$" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >"$log" 2>&1 \
    || { tail -n 30 "$log" >&2; lab_die "helm build failed ($log)"; }
  mv "$out/.tmp.$$/helm" "$HELM_BIN"
  rmdir "$out/.tmp.$$"
  lab_log "helm built in $((SECONDS - t0)) s: $HELM_BIN"
}

helm_start() {
  env_add HELM "$HELM_BIN"
}
