# Pebble (Let's Encrypt's test CA) for the lab: three instances on loopback, all resolving
# names through the lab's BIND (127.0.0.1:10053) and dialling HTTP-01 on port 5002
# (every port shifted by LAB_PORT_OFFSET, see lib.sh).
#   pebble        ACME 14000, mgmt 15000   main
#   pebble-eab    ACME 14001, mgmt 15001   externalAccountBindingRequired, kid-1 + fresh key
#   pebble-flaky  ACME 14002, mgmt 15003   50 % badNonce, Retry-After 1 s on orders/authzs
# Sourced by lab/up; defines pebble_build and pebble_start. Needs lib.sh (and bind.sh started).

PEBBLE_VERSION="${PEBBLE_VERSION:-v2.10.1}"
PEBBLE_HOME="$LAB_CACHE/pebble-$PEBBLE_VERSION"
PEBBLE_BIN="$PEBBLE_HOME/bin/pebble"
# TLS for Pebble's own API endpoints: a CA made once with openssl, kept in the cache.
PEBBLE_TLS="$LAB_CACHE/pebble-tls"
PEBBLE_DNS="${PEBBLE_DNS:-127.0.0.1:${BIND_PORT:-$(lab_port 10053)}}"
PEBBLE_HTTP01_PORT=$(lab_port 5002)
PEBBLE_TLSALPN01_PORT=$(lab_port 5001)
P_MAIN=$(lab_port 14000) P_MAIN_MGMT=$(lab_port 15000)
P_EAB=$(lab_port 14001) P_EAB_MGMT=$(lab_port 15001)
P_FLAKY=$(lab_port 14002) P_FLAKY_MGMT=$(lab_port 15003)

_pebble_make_tls() {
  [ -s "$PEBBLE_TLS/ca.pem" ] && [ -s "$PEBBLE_TLS/localhost.pem" ] &&
    [ -s "$PEBBLE_TLS/localhost.key" ] && return 0
  lab_log "making a CA and localhost certificate for Pebble's API in $PEBBLE_TLS"
  local tmp
  tmp="$(mktemp -d)"
  (
    set -e
    umask 077
    cd "$tmp"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=certbotk8s lab API CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -addext "subjectKeyIdentifier=hash" -out ca.pem
    openssl ecparam -name prime256v1 -genkey -noout -out localhost.key 2>/dev/null
    openssl req -new -key localhost.key -subj "/CN=localhost" -out localhost.csr
    cat >ext.cnf <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:pebble,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
    openssl x509 -req -in localhost.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 \
      -days 3650 -extfile ext.cnf -out localhost.pem 2>/dev/null
    chmod 644 ca.pem localhost.pem
  ) || { rm -rf "$tmp"; lab_die "openssl failed making Pebble's API certificate"; }
  mkdir -p "$PEBBLE_TLS"
  mv "$tmp/ca.pem" "$tmp/ca.key" "$tmp/localhost.pem" "$tmp/localhost.key" "$PEBBLE_TLS/"
  rm -rf "$tmp"
}

pebble_build() {
  if [ ! -x "$PEBBLE_BIN" ]; then
    command -v go >/dev/null 2>&1 || lab_die "go is needed to build Pebble"
    lab_log "building pebble $PEBBLE_VERSION into $PEBBLE_HOME/bin"
    GOBIN="$PEBBLE_HOME/bin" go install -ldflags "-X main.version=$PEBBLE_VERSION" \
      "github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION"
  fi
  _pebble_make_tls
}

# _pebble_config NAME ACME_PORT MGMT_PORT RETRY_AFTER EXTRA_JSON
_pebble_config() {
  local name="$1" acme="$2" mgmt="$3" retry="$4" extra="$5"
  cat >"$LAB_DIR/pebble/$name.json" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$acme",
    "managementListenAddress": "127.0.0.1:$mgmt",
    "certificate": "$PEBBLE_TLS/localhost.pem",
    "privateKey": "$PEBBLE_TLS/localhost.key",
    "httpPort": $PEBBLE_HTTP01_PORT,
    "tlsPort": $PEBBLE_TLSALPN01_PORT,
    "ocspResponderURL": "",
    "domainBlocklist": ["blocked.certbotk8s.test"],
    "retryAfter": { "authz": $retry, "order": $retry },
    "keyAlgorithm": "ecdsa",
    $extra
    "profiles": {
      "default": { "description": "90 days", "validityPeriod": 7776000 },
      "shortlived": { "description": "6 days", "validityPeriod": 518400 },
      "fast": { "description": "4 minutes, for compressed-time renewal runs", "validityPeriod": 240 }
    }
  }
}
EOF
}

pebble_start() {
  local dir="$LAB_DIR/pebble" eab_key base="PEBBLE_VA_NOSLEEP=1 PEBBLE_AUTHZREUSE=50"
  rm -rf "$dir"
  mkdir -p "$dir"
  chmod 700 "$dir"
  # EAB MAC key: 32 random bytes, base64url without padding (what Pebble and RFC 8555 expect).
  eab_key="$(openssl rand 32 | base64 | tr '+/' '-_' | tr -d '=\n')"

  _pebble_config pebble $P_MAIN $P_MAIN_MGMT 0 '"externalAccountBindingRequired": false,'
  (umask 077 && _pebble_config pebble-eab $P_EAB $P_EAB_MGMT 0 \
    "\"externalAccountBindingRequired\": true, \"externalAccountMACKeys\": {\"kid-1\": \"$eab_key\"},")
  _pebble_config pebble-flaky $P_FLAKY $P_FLAKY_MGMT 1 '"externalAccountBindingRequired": false,'

  start_bg_env pebble "$base PEBBLE_WFE_NONCEREJECT=0 PEBBLE_ALTERNATE_ROOTS=1" \
    "$PEBBLE_BIN" -config "$dir/pebble.json" -dnsserver "$PEBBLE_DNS"
  start_bg_env pebble-eab "$base PEBBLE_WFE_NONCEREJECT=0" \
    "$PEBBLE_BIN" -config "$dir/pebble-eab.json" -dnsserver "$PEBBLE_DNS"
  start_bg_env pebble-flaky "$base PEBBLE_WFE_NONCEREJECT=50" \
    "$PEBBLE_BIN" -config "$dir/pebble-flaky.json" -dnsserver "$PEBBLE_DNS"

  local name port
  for port in $P_MAIN $P_MAIN_MGMT $P_EAB $P_EAB_MGMT $P_FLAKY $P_FLAKY_MGMT; do wait_tcp "$port" 30 pebble; done
  # Each instance makes fresh roots at start; save them (for chain checks) and prove the
  # management API answers over TLS with our CA.
  for name in pebble:$P_MAIN_MGMT pebble-eab:$P_EAB_MGMT pebble-flaky:$P_FLAKY_MGMT; do
    curl -fsS --cacert "$PEBBLE_TLS/ca.pem" "https://127.0.0.1:${name#*:}/roots/0" \
      -o "$dir/${name%%:*}-root.pem" ||
      lab_die "${name%%:*} management API did not answer (see $LAB_DIR/logs/${name%%:*}.log)"
  done

  env_add ACME_DIRECTORY https://127.0.0.1:$P_MAIN/dir
  env_add ACME_CA_BUNDLE "$PEBBLE_TLS/ca.pem"
  env_add PEBBLE_MGMT https://127.0.0.1:$P_MAIN_MGMT
  env_add HTTP01_PORT "$PEBBLE_HTTP01_PORT"
  env_add ACME_DIRECTORY_EAB https://127.0.0.1:$P_EAB/dir
  env_add PEBBLE_MGMT_EAB https://127.0.0.1:$P_EAB_MGMT
  env_add EAB_KID kid-1
  env_add EAB_HMAC_KEY "$eab_key"
  env_add ACME_DIRECTORY_FLAKY https://127.0.0.1:$P_FLAKY/dir
  env_add PEBBLE_MGMT_FLAKY https://127.0.0.1:$P_FLAKY_MGMT
  lab_log "pebble ready: ACME $P_MAIN (main), $P_EAB (EAB), $P_FLAKY (flaky); HTTP-01 dialled on $PEBBLE_HTTP01_PORT"
}
