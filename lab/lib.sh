# Shared helpers for lab/up, lab/down and the lab/<component>.sh files. Sourced, not run.
# Everything started here listens on 127.0.0.1 only and is recorded in .lab/pids/<name>.pid,
# so lab/down stops exactly what lab/up started.

LAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAB_DIR="${LAB_DIR:-$LAB_ROOT/.lab}"
# Build outputs live outside the checkout so a fresh clone (CI) reuses them.
LAB_CACHE="${CERTBOTK8S_CACHE:-$HOME/.cache/certbotk8s}"
LAB_ENV="$LAB_DIR/env"
# LAB_PORT_OFFSET shifts every lab port, so several checkouts can run a lab side by side.
LAB_PORT_OFFSET="${LAB_PORT_OFFSET:-0}"
lab_port() { echo $(( $1 + LAB_PORT_OFFSET )); }
export GOFLAGS="${GOFLAGS:--mod=mod}"
export GOPATH="${GOPATH:-$HOME/go}"

lab_log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
lab_die() { lab_log "ERROR: $*"; exit 1; }

# start_bg NAME CMD...: run CMD detached in its own session, log to .lab/logs/NAME.log.
start_bg() {
  local name="$1"; shift
  mkdir -p "$LAB_DIR/pids" "$LAB_DIR/logs"
  setsid "$@" >"$LAB_DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$LAB_DIR/pids/$name.pid"
  lab_log "started $name (pid $!)"
}

# start_bg_env NAME "VAR=val ..." CMD...: same, with extra environment.
start_bg_env() {
  local name="$1" envs="$2"; shift 2
  # shellcheck disable=SC2086
  start_bg "$name" env $envs "$@"
}

# wait_tcp PORT [SECONDS] [NAME]: wait until 127.0.0.1:PORT accepts connections.
wait_tcp() {
  local port="$1" limit="${2:-60}" name="${3:-port $1}" i=0
  while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt $((limit * 10)) ]; then
      lab_die "$name did not listen on 127.0.0.1:$port within ${limit}s (see $LAB_DIR/logs)"
    fi
    sleep 0.1
  done
}

# env_add KEY VALUE: export KEY in .lab/env (shell-sourceable) and in this shell.
env_add() {
  printf 'export %s=%q\n' "$1" "$2" >>"$LAB_ENV"
  export "$1=$2"
}

# stop_pid NAME: TERM the recorded process group, wait up to 20 s, then KILL.
stop_pid() {
  local name="$1" file="$LAB_DIR/pids/$1.pid" pid i
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 200); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      lab_log "$name did not stop on TERM; killing"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
  lab_log "stopped $name"
}

# go_tool_build NAME BIN COLD MODULE@VERSION [go install flags...]: build a pinned Go command into
# the cache once (BIN, a versioned path), under a lock so two checkouts never build it at once.
# COLD says how long a cold build takes, for the log.
go_tool_build() {
  local name="$1" bin="$2" cold="$3" module="$4"; shift 4
  [ -x "$bin" ] && return 0
  command -v go >/dev/null || lab_die "go is needed to build $name"
  mkdir -p "$LAB_CACHE"
  local lock_fd
  exec {lock_fd}>"$LAB_CACHE/.$name-build.lock"
  if ! flock -n "$lock_fd"; then
    lab_log "another lab/up is building $name; waiting for it"
    flock "$lock_fd"
  fi
  if [ ! -x "$bin" ]; then
    local out t0=$SECONDS log="$LAB_CACHE/src/$name-${module##*@}.log"
    out="$(dirname "$bin")"
    mkdir -p "$out" "$LAB_CACHE/src"
    lab_log "building $name ${module##*@} (cold: $cold)"
    # The module's go.mod has no replace lines, so `go install module@version` works.
    GOBIN="$out/.tmp.$$" CGO_ENABLED=0 go install -trimpath "$@" "$module" >"$log" 2>&1 \
      || { tail -n 30 "$log" >&2; lab_die "$name build failed ($log)"; }
    mv "$out/.tmp.$$/$(basename "${module%@*}")" "$bin"
    rmdir "$out/.tmp.$$"
    lab_log "$name built in $((SECONDS - t0)) s: $bin"
  fi
  flock -u "$lock_fd"
  exec {lock_fd}>&-
}
