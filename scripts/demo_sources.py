"""Create the demo's annotated sources in the lab (admin identity): an Ingress, an Istio
Gateway (Secret lands in istio-system) and a Gateway API Gateway; then wait for the controller
to write their Secrets and say how long each took."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from certbotk8s.adapters.kube.client import load_api_client  # noqa: E402


def main() -> None:
    api = load_api_client(os.environ["KUBECONFIG"])
    ns, zone = os.environ["DEMO_NS"], os.environ["DNS_ZONE"]
    core, custom = k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
    networking: Any = k8s.NetworkingV1Api(api)  # bodies are plain manifests (dicts)
    for name in (ns, "istio-apps"):
        try:
            core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
        except ApiException as e:
            if e.status != 409:
                raise
    opt_in = {"certbotk8s.io/enabled": "true"}
    started = time.monotonic()
    networking.create_namespaced_ingress(ns, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "shop", "annotations": opt_in},
        "spec": {"ingressClassName": "nginx",
                 "tls": [{"hosts": [f"shop.{ns}.{zone}", f"www.{ns}.{zone}"],
                          "secretName": "shop-tls"}],
                 "rules": [{"host": host, "http": {"paths": [{
                     "path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "shop", "port": {"number": 80}}}}]}}
                     for host in (f"shop.{ns}.{zone}", f"www.{ns}.{zone}")]},
    })
    print(f"  Ingress {ns}/shop          -> Secret {ns}/shop-tls")
    custom.create_namespaced_custom_object("networking.istio.io", "v1", "istio-apps", "gateways", {
        "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
        "metadata": {"name": f"{ns}-gw", "annotations": opt_in},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
            {"port": {"number": 80, "name": "http", "protocol": "HTTP"},
             "hosts": [f"*/api.{ns}.{zone}"]},
            {"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
             "hosts": [f"istio-apps/api.{ns}.{zone}"],
             "tls": {"mode": "SIMPLE", "credentialName": f"{ns}-api-cred"}}]},
    })
    print(f"  Istio Gateway istio-apps/{ns}-gw -> Secret istio-system/{ns}-api-cred")
    custom.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", ns, "gateways", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "edge", "annotations": opt_in},
        "spec": {"gatewayClassName": "example", "listeners": [
            {"name": "http", "protocol": "HTTP", "port": 80},
            {"name": "https", "protocol": "HTTPS", "port": 443, "hostname": f"edge.{ns}.{zone}",
             "tls": {"mode": "Terminate",
                     "certificateRefs": [{"kind": "Secret", "name": "edge-tls"}]}}]},
    })
    print(f"  Gateway API {ns}/edge      -> Secret {ns}/edge-tls")
    wait_for_secrets(core, [(ns, "shop-tls"), ("istio-system", f"{ns}-api-cred"),
                            (ns, "edge-tls")], started)


def wait_for_secrets(core: k8s.CoreV1Api, wanted: list[tuple[str, str]], started: float
                     ) -> None:
    pending = set(wanted)
    while pending and time.monotonic() - started < 60:
        for namespace, name in sorted(pending):
            try:
                core.read_namespaced_secret(name, namespace)
            except ApiException:
                continue
            pending.discard((namespace, name))
            print(f"  {time.monotonic() - started:5.2f}s after the sources were created: "
                  f"Secret {namespace}/{name}")
        time.sleep(0.02)
    if pending:
        raise SystemExit(f"not issued within 60 s: {sorted(pending)} (see the controller log)")


if __name__ == "__main__":
    main()
