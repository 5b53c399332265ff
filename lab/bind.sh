# BIND (named) for the lab: authoritative for certbotk8s.test. and delegated.test. on
# 127.0.0.1:10053 (UDP+TCP), RFC 2136 updates signed with a TSIG key made fresh at every start.
# A second named on 127.0.0.1:10055 is a forwarding resolver in front of it (forward only,
# caching): the recursive-only DNS-01 propagation check asks it, as pods ask the cluster DNS.
# Sourced by lab/up; defines bind_build and bind_start. Needs lib.sh.

BIND_PORT="${BIND_PORT:-$(lab_port 10053)}"
BIND_FORWARDER_PORT="${BIND_FORWARDER_PORT:-$(lab_port 10055)}"
BIND_ZONE="certbotk8s.test"
BIND_ZONE_DELEGATED="delegated.test"
# For the DNS fault tests: a zone the key may not update (REFUSED), and a zone with a second
# nameserver on 127.0.0.2 (same port) that a test plays, lagging or refusing.
BIND_ZONE_READONLY="readonly.test"
BIND_ZONE_TWO_NS="twons.test"
BIND_TSIG_NAME="certbotk8s-key."

# _lab_sudo CMD...: run as root (directly when we are root, else through sudo).
_lab_sudo() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

bind_build() {
  if command -v named >/dev/null 2>&1 || [ -x /usr/sbin/named ]; then
    if command -v nsupdate >/dev/null 2>&1 && command -v dig >/dev/null 2>&1; then
      return 0
    fi
  fi
  lab_log "installing bind9 (named, nsupdate, dig)"
  _lab_sudo apt-get update -qq
  _lab_sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq bind9 bind9-utils bind9-dnsutils >/dev/null
  # Ubuntu/Debian start the system service on install; it listens on :53, not on our port, and
  # does not disturb the lab. We leave it alone.
}

# _bind_named_binary: path of the named to run. Under AppArmor (Ubuntu CI runners) the profile
# attached to /usr/sbin/named forbids reading config outside /etc/bind; a copy elsewhere is not
# confined, so use a copy in the cache there.
_bind_named_binary() {
  local named
  named="$(command -v named 2>/dev/null || echo /usr/sbin/named)"
  if [ -r /sys/module/apparmor/parameters/enabled ] &&
    [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] &&
    [ -e /etc/apparmor.d/usr.sbin.named ]; then
    mkdir -p "$LAB_CACHE/bind/bin"
    if ! cmp -s "$named" "$LAB_CACHE/bind/bin/named"; then
      cp "$named" "$LAB_CACHE/bind/bin/named"
    fi
    named="$LAB_CACHE/bind/bin/named"
  fi
  echo "$named"
}

_bind_zone_file() { # ZONE FILE SERIAL
  local zone="$1" file="$2" serial="$3"
  if [ "$zone" = . ]; then
    cat >"$file" <<EOF
\$TTL 60
@       IN SOA  ns.lab. hostmaster.lab. ( $serial 60 30 86400 5 )
@       IN NS   ns.lab.
ns.lab. IN A    127.0.0.1
EOF
    return 0
  fi
  cat >"$file" <<EOF
\$TTL 60
@       IN SOA  ns1.$BIND_ZONE. hostmaster.$BIND_ZONE. ( $serial 60 30 86400 5 )
@       IN NS   ns1.$BIND_ZONE.
@       IN A    127.0.0.1
EOF
  if [ "$zone" = "$BIND_ZONE" ]; then
    cat >>"$file" <<EOF
ns1     IN A    127.0.0.1
*       IN A    127.0.0.1
EOF
  fi
}

bind_start() {
  local dir="$LAB_DIR/bind" named serial secret
  rm -rf "$dir"
  mkdir -p "$dir"
  chmod 700 "$dir"
  named="$(_bind_named_binary)"

  # Fresh TSIG key; kept in a 0600 file and .lab/env only, never printed.
  (umask 077 && tsig-keygen -a hmac-sha256 "$BIND_TSIG_NAME" >"$dir/tsig.key")
  secret="$(sed -n 's/.*secret "\([^"]*\)".*/\1/p' "$dir/tsig.key")"
  [ -n "$secret" ] || lab_die "tsig-keygen gave no secret"

  serial="$(date +%s)"
  _bind_zone_file "$BIND_ZONE" "$dir/$BIND_ZONE.zone" "$serial"
  _bind_zone_file "$BIND_ZONE_DELEGATED" "$dir/$BIND_ZONE_DELEGATED.zone" "$serial"
  _bind_zone_file . "$dir/root.zone" "$serial"
  _bind_zone_file "$BIND_ZONE_READONLY" "$dir/$BIND_ZONE_READONLY.zone" "$serial"
  cat >"$dir/$BIND_ZONE_TWO_NS.zone" <<ZONE
\$TTL 60
@       IN SOA  ns1.$BIND_ZONE_TWO_NS. hostmaster.$BIND_ZONE. ( $serial 60 30 86400 5 )
@       IN NS   ns1.$BIND_ZONE_TWO_NS.
@       IN NS   ns2.$BIND_ZONE_TWO_NS.
ns1     IN A    127.0.0.1
ns2     IN A    127.0.0.2
ZONE

  cat >"$dir/named.conf" <<EOF
include "$dir/tsig.key";
options {
    directory "$dir";
    pid-file "$dir/named.pid";
    session-keyfile "$dir/session.key";
    managed-keys-directory "$dir";
    listen-on port $BIND_PORT { 127.0.0.1; };
    listen-on-v6 { none; };
    // Recursion on, but named is also primary for a private root zone, so it never leaves
    // the machine: unknown names are NXDOMAIN. Recursion makes named follow CNAME chains into
    // its other zones (_acme-challenge.x.certbotk8s.test CNAME x.delegated.test), as a real
    // resolver does; Pebble's DNS-01 check reads only the answer of one query.
    recursion yes;
    allow-recursion { 127.0.0.1; };
    allow-query { any; };
    allow-transfer { none; };
    dnssec-validation no;
    notify no;
    minimal-responses no;
};
controls { };
logging {
    channel stderr_log { stderr; severity info; print-time yes; };
    category default { stderr_log; };
    category update { stderr_log; };
    category lame-servers { null; };
};
zone "." {
    type primary;
    file "$dir/root.zone";
};
zone "$BIND_ZONE." {
    type primary;
    file "$dir/$BIND_ZONE.zone";
    update-policy { grant $BIND_TSIG_NAME zonesub ANY; };
};
zone "$BIND_ZONE_DELEGATED." {
    type primary;
    file "$dir/$BIND_ZONE_DELEGATED.zone";
    update-policy { grant $BIND_TSIG_NAME zonesub ANY; };
};
zone "$BIND_ZONE_READONLY." {
    type primary;
    file "$dir/$BIND_ZONE_READONLY.zone";
};
zone "$BIND_ZONE_TWO_NS." {
    type primary;
    file "$dir/$BIND_ZONE_TWO_NS.zone";
    update-policy { grant $BIND_TSIG_NAME zonesub ANY; };
};
EOF

  # -4: no IPv6 sockets at all. As root named keeps running as root unless -u is given; that
  # is fine for a loopback lab and keeps .lab/bind writable (journals).
  start_bg named "$named" -g -4 -c "$dir/named.conf"
  wait_tcp "$BIND_PORT" 30 named
  local i ok=""
  for i in $(seq 1 50); do
    if [ "$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$BIND_PORT" "lab-check.$BIND_ZONE" A)" = 127.0.0.1 ]; then
      ok=1
      break
    fi
    sleep 0.1
  done
  [ -n "$ok" ] || lab_die "named answers no A record for lab-check.$BIND_ZONE (see $LAB_DIR/logs/named.log)"

  _bind_forwarder_start "$named"

  env_add DNS_SERVER "127.0.0.1:$BIND_PORT"
  env_add DNS_ZONE "$BIND_ZONE"
  env_add DNS_ZONE_DELEGATED "$BIND_ZONE_DELEGATED"
  env_add DNS_ZONE_READONLY "$BIND_ZONE_READONLY"
  env_add DNS_ZONE_TWO_NS "$BIND_ZONE_TWO_NS"
  env_add DNS_TSIG_NAME "$BIND_TSIG_NAME"
  env_add DNS_TSIG_SECRET "$secret"
  env_add DNS_TSIG_ALGORITHM hmac-sha256
  lab_log "named ready on 127.0.0.1:$BIND_PORT (zones $BIND_ZONE, $BIND_ZONE_DELEGATED)"
}

# _bind_forwarder_start NAMED: a caching resolver that only forwards, to the lab's named; no zone
# of its own, so every answer it gives went through its cache (negative answers kept for the
# zones' 5 s negative TTL, as a real resolver keeps them).
_bind_forwarder_start() {
  local named="$1" dir="$LAB_DIR/bind-forwarder" i
  rm -rf "$dir"
  mkdir -p "$dir"
  chmod 700 "$dir"
  cat >"$dir/named.conf" <<EOF
options {
    directory "$dir";
    pid-file "$dir/named.pid";
    session-keyfile "$dir/session.key";
    managed-keys-directory "$dir";
    listen-on port $BIND_FORWARDER_PORT { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion yes;
    allow-recursion { 127.0.0.1; };
    forward only;
    forwarders { 127.0.0.1 port $BIND_PORT; };
    dnssec-validation no;
    notify no;
};
controls { };
logging {
    channel stderr_log { stderr; severity info; print-time yes; };
    category default { stderr_log; };
    category lame-servers { null; };
};
EOF
  start_bg named-forwarder "$named" -g -4 -c "$dir/named.conf"
  wait_tcp "$BIND_FORWARDER_PORT" 30 named-forwarder
  for i in $(seq 1 50); do
    if [ "$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$BIND_FORWARDER_PORT" "lab-check.$BIND_ZONE" A)" = 127.0.0.1 ]; then
      env_add DNS_FORWARDER "127.0.0.1:$BIND_FORWARDER_PORT"
      lab_log "forwarding resolver ready on 127.0.0.1:$BIND_FORWARDER_PORT"
      return 0
    fi
    sleep 0.1
  done
  lab_die "the forwarding named answers no A record for lab-check.$BIND_ZONE (see $LAB_DIR/logs/named-forwarder.log)"
}
