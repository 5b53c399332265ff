# PowerDNS authoritative (Debian pdns-server + pdns-backend-sqlite3) for the lab: zone
# powerdns.test on 127.0.0.1:10054 (UDP+TCP), HTTP API on 127.0.0.1:18081 with a fresh API key,
# and a fourth Pebble (pebble-pdns, ACME 14010, mgmt 15010) whose DNS server is this PowerDNS,
# so DNS-01 through lexicon's powerdns provider is validated against it (ports + offset).
# Sourced by lab/up after pebble.sh; defines powerdns_build and powerdns_start. Needs lib.sh.

PDNS_PORT=$(lab_port 10054)
PDNS_API_PORT=$(lab_port 18081)
PDNS_ZONE="powerdns.test"
P_PDNS=$(lab_port 14010) P_PDNS_MGMT=$(lab_port 15010)

powerdns_build() {
  if { command -v pdns_server >/dev/null 2>&1 || [ -x /usr/sbin/pdns_server ]; } &&
    [ -e /usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql ]; then
    return 0
  fi
  lab_log "installing pdns-server and pdns-backend-sqlite3"
  # The package would start a system PowerDNS on :53; the lab runs its own. Where no
  # policy-rc.d stops service starts (CI runners), one is put in place for the install only.
  local policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | _lab_sudo tee "$policy" >/dev/null
    _lab_sudo chmod 755 "$policy"
  fi
  _lab_sudo apt-get update -qq
  _lab_sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq pdns-server pdns-backend-sqlite3 >/dev/null
  [ -z "$policy" ] || _lab_sudo rm -f "$policy"
  # Where a system service got started anyway, stop it: it is not ours and would hold :53.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet pdns 2>/dev/null; then
    _lab_sudo systemctl disable --now pdns >/dev/null 2>&1 || true
  fi
}

_powerdns_conf() { # DIR KEY
  cat <<CONF
launch=gsqlite3
gsqlite3-database=$1/pdns.sqlite3
local-address=127.0.0.1:$PDNS_PORT
socket-dir=$1
api=yes
api-key=$2
webserver=yes
webserver-address=127.0.0.1
webserver-port=$PDNS_API_PORT
webserver-allow-from=127.0.0.0/8
daemon=no
guardian=no
disable-syslog=yes
write-pid=no
loglevel=4
CONF
}

powerdns_start() {
  local dir="$LAB_DIR/powerdns" key pdnsutil pdns
  rm -rf "$dir"
  mkdir -p "$dir"
  chmod 700 "$dir"
  pdns="$(command -v pdns_server 2>/dev/null || echo /usr/sbin/pdns_server)"
  pdnsutil="$(command -v pdnsutil 2>/dev/null || echo /usr/bin/pdnsutil)"
  key="$(openssl rand -hex 24)"  # kept in the 0600 config and .lab/env only, never printed
  (umask 077 && _powerdns_conf "$dir" "$key" >"$dir/pdns.conf")
  "$LAB_ROOT/.venv/bin/python" - "$dir/pdns.sqlite3" \
    /usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql <<'PY'
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1])
connection.executescript(open(sys.argv[2]).read())
connection.commit()
PY
  "$pdnsutil" --config-dir="$dir" create-zone "$PDNS_ZONE" "ns1.$PDNS_ZONE" >/dev/null
  "$pdnsutil" --config-dir="$dir" add-record "$PDNS_ZONE" ns1 A 127.0.0.1 >/dev/null
  "$pdnsutil" --config-dir="$dir" add-record "$PDNS_ZONE" @ A 127.0.0.1 >/dev/null
  "$pdnsutil" --config-dir="$dir" add-record "$PDNS_ZONE" '*' A 127.0.0.1 >/dev/null

  start_bg pdns "$pdns" --config-dir="$dir"
  wait_tcp "$PDNS_PORT" 30 pdns
  wait_tcp "$PDNS_API_PORT" 30 pdns-api
  local i ok=""
  for i in $(seq 1 50); do
    if [ "$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$PDNS_PORT" "lab-check.$PDNS_ZONE" A)" = 127.0.0.1 ]; then
      ok=1
      break
    fi
    sleep 0.1
  done
  [ -n "$ok" ] || lab_die "PowerDNS answers no A record for lab-check.$PDNS_ZONE (see $LAB_DIR/logs/pdns.log)"
  curl -fsS -H "X-API-Key: $key" -o /dev/null \
    "http://127.0.0.1:$PDNS_API_PORT/api/v1/servers/localhost/zones/$PDNS_ZONE." ||
    lab_die "PowerDNS API did not answer (see $LAB_DIR/logs/pdns.log)"

  # The fourth Pebble: set up like the main one, resolving through PowerDNS.
  _pebble_config pebble-pdns "$P_PDNS" "$P_PDNS_MGMT" 0 '"externalAccountBindingRequired": false,'
  start_bg_env pebble-pdns "PEBBLE_VA_NOSLEEP=1 PEBBLE_AUTHZREUSE=0 PEBBLE_WFE_NONCEREJECT=0" \
    "$PEBBLE_BIN" -config "$LAB_DIR/pebble/pebble-pdns.json" -dnsserver "127.0.0.1:$PDNS_PORT"
  wait_tcp "$P_PDNS" 30 pebble-pdns
  wait_tcp "$P_PDNS_MGMT" 30 pebble-pdns

  env_add PDNS_SERVER "127.0.0.1:$PDNS_PORT"
  env_add PDNS_ZONE "$PDNS_ZONE"
  env_add PDNS_API "http://127.0.0.1:$PDNS_API_PORT"
  env_add PDNS_API_KEY "$key"
  env_add ACME_DIRECTORY_PDNS "https://127.0.0.1:$P_PDNS/dir"
  env_add PEBBLE_MGMT_PDNS "https://127.0.0.1:$P_PDNS_MGMT"
  lab_log "PowerDNS ready on 127.0.0.1:$PDNS_PORT (zone $PDNS_ZONE, API $PDNS_API_PORT); pebble-pdns ACME $P_PDNS"
}
