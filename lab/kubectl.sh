# kubectl for tests/lab/test_manifests.py (`kubectl kustomize`, server-side dry-run). A kubectl on
# the PATH is reused when its minor version is within one of the lab's Kubernetes (kubectl's own
# version-skew policy); else one is built from k8s.io/kubernetes at the lab's version (same Go
# module graph as lab/kube.sh's kube-apiserver, so a warm Go build cache makes this ~1 min;
# cold, about 4 min). KUBECTL=<path> forces a binary. Sourced by lab/up after kube.sh.
# Writes KUBECTL=<path> to .lab/env. Nothing is started.
# shellcheck shell=bash

if ! declare -F kube_wrapper_init >/dev/null; then
  # shellcheck source=lab/kube.sh
  source "$LAB_ROOT/lab/kube.sh"
fi

KUBECTL_BIN="$LAB_CACHE/kubectl-$KUBE_VERSION/kubectl"

# kubectl_compatible PATH: true when PATH's client minor version is the lab's minor +-1.
kubectl_compatible() {
  local version minor want="${KUBE_VERSION#v1.}"
  want="${want%%.*}"
  version="$("$1" version --client -o json 2>/dev/null)" || return 1
  minor="$(printf '%s' "$version" | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | head -n 1)"
  [ -n "$minor" ] && [ "$minor" -ge $((want - 1)) ] && [ "$minor" -le $((want + 1)) ]
}

kubectl_build() {
  if [ -n "${KUBECTL:-}" ] && [ -x "$KUBECTL" ]; then
    KUBECTL_BIN="$KUBECTL"
    return 0
  fi
  [ -x "$KUBECTL_BIN" ] && return 0
  local found
  found="$(command -v kubectl || true)"
  if [ -n "$found" ] && kubectl_compatible "$found"; then
    lab_log "reusing $found (within one minor version of $KUBE_VERSION)"
    KUBECTL_BIN="$found"
    return 0
  fi
  [ -n "$found" ] && lab_log "$found is not within one minor version of $KUBE_VERSION; building"
  command -v go >/dev/null || lab_die "go is needed to build kubectl"
  mkdir -p "$LAB_CACHE"
  exec {KUBECTL_LOCK_FD}>"$LAB_CACHE/.kubectl-build.lock"
  if ! flock -n "$KUBECTL_LOCK_FD"; then
    lab_log "another lab/up is building kubectl; waiting for it"
    flock "$KUBECTL_LOCK_FD"
  fi
  [ -x "$KUBECTL_BIN" ] || kubectl_compile
  flock -u "$KUBECTL_LOCK_FD"
  exec {KUBECTL_LOCK_FD}>&-
}

kubectl_compile() {
  local src="$LAB_CACHE/src/kubectl-$KUBE_VERSION" t0=$SECONDS
  local apiserver_src="$LAB_CACHE/src/kube-apiserver-$KUBE_VERSION"
  lab_log "building kubectl $KUBE_VERSION (warm Go cache: ~1 min; cold: several minutes)"
  kube_wrapper_init "$src" certbotk8s.lab/kubectl
  # Start from kube-apiserver's resolved module graph when it is there: tidy then only adds
  # kubectl's few extra modules, and the shared packages are already in the Go build cache.
  if [ -f "$apiserver_src/go.mod" ] && [ -f "$apiserver_src/go.sum" ]; then
    sed 's#^module .*#module certbotk8s.lab/kubectl#' "$apiserver_src/go.mod" >"$src/go.mod"
    cp "$apiserver_src/go.sum" "$src/go.sum"
    printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kubectl"\n' \
      >"$src/tools.go"
  else
    kube_wrapper_module "$src" kubectl
  fi
  (cd "$src" && go mod tidy) >>"$src/build.log" 2>&1 \
    || { tail -n 30 "$src/build.log" >&2; lab_die "go mod tidy failed for kubectl ($src/build.log)"; }
  kube_compile kubectl "$src" "$KUBECTL_BIN" "$t0"
}

kubectl_start() {
  env_add KUBECTL "$KUBECTL_BIN"
}
