"""The table of API calls is complete: the controller and `renew --once`, run as their own
ServiceAccount under manifests/base/rbac.yaml only, make no request the table
(adapters/kube/api_calls.py) does not declare, and the API server refuses none (its audit log)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from certbotk8s.adapters.kube.api_calls import (
    CALLS,
    LEADER_LEASE,
    ApiCall,
    Caller,
    Needed,
    Request,
    Where,
    declares,
)
from tests.rbac import Install

from .conftest import RBAC_MANIFEST, ROOT, Lab, apply_manifest, read_secret
from .controllers import ControllerProcess, free_port, wait_for
from .test_namespaced import NamespacedController

pytestmark = pytest.mark.lab

# lab/kube.sh's audit policy logs the ServiceAccounts of this namespace, and nobody else
AUDITED = "certbotk8s-audited"
GATEWAY_API = ("gateway.networking.k8s.io", "v1", "gateways")
ISTIO = ("networking.istio.io", "v1", "gateways")
HTTP01 = {"certbotk8s.io/enabled": "true", "certbotk8s.io/challenge": "http-01"}


def _create(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except ApiException as e:
        if e.status != 409:
            raise


def _kustomize_rbac(admin: ApiClient, lab: Lab, served: list[str], route: str
                    ) -> list[dict[str, Any]]:
    """manifests/base/rbac.yaml (cluster-wide, routes in the sources' namespaces), the
    ClusterRole renamed and namespace certbotk8s moved to AUDITED."""
    assert not served and route == "source"
    docs = [d for d in yaml.safe_load_all(RBAC_MANIFEST.read_text()) if d]
    for doc in docs:
        meta = doc["metadata"]
        if meta.get("namespace") == "certbotk8s":
            meta["namespace"] = AUDITED
        if doc["kind"].startswith("Cluster"):
            meta["name"] = f"{meta['name']}-audited"  # never touch the lab controller's
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] = f"{doc['roleRef']['name']}-audited"
        for subject in doc.get("subjects") or []:
            subject["namespace"] = AUDITED
    return docs


def _chart_rbac(admin: ApiClient, lab: Lab, served: list[str], route: str
                ) -> list[dict[str, Any]]:
    """The chart's ServiceAccount and RBAC, release `edge` in AUDITED."""
    values = {"namespaces": served, "config": {
        "tenants": {"allowAnyHost": True},
        "solver": {"http01": {"routeNamespace": route}}}}
    path = ROOT / ".lab" / f"audit-values-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(values))
    try:
        out = subprocess.run([lab["HELM"], "template", "edge", str(ROOT / "charts" / "certbotk8s"),
                              "--namespace", AUDITED, "--values", str(path)],
                             capture_output=True, text=True, timeout=120, check=True).stdout
    finally:
        path.unlink()
    kinds = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
    return [d for d in yaml.safe_load_all(out) if d and d["kind"] in kinds]


def _identity(admin: ApiClient, lab: Lab, tmp_path: Path, docs: list[dict[str, Any]]
              ) -> tuple[str, Path]:
    """`docs` (a ServiceAccount in AUDITED and its RBAC) applied; its user name and a
    kubeconfig with its TokenRequest token."""
    core: Any = k8s.CoreV1Api(admin)
    _create(core.create_namespace, {"metadata": {"name": AUDITED}})
    (account,) = [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"]
    manifest = tmp_path / "rbac.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    apply_manifest(admin, manifest)
    # the DNS-01 TSIG key, where the config's secretRef points: the controller's namespace
    tsig = core.read_namespaced_secret("certbotk8s-tsig", "certbotk8s")
    _create(core.create_namespaced_secret, AUDITED,
            {"metadata": {"name": "certbotk8s-tsig"}, "data": tsig.data})
    token = core.create_namespaced_service_account_token(account, AUDITED, {
        "spec": {"audiences": [lab["KUBE_APISERVER"]], "expirationSeconds": 3600}}
    ).status.token
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "audited",
        "clusters": [{"name": "lab", "cluster": {"server": lab["KUBE_APISERVER"],
                                                 "certificate-authority": lab["KUBE_CA_FILE"]}}],
        "users": [{"name": "audited", "user": {"token": token}}],
        "contexts": [{"name": "audited", "context": {"cluster": "lab", "user": "audited"}}]}))
    return f"system:serviceaccount:{AUDITED}:{account}", kubeconfig


def _config(lab: Lab, tmp_path: Path, namespace: str, suffix: str, route: str) -> Path:
    """The lab's config with AUDITED as the controller's namespace, and hosts under `suffix`
    for `namespace` and istio-system only: what other tests left in the lab is refused."""
    data: dict[str, Any] = yaml.safe_load(Path(lab["CERTBOTK8S_CONFIG"]).read_text())
    data["controllerNamespace"] = AUDITED
    data["solver"]["http01"]["routeNamespace"] = route
    data["tenants"] = {"hostPatterns": {namespace: [f"*.{suffix}"],
                                        "istio-system": [f"*.{suffix}"]}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _ingress(admin: ApiClient, namespace: str, name: str, host: str,
             annotations: dict[str, str]) -> None:
    networking: Any = k8s.NetworkingV1Api(admin)
    networking.create_namespaced_ingress(namespace, {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"tls": [{"hosts": [host], "secretName": f"{name}-tls"}],
                 "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})


def _sources(admin: ApiClient, namespace: str, suffix: str) -> list[tuple[str, str]]:
    """An Ingress by HTTP-01 and by DNS-01, a Gateway API Gateway and an Istio Gateway by
    HTTP-01 (routing: Service + Ingress, HTTPRoute + ReferenceGrant, VirtualService);
    the Secrets they want."""
    uid = uuid.uuid4().hex[:6]
    _ingress(admin, namespace, "web", f"web-{uid}.{suffix}", HTTP01)
    _ingress(admin, namespace, "dns", f"dns-{uid}.{suffix}", {
        "certbotk8s.io/enabled": "true", "certbotk8s.io/challenge": "dns-01"})
    custom: Any = k8s.CustomObjectsApi(admin)
    group, version, plural = GATEWAY_API
    custom.create_namespaced_custom_object(group, version, namespace, plural, {
        "apiVersion": f"{group}/{version}", "kind": "Gateway",
        "metadata": {"name": "edge", "annotations": HTTP01},
        "spec": {"gatewayClassName": "example", "listeners": [
            {"name": "http", "protocol": "HTTP", "port": 80},
            {"name": "https", "protocol": "HTTPS", "port": 443,
             "hostname": f"gw-{uid}.{suffix}",
             "tls": {"mode": "Terminate", "certificateRefs": [{"name": "gw-tls"}]}}]}})
    group, version, plural = ISTIO
    istio_secret = f"mesh-{uid}-tls"
    custom.create_namespaced_custom_object(group, version, "istio-system", plural, {
        "apiVersion": f"{group}/{version}", "kind": "Gateway",
        "metadata": {"name": f"mesh-{uid}", "annotations": HTTP01},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
            {"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
             "hosts": [f"mesh-{uid}.{suffix}"],
             "tls": {"mode": "SIMPLE", "credentialName": istio_secret}},
            {"port": {"number": 80, "name": "http", "protocol": "HTTP"},
             "hosts": [f"mesh-{uid}.{suffix}"]}]}})
    return [(namespace, "web-tls"), (namespace, "dns-tls"), (namespace, "gw-tls"),
            ("istio-system", istio_secret)]


def _audited(log: Path, user: str, since: str) -> list[dict[str, Any]]:
    """`user`'s requests from `since` (RFC 3339) on, one per audit ID."""
    seen: dict[str, dict[str, Any]] = {}
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if (event.get("user") or {}).get("username") != user:
            continue
        if event["requestReceivedTimestamp"] < since:
            continue
        seen[event["auditID"]] = event  # ResponseComplete after ResponseStarted (watches)
    return list(seen.values())


def _request(event: dict[str, Any]) -> Request:
    ref = event.get("objectRef")
    if ref is None:
        return Request(event["verb"], path=event["requestURI"].split("?")[0])
    group, resource = ref.get("apiGroup") or "", ref.get("resource") or ""
    # the audit log names a Namespace's own namespace; it is cluster-scoped
    namespace = None if (group, resource) == ("", "namespaces") else ref.get("namespace")
    return Request(event["verb"], group, resource, ref.get("subresource") or "", namespace,
                   ref.get("name"))


def _declaring(request: Request, install: Install) -> list[ApiCall]:
    """The calls the ServiceAccount may make under `install` (its own, and those every user
    may make) that declare `request`, its namespace and name included."""
    def fits(call: ApiCall) -> bool:
        if call.caller is Caller.PERSON or not declares(call, request):
            return False
        if call.needed is Needed.ROUTE_IN_SOURCE and install.route_namespace != "source":
            return False
        if call.needed is Needed.CLUSTER_MODE and install.served:
            return False
        if call.where is Where.OWN and request.namespace != AUDITED:
            return False
        if call.where is Where.SERVED and install.served and \
                request.namespace not in install.served:
            return False
        return not call.names or request.name in call.names
    return [call for call in CALLS if fits(call)]


@pytest.fixture
def sources_namespace(admin_api: ApiClient) -> str:
    name = f"audit-{uuid.uuid4().hex[:8]}"
    core: Any = k8s.CoreV1Api(admin_api)
    core.create_namespace({"metadata": {"name": name}})
    return name


@pytest.fixture
def stopped() -> Iterator[list[ControllerProcess]]:
    procs: list[ControllerProcess] = []
    yield procs
    for proc in procs:
        proc.stop()


RbacSource = Callable[[ApiClient, Lab, list[str], str], list[dict[str, Any]]]
Must = set[tuple[str, str, str, Where]]
ROUTED_IN_SOURCE: Must = {
    ("create", "", "services", Where.SERVED), ("delete", "", "services", Where.SERVED),
    ("create", "networking.k8s.io", "ingresses", Where.SERVED),
    ("create", "networking.istio.io", "virtualservices", Where.SERVED),
    ("create", "gateway.networking.k8s.io", "httproutes", Where.SERVED),
    ("delete", "gateway.networking.k8s.io", "httproutes", Where.SERVED),
    ("create", "gateway.networking.k8s.io", "referencegrants", Where.OWN)}
ROUTED_HERE: Must = {
    ("create", "networking.k8s.io", "ingresses", Where.OWN),
    ("create", "networking.istio.io", "virtualservices", Where.OWN),
    ("create", "gateway.networking.k8s.io", "httproutes", Where.OWN),
    ("delete", "gateway.networking.k8s.io", "httproutes", Where.OWN)}
ALWAYS: Must = {("update", "coordination.k8s.io", "leases", Where.OWN),
                ("patch", "", "secrets", Where.OWN), ("create", "", "events", Where.SERVED)}
VARIANTS: dict[str, tuple[RbacSource, bool, str, Must]] = {
    # name: (RBAC, namespaced mode, routeNamespace, calls the run must have made)
    "kustomize-cluster-wide": (_kustomize_rbac, False, "source", ALWAYS | ROUTED_IN_SOURCE),
    "chart-namespaced-routes-here": (_chart_rbac, True, "controller", ALWAYS | ROUTED_HERE),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_request_of_a_real_run_is_declared_and_allowed(
        lab: Lab, admin_api: ApiClient, tmp_path: Path, sources_namespace: str,
        stopped: list[ControllerProcess], variant: str) -> None:
    rbac, namespaced, route, must = VARIANTS[variant]
    served = [sources_namespace, "istio-system"] if namespaced else []
    install = Install(AUDITED, tuple(served), route)
    log = Path(lab["KUBE_AUDIT_LOG"])
    user, kubeconfig = _identity(admin_api, lab, tmp_path, rbac(admin_api, lab, served, route))
    suffix = f"a{uuid.uuid4().hex[:8]}.{lab['DNS_ZONE']}"
    config = _config(lab, tmp_path, sources_namespace, suffix, route)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))

    # the controller, as the Deployment runs it: the default Lease
    ctl = NamespacedController(kubeconfig, served, lab, config, free_port(), LEADER_LEASE,
                               "audited-0", tmp_path).start()
    stopped.append(ctl)
    ctl.wait_leading(timeout=30)
    wanted = _sources(admin_api, sources_namespace, suffix)
    for namespace, name in wanted:
        wait_for(partial(read_secret, admin_api, namespace, name), 120,
                 f"Secret {namespace}/{name}\n{ctl.log()}")
    assert ctl.stop() == 0, ctl.log()

    # renew --once, as the CronJob runs it (the HTTP-01 port is free again)
    _ingress(admin_api, sources_namespace, "once", f"once-{uuid.uuid4().hex[:6]}.{suffix}",
             HTTP01)
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), CERTBOTK8S_CONFIG=str(config))
    scope = [arg for ns in served for arg in ("--namespace", ns)]
    run = subprocess.run([sys.executable, "-m", "certbotk8s.cli", "renew", "--once", *scope],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert read_secret(admin_api, sources_namespace, "once-tls") is not None, \
        run.stdout + run.stderr

    events = _audited(log, user, since)
    assert len(events) > 50, f"{len(events)} audited requests: is lab/kube.sh auditing?"
    # refused by RBAC (a 403 from admission, e.g. an Event in a namespace being deleted that
    # another test left, is not RBAC's)
    refused = [(e["verb"], e["requestURI"]) for e in events
               if (e.get("annotations") or {}).get("authorization.k8s.io/decision") != "allow"]
    assert refused == []
    requests = [_request(e) for e in events]
    undeclared = sorted({str(r) for r in requests if not r.path and not _declaring(r, install)})
    assert undeclared == []
    others = sorted({r.path for r in requests if r.path})
    assert all(p == "/readyz" or p.startswith(("/api", "/apis")) for p in others), others
    used = {call for r in requests for call in _declaring(r, install)}
    assert must <= {(c.verb, c.group, c.resource, c.where) for c in used}
    # for the record: declared calls this run had no occasion for (after a conflict, a
    # leader's death, a deleted namespace)
    print(f"\n{variant}: {len(events)} requests, {len(used)} declared calls used; unused:",
          *sorted({f"{c.verb} {c.group or 'core'}/{c.resource} ({c.where.name})"
                   for c in CALLS if c.caller is Caller.SERVICE_ACCOUNT and c not in used}),
          sep="\n  ")
