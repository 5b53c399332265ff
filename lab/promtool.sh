# promtool (Go module github.com/prometheus/prometheus, pinned), for tests/lab/test_alerts.py:
# `promtool check rules` and `promtool test rules` run the alerts in Prometheus's own rule
# engine. Sourced by lab/up. Writes PROMTOOL=<path> to .lab/env. Nothing is started.
# shellcheck shell=bash

PROMTOOL_VERSION="${PROMTOOL_VERSION:-v0.316.0}"
PROMTOOL_BIN="$LAB_CACHE/promtool-$PROMTOOL_VERSION/promtool"

promtool_build() {
  go_tool_build promtool "$PROMTOOL_BIN" "~15 min on 2 busy cores" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
}

promtool_start() {
  env_add PROMTOOL "$PROMTOOL_BIN"
}
