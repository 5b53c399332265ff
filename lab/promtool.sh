# promtool (Go module github.com/prometheus/prometheus, pinned), for tests/lab/test_alerts.py:
# `promtool check rules` and `promtool test rules` run the alerts in Prometheus's own rule
# engine. Sourced by lab/up. Writes PROMTOOL=<path> to .lab/env. Nothing is started.
# shellcheck shell=bash

PROMTOOL_VERSION="${PROMTOOL_VERSION:-v0.316.0}"
PROMTOOL_BIN="$LAB_CACHE/promtool-$PROMTOOL_VERSION/promtool"

promtool_build() {
  [ -x "$PROMTOOL_BIN" ] && return 0
  command -v go >/dev/null || lab_die "go is needed to build promtool"
  mkdir -p "$LAB_CACHE"
  exec {PROMTOOL_LOCK_FD}>"$LAB_CACHE/.promtool-build.lock"
  if ! flock -n "$PROMTOOL_LOCK_FD"; then
    lab_log "another lab/up is building promtool; waiting for it"
    flock "$PROMTOOL_LOCK_FD"
  fi
  [ -x "$PROMTOOL_BIN" ] || promtool_compile
  flock -u "$PROMTOOL_LOCK_FD"
  exec {PROMTOOL_LOCK_FD}>&-
}

promtool_compile() {
  local out t0=$SECONDS log="$LAB_CACHE/src/promtool-$PROMTOOL_VERSION.log"
  out="$(dirname "$PROMTOOL_BIN")"
  mkdir -p "$out" "$LAB_CACHE/src"
  lab_log "building promtool $PROMTOOL_VERSION (cold: ~15 min on 2 busy cores)"
  # The module's go.mod has no replace lines, so `go install module@version` works.
  GOBIN="$out/.tmp.$$" CGO_ENABLED=0 go install -trimpath \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION" >"$log" 2>&1 \
    || { tail -n 30 "$log" >&2; lab_die "promtool build failed ($log)"; }
  mv "$out/.tmp.$$/promtool" "$PROMTOOL_BIN"
  rmdir "$out/.tmp.$$"
  lab_log "promtool built in $((SECONDS - t0)) s: $PROMTOOL_BIN"
}

promtool_start() {
  env_add PROMTOOL "$PROMTOOL_BIN"
}
