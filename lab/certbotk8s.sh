# certbotk8s's own lab configuration: the config file for Pebble + BIND and the TSIG Secret in
# the cluster. Sourced by lab/up after bind, pebble and kube. Defines certbotk8s_build/_start.

certbotk8s_build() { :; }

certbotk8s_start() {
  local conf="$LAB_DIR/certbotk8s.yaml"
  cat >"$conf" <<YAML
# Written by lab/up for the local lab: Pebble as the CA, BIND for DNS-01.
controllerNamespace: certbotk8s
defaultIssuer: pebble
issuers:
  pebble:
    directory: $ACME_DIRECTORY
    email: ops@certbotk8s.test
    caBundle: $ACME_CA_BUNDLE
    profiles: [default, shortlived, fast]  # fast: 4-minute certificates (compressed time)
    defaultProfile: default  # Pebble picks a profile at random when an order names none
    # Pebble has no rate limits; the lab issues hundreds of certificates for one domain.
    rateLimits: {certificatesPerDomain: 0, certificatesPerIdentifierSet: 0, ordersPer3Hours: 0,
                 failedAuthorizationsPerHour: 0}
defaultDnsProvider: lab-bind
dnsProviders:
  lab-bind:
    type: rfc2136
    server: $DNS_SERVER
    tsig: {keyName: $DNS_TSIG_NAME, algorithm: $DNS_TSIG_ALGORITHM,
           secretRef: {name: certbotk8s-tsig, key: secret}}
    resolver: $DNS_SERVER
    nameserverPort: ${DNS_SERVER##*:}
    followCname: true
istio: {gatewayNamespace: istio-system, allowedSourceNamespaces: [istio-apps]}
solver:
  http01: {selfCheck: true, port: $HTTP01_PORT, listenAddress: 127.0.0.1,
           selfCheckPort: $HTTP01_PORT, selfCheckResolver: $DNS_SERVER}
  dns01: {propagationTimeout: 30, pollInterval: 1}
YAML
  if [ -n "${KUBECONFIG:-}" ]; then
    # The TSIG secret lives in a Secret, never in the config file.
    "$LAB_ROOT/.venv/bin/python" - <<'PY'
import base64, os
from kubernetes import client, config
config.load_kube_config(os.environ["KUBECONFIG"])
api = client.CoreV1Api()
body = client.V1Secret(
    metadata=client.V1ObjectMeta(name="certbotk8s-tsig", namespace="certbotk8s"),
    data={"secret": base64.b64encode(os.environ["DNS_TSIG_SECRET"].encode()).decode()},
)
try:
    api.create_namespaced_secret("certbotk8s", body)
except client.ApiException as e:
    if e.status != 409:
        raise
    api.replace_namespaced_secret("certbotk8s-tsig", "certbotk8s", body)
PY
  fi
  env_add CERTBOTK8S_CONFIG "$conf"
}
