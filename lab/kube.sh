# etcd + kube-apiserver (built from Go modules) and the Istio / Gateway API CRDs. Sourced by lab/up.
# Ports (127.0.0.1 only; override with KUBE_ETCD_PORT, KUBE_ETCD_PEER_PORT, KUBE_PORT):
# etcd client 12379, etcd peer 12380, kube-apiserver 16443. State is fresh at every start.
# LAB_AUDIT=1 also logs the lab controller's own requests (user certbotk8s:certbotk8s) to
# .lab/kube/audit.log, writes with their bodies (bench/audit_writes.py counts them per object
# and shows what each patch changes).
# shellcheck shell=bash

KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
KUBE_ETCD_VERSION="${KUBE_ETCD_VERSION:-v3.6.6}"
KUBE_ISTIO_API_VERSION="${KUBE_ISTIO_API_VERSION:-v1.28.0}"
KUBE_GATEWAY_API_VERSION="${KUBE_GATEWAY_API_VERSION:-v1.4.1}"
KUBE_ETCD_PORT="${KUBE_ETCD_PORT:-$(lab_port 12379)}"
KUBE_ETCD_PEER_PORT="${KUBE_ETCD_PEER_PORT:-$(lab_port 12380)}"
KUBE_PORT="${KUBE_PORT:-$(lab_port 16443)}"
KUBE_APISERVER_BIN="$LAB_CACHE/kube-apiserver-$KUBE_VERSION/kube-apiserver"
KUBE_ETCD_BIN="$LAB_CACHE/etcd-$KUBE_ETCD_VERSION/etcd"
# The extractor's hash is part of the key: a changed CRD list is fetched again.
KUBE_CRD_DIR="$LAB_CACHE/crds-istio-$KUBE_ISTIO_API_VERSION-gateway-api-$KUBE_GATEWAY_API_VERSION-$(sha256sum "$LAB_ROOT/lab/crds/extract.py" | cut -c1-8)"
KUBE_PY="$LAB_ROOT/.venv/bin/python"

kube_build() {
  if [ -x "$KUBE_ETCD_BIN" ] && [ -x "$KUBE_APISERVER_BIN" ] && [ -f "$KUBE_CRD_DIR/.complete" ]; then
    return 0
  fi
  command -v go >/dev/null || lab_die "go is needed to build etcd and kube-apiserver"
  mkdir -p "$LAB_CACHE"
  # Two checkouts (or two lab/up runs) share the cache: build one at a time, then re-check.
  exec {KUBE_LOCK_FD}>"$LAB_CACHE/.kube-build.lock"
  if ! flock -n "$KUBE_LOCK_FD"; then
    lab_log "another lab/up is building etcd/kube-apiserver; waiting for it"
    flock "$KUBE_LOCK_FD"
  fi
  [ -x "$KUBE_ETCD_BIN" ] || kube_build_etcd
  [ -x "$KUBE_APISERVER_BIN" ] || kube_build_apiserver
  [ -f "$KUBE_CRD_DIR/.complete" ] || kube_fetch_crds
  flock -u "$KUBE_LOCK_FD"
  exec {KUBE_LOCK_FD}>&-
}

# kube_wrapper_init DIR MODULE: fresh wrapper module in DIR (build inputs only; outputs go elsewhere).
kube_wrapper_init() {
  local dir="$1" mod="$2"
  rm -rf "$dir"
  mkdir -p "$dir"
  (cd "$dir" && go mod init "$mod" >/dev/null 2>&1) || lab_die "go mod init failed in $dir"
}

kube_build_etcd() {
  local src="$LAB_CACHE/src/etcd-$KUBE_ETCD_VERSION" out t0=$SECONDS m
  out="$(dirname "$KUBE_ETCD_BIN")"
  lab_log "building etcd $KUBE_ETCD_VERSION (cold: ~30 s)"
  kube_wrapper_init "$src" certbotk8s.lab/etcd
  cat >"$src/tools.go" <<'EOF'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
EOF
  (
    cd "$src"
    go mod edit -require="go.etcd.io/etcd/server/v3@$KUBE_ETCD_VERSION"
    # etcd's own go.mod files use relative replaces; pin the sibling modules to the same release.
    for m in api/v3 client/pkg/v3 client/v3 pkg/v3 server/v3; do
      go mod edit -replace="go.etcd.io/etcd/$m=go.etcd.io/etcd/$m@$KUBE_ETCD_VERSION"
    done
    go mod tidy
    mkdir -p "$out"
    CGO_ENABLED=0 go build -trimpath -o "$out/etcd.tmp.$$" go.etcd.io/etcd/server/v3
  ) >"$src/build.log" 2>&1 || { tail -n 30 "$src/build.log" >&2; lab_die "etcd build failed ($src/build.log)"; }
  mv "$out/etcd.tmp.$$" "$KUBE_ETCD_BIN"
  lab_log "etcd built in $((SECONDS - t0)) s: $KUBE_ETCD_BIN"
}

kube_build_apiserver() {
  local src="$LAB_CACHE/src/kube-apiserver-$KUBE_VERSION" t0=$SECONDS
  lab_log "building kube-apiserver $KUBE_VERSION (cold: 3-5 min on 2 cores, several hundred MB of modules)"
  kube_wrapper_init "$src" certbotk8s.lab/kube-apiserver
  kube_wrapper_module "$src" kube-apiserver
  lab_log "kube-apiserver: $(tail -n 1 "$src/build.log"); go mod tidy (downloads modules)"
  (cd "$src" && go mod tidy) >>"$src/build.log" 2>&1 \
    || { tail -n 30 "$src/build.log" >&2; lab_die "go mod tidy failed ($src/build.log)"; }
  lab_log "kube-apiserver: modules ready after $((SECONDS - t0)) s; compiling"
  kube_compile kube-apiserver "$src" "$KUBE_APISERVER_BIN" "$t0"
}

# kube_wrapper_module SRC CMD: make SRC a module that builds k8s.io/kubernetes/cmd/CMD.
# k8s.io/kubernetes requires its staging modules (k8s.io/* at exactly v0.0.0); each is
# replaced by its published v0.<minor>.<patch> twin.
kube_wrapper_module() {
  local src="$1" cmd="$2" gomod staging m n=0 minor="${KUBE_VERSION#v1.}"
  gomod="$(cd "$src" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [ -f "$gomod" ] || lab_die "could not download k8s.io/kubernetes@$KUBE_VERSION"
  staging="$(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$gomod" | sort -u)"
  [ -n "$staging" ] || lab_die "found no k8s.io/* v0.0.0 requirements in $gomod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/%s"\n' "$cmd" \
    >"$src/tools.go"
  (
    cd "$src"
    go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
    for m in $staging; do
      go mod edit -replace="$m=$m@v0.$minor"
      n=$((n + 1))
    done
    echo "replaced $n staging modules with v0.$minor"
  ) >"$src/build.log" 2>&1 || lab_die "go mod edit failed ($src/build.log)"
}

# kube_compile CMD SRC BIN T0: build k8s.io/kubernetes/cmd/CMD in the wrapper module SRC into
# BIN with the version ldflags, logging progress while the (long) compile runs.
kube_compile() {
  local cmd="$1" src="$2" bin="$3" t0="$4" minor ldflags pid ticks=0
  minor="${KUBE_VERSION#v1.}"
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
  ldflags+=" -X k8s.io/component-base/version.gitMinor=${minor%%.*}"
  ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
  mkdir -p "$(dirname "$bin")"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin.tmp.$$" \
    "k8s.io/kubernetes/cmd/$cmd") >>"$src/build.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    ticks=$((ticks + 1))
    if [ $((ticks % 30)) = 0 ] && kill -0 "$pid" 2>/dev/null; then
      lab_log "$cmd: still compiling ($((SECONDS - t0)) s)"
    fi
  done
  wait "$pid" || { tail -n 30 "$src/build.log" >&2; lab_die "$cmd build failed ($src/build.log)"; }
  mv "$bin.tmp.$$" "$bin"
  lab_log "$cmd built in $((SECONDS - t0)) s: $bin"
}

kube_fetch_crds() {
  local tmp="$LAB_CACHE/src/crd-fetch" json
  lab_log "fetching CRDs: istio.io/api@$KUBE_ISTIO_API_VERSION sigs.k8s.io/gateway-api@$KUBE_GATEWAY_API_VERSION"
  kube_wrapper_init "$tmp" certbotk8s.lab/crds
  json="$(cd "$tmp" && go mod download -json "istio.io/api@$KUBE_ISTIO_API_VERSION" \
    "sigs.k8s.io/gateway-api@$KUBE_GATEWAY_API_VERSION")" || lab_die "go mod download of the CRD modules failed"
  rm -rf "$KUBE_CRD_DIR"
  mkdir -p "$KUBE_CRD_DIR"
  printf '%s\n' "$json" | "$KUBE_PY" "$LAB_ROOT/lab/crds/extract.py" "$KUBE_CRD_DIR" \
    || lab_die "CRD extraction failed"
  touch "$KUBE_CRD_DIR/.complete"
}

# kube_pki DIR: CA, serving cert for 127.0.0.1/localhost, service-account key pair.
kube_pki() {
  local d="$1"
  (
    set -e
    cd "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
      -subj "/CN=certbotk8s-lab-ca" -keyout ca.key -out ca.crt \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=kube-apiserver" \
      -keyout apiserver.key -out apiserver.csr
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1" \
      "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature" >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile apiserver.ext -out apiserver.crt
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
    openssl pkey -in sa.key -pubout -out sa.pub
    rm -f apiserver.csr apiserver.ext ca.srl
  ) >"$d/pki.log" 2>&1 || lab_die "openssl failed ($d/pki.log)"
}

# kube_kubeconfig FILE USER TOKEN
kube_kubeconfig() {
  local file="$1" user="$2" token="$3"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://127.0.0.1:$KUBE_PORT
    certificate-authority: $KUBE_DIR/ca.crt
users:
- name: $user
  user:
    token: $token
contexts:
- name: $user@lab
  context:
    cluster: lab
    user: $user
current-context: $user@lab
EOF
  chmod 600 "$file"
}

# kube_port_free PORT NAME: refuse to start when something (another checkout's lab?) holds PORT.
kube_port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    lab_die "127.0.0.1:$1 ($2) is already in use; another lab running? (ports can be overridden, see lab/kube.sh)"
  fi
}

kube_start() {
  KUBE_DIR="$LAB_DIR/kube"
  local admin_token controller_token i code
  kube_port_free "$KUBE_ETCD_PORT" "etcd client"
  kube_port_free "$KUBE_ETCD_PEER_PORT" "etcd peer"
  kube_port_free "$KUBE_PORT" kube-apiserver
  rm -rf "$KUBE_DIR"
  mkdir -p "$KUBE_DIR/etcd"
  chmod 700 "$KUBE_DIR" "$KUBE_DIR/etcd"
  kube_pki "$KUBE_DIR"
  admin_token="$(openssl rand -hex 24)"
  controller_token="$(openssl rand -hex 24)"
  # token,user,uid,"groups"
  {
    printf '%s,lab-admin,lab-admin,"system:masters"\n' "$admin_token"
    printf '%s,system:serviceaccount:certbotk8s:certbotk8s,certbotk8s-lab-uid,"system:serviceaccounts,system:serviceaccounts:certbotk8s,system:authenticated"\n' "$controller_token"
  } >"$KUBE_DIR/tokens.csv"
  chmod 600 "$KUBE_DIR/tokens.csv"

  # Audit: only the requests of ServiceAccounts in namespace certbotk8s-audited (the identity
  # tests/lab/test_rbac_audit.py runs the controller as), one JSON line each; nothing else is
  # logged, so the rest of the lab pays nothing for it. With LAB_AUDIT=1 also the lab
  # controller's (bench/audit_writes.py): writes with their bodies (the lab's throwaway test
  # keys only), everything else without.
  local controller_rules=""
  if [ "${LAB_AUDIT:-0}" = 1 ]; then
    controller_rules='  - level: Request
    users: ["system:serviceaccount:certbotk8s:certbotk8s"]
    verbs: [create, update, patch, delete, deletecollection]
  - level: Metadata
    users: ["system:serviceaccount:certbotk8s:certbotk8s"]
'
  fi
  cat >"$KUBE_DIR/audit-policy.yaml" <<YAML
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts:certbotk8s-audited"]
${controller_rules}  - level: None
YAML

  start_bg etcd "$KUBE_ETCD_BIN" --name lab --data-dir "$KUBE_DIR/etcd/data" \
    --listen-client-urls "http://127.0.0.1:$KUBE_ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$KUBE_ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$KUBE_ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$KUBE_ETCD_PEER_PORT" \
    --initial-cluster "lab=http://127.0.0.1:$KUBE_ETCD_PEER_PORT" \
    --listen-metrics-urls "" --log-level warn --unsafe-no-fsync --quota-backend-bytes 4294967296
  wait_tcp "$KUBE_ETCD_PORT" 30 etcd

  start_bg kube-apiserver "$KUBE_APISERVER_BIN" \
    --etcd-servers "http://127.0.0.1:$KUBE_ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$KUBE_PORT" \
    --tls-cert-file "$KUBE_DIR/apiserver.crt" --tls-private-key-file "$KUBE_DIR/apiserver.key" \
    --client-ca-file "$KUBE_DIR/ca.crt" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --authorization-mode RBAC --token-auth-file "$KUBE_DIR/tokens.csv" \
    --service-account-issuer "https://127.0.0.1:$KUBE_PORT" \
    --service-account-key-file "$KUBE_DIR/sa.pub" \
    --service-account-signing-key-file "$KUBE_DIR/sa.key" \
    --disable-admission-plugins ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
    --allow-privileged=true --enable-priority-and-fairness=false \
    --endpoint-reconciler-type none --profiling=false -v=1 \
    --audit-policy-file "$KUBE_DIR/audit-policy.yaml" --audit-log-path "$KUBE_DIR/audit.log" \
    --audit-log-format json
  env_add KUBE_AUDIT_LOG "$KUBE_DIR/audit.log"
  env_add KUBECONFIG "$KUBE_DIR/admin.kubeconfig"
  env_add CONTROLLER_KUBECONFIG "$KUBE_DIR/controller.kubeconfig"
  env_add KUBE_APISERVER "https://127.0.0.1:$KUBE_PORT"
  env_add KUBE_CA_FILE "$KUBE_DIR/ca.crt"
  env_add KUBE_ETCD_ENDPOINT "http://127.0.0.1:$KUBE_ETCD_PORT"
  kube_kubeconfig "$KUBE_DIR/admin.kubeconfig" lab-admin "$admin_token"
  kube_kubeconfig "$KUBE_DIR/controller.kubeconfig" certbotk8s "$controller_token"
  wait_tcp "$KUBE_PORT" 60 kube-apiserver
  for i in $(seq 1 600); do
    code="$(curl -s -o /dev/null -w '%{http_code}' --cacert "$KUBE_DIR/ca.crt" \
      -H "Authorization: Bearer $admin_token" "https://127.0.0.1:$KUBE_PORT/readyz" || true)"
    [ "$code" = 200 ] && break
    kill -0 "$(cat "$LAB_DIR/pids/kube-apiserver.pid")" 2>/dev/null \
      || { tail -n 20 "$LAB_DIR/logs/kube-apiserver.log" >&2; lab_die "kube-apiserver exited"; }
    [ "$i" = 600 ] && lab_die "kube-apiserver /readyz not ok within 60 s (see $LAB_DIR/logs/kube-apiserver.log)"
    sleep 0.1
  done
  lab_log "kube-apiserver ready on https://127.0.0.1:$KUBE_PORT"
  "$KUBE_PY" "$LAB_ROOT/lab/apply_crds.py" --kubeconfig "$KUBE_DIR/admin.kubeconfig" \
    --namespace certbotk8s --namespace istio-system "$KUBE_CRD_DIR" || lab_die "applying CRDs failed"
}
