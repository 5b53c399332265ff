# kubectl, built from k8s.io/kubernetes at the lab's Kubernetes version (same Go module graph as
# lab/kube.sh's kube-apiserver, so a warm Go build cache makes this ~1 min). Sourced by lab/up
# after kube.sh. Used by tests/lab/test_manifests.py (`kubectl kustomize`, server-side dry-run).
# Writes KUBECTL=<path> to .lab/env. Nothing is started.
# shellcheck shell=bash

if ! declare -F kube_wrapper_init >/dev/null; then
  # shellcheck source=lab/kube.sh
  source "$LAB_ROOT/lab/kube.sh"
fi

KUBECTL_BIN="$LAB_CACHE/kubectl-$KUBE_VERSION/kubectl"

kubectl_build() {
  [ -x "$KUBECTL_BIN" ] && return 0
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
  local src="$LAB_CACHE/src/kubectl-$KUBE_VERSION" out t0=$SECONDS gomod staging m n=0
  local apiserver_src="$LAB_CACHE/src/kube-apiserver-$KUBE_VERSION"
  local minor="${KUBE_VERSION#v1.}" ldflags pid ticks=0
  out="$(dirname "$KUBECTL_BIN")"
  lab_log "building kubectl $KUBE_VERSION (warm Go cache: ~1 min; cold: several minutes)"
  kube_wrapper_init "$src" certbotk8s.lab/kubectl
  # Start from kube-apiserver's resolved module graph when it is there: tidy then only adds
  # kubectl's few extra modules, and the shared packages are already in the Go build cache.
  if [ -f "$apiserver_src/go.mod" ] && [ -f "$apiserver_src/go.sum" ]; then
    sed 's#^module .*#module certbotk8s.lab/kubectl#' "$apiserver_src/go.mod" >"$src/go.mod"
    cp "$apiserver_src/go.sum" "$src/go.sum"
  else
    gomod="$(cd "$src" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
      | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
    [ -f "$gomod" ] || lab_die "could not download k8s.io/kubernetes@$KUBE_VERSION"
    staging="$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u)"
    [ -n "$staging" ] || lab_die "found no k8s.io/* v0.0.0 requirements in $gomod"
    (
      cd "$src"
      go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
      for m in $staging; do
        go mod edit -replace="$m=$m@v0.$minor"
        n=$((n + 1))
      done
      echo "replaced $n staging modules with v0.$minor"
    ) >"$src/build.log" 2>&1 || lab_die "go mod edit failed ($src/build.log)"
  fi
  cat >"$src/tools.go" <<'EOF'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kubectl"
EOF
  (cd "$src" && go mod tidy) >>"$src/build.log" 2>&1 \
    || { tail -n 30 "$src/build.log" >&2; lab_die "go mod tidy failed for kubectl ($src/build.log)"; }
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
  ldflags+=" -X k8s.io/component-base/version.gitMinor=${minor%%.*}"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
  mkdir -p "$out"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/kubectl.tmp.$$" \
    k8s.io/kubernetes/cmd/kubectl) >>"$src/build.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    ticks=$((ticks + 1))
    if [ $((ticks % 30)) = 0 ] && kill -0 "$pid" 2>/dev/null; then
      lab_log "kubectl: still compiling ($((SECONDS - t0)) s)"
    fi
  done
  wait "$pid" || { tail -n 30 "$src/build.log" >&2; lab_die "kubectl build failed ($src/build.log)"; }
  mv "$out/kubectl.tmp.$$" "$KUBECTL_BIN"
  lab_log "kubectl built in $((SECONDS - t0)) s: $KUBECTL_BIN"
}

kubectl_start() {
  env_add KUBECTL "$KUBECTL_BIN"
}
