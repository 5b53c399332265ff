# moto's standalone server (PyPI moto[server], in the dev extras) for the lab: the Route53 API
# on 127.0.0.1:17050 (+ offset). It serves the API only, not DNS. Sourced by lab/up; defines
# moto_build and moto_start. Needs lib.sh.

MOTO_PORT=$(lab_port 17050)

moto_build() {
  [ -x "$LAB_ROOT/.venv/bin/moto_server" ] ||
    lab_die "moto_server missing from .venv: run scripts/bootstrap (dev extras)"
}

moto_start() {
  start_bg moto "$LAB_ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
  wait_tcp "$MOTO_PORT" 60 moto
  env_add MOTO_ENDPOINT "http://127.0.0.1:$MOTO_PORT"
  lab_log "moto ready on 127.0.0.1:$MOTO_PORT (Route53 API)"
}
