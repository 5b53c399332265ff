"""Create the demo's annotated sources in the lab (admin identity): an Ingress, an Istio
Gateway (Secret lands in istio-system) and a Gateway API Gateway."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from certbotk8s.adapters.kube_client import load_api_client  # noqa: E402


def main() -> None:
    api = load_api_client(os.environ["KUBECONFIG"])
    ns, zone = os.environ["DEMO_NS"], os.environ["DNS_ZONE"]
    core, custom = k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
    for name in (ns, "istio-apps"):
        try:
            core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
        except ApiException as e:
            if e.status != 409:
                raise
    opt_in = {"certbotk8s.io/enabled": "true"}
    k8s.NetworkingV1Api(api).create_namespaced_ingress(ns, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "shop", "annotations": opt_in},
        "spec": {"ingressClassName": "nginx",
                 "tls": [{"hosts": [f"shop.{ns}.{zone}", f"www.{ns}.{zone}"],
                          "secretName": "shop-tls"}]},
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


if __name__ == "__main__":
    main()
