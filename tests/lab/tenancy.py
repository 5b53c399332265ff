"""Tenants for the lab's attack suites: each a namespace, a ServiceAccount bound to a Role
there (TENANT_RULES), and an API client with only that identity; plus a controller fixture."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client import ApiClient

from .conftest import Lab
from .controllers import ControllerProcess, wait_for

ISTIO = ("networking.istio.io", "v1", "gateways")
ISSUE_WITHIN = 60.0  # seconds for a certificate on a busy 2-core machine
TENANT_RULES = [
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": ["networking.istio.io", "gateway.networking.k8s.io"],
     "resources": ["gateways", "referencegrants"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["secrets"],
     "verbs": ["get", "list", "watch", "create", "update", "patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list"]},
]


@dataclass
class Tenant:
    """One team: its namespace, an API client with only its Role, and the domain it owns."""

    namespace: str
    api: ApiClient
    domain: str

    def host(self, prefix: str = "h") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}.{self.domain}"

    def ingress(self, name: str, hosts: list[str], secret: str | None = None,
                **annotations: str) -> None:
        body = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "annotations": {"certbotk8s.io/enabled": "true",
                                                           **annotations}},
                "spec": {"tls": [{"hosts": hosts, "secretName": secret or f"{name}-tls"}],
                         "defaultBackend": {"service": {"name": "web",
                                                        "port": {"number": 80}}}}}
        networking: Any = k8s.NetworkingV1Api(self.api)
        networking.create_namespaced_ingress(self.namespace, body)

    def istio_gateway(self, name: str, credential: str, hosts: list[str],
                      **annotations: str) -> None:
        body = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                "metadata": {"name": name, "annotations": {"certbotk8s.io/enabled": "true",
                                                           **annotations}},
                "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
                    {"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                     "hosts": hosts, "tls": {"mode": "SIMPLE", "credentialName": credential}},
                    {"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                     "hosts": hosts}]}}
        group, version, plural = ISTIO
        k8s.CustomObjectsApi(self.api).create_namespaced_custom_object(
            group, version, self.namespace, plural, body)


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _make_tenant(admin: ApiClient, lab: Lab, label: str) -> Tenant:
    """Namespace, ServiceAccount, Role and RoleBinding, and a TokenRequest token for it."""
    namespace = f"tenant-{label}-{_uid()}"
    core: Any = k8s.CoreV1Api(admin)
    rbac: Any = k8s.RbacAuthorizationV1Api(admin)
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "app"}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "app"}, "rules": TENANT_RULES})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "app"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "app"},
        "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": namespace}]})
    token = core.create_namespaced_service_account_token("app", namespace, {
        "spec": {"audiences": [lab["KUBE_APISERVER"]], "expirationSeconds": 3600}}).status.token
    config = k8s.Configuration(host=lab["KUBE_APISERVER"])
    config.ssl_ca_cert = lab["KUBE_CA_FILE"]
    config.api_key = {"authorization": token}
    config.api_key_prefix = {"authorization": "Bearer"}
    return Tenant(namespace, ApiClient(config), f"{label}-{_uid()}.{lab['DNS_ZONE']}")


@pytest.fixture
def tenants(admin_api: ApiClient, lab: Lab) -> Iterator[Callable[[str], Tenant]]:
    made: list[Tenant] = []

    def make(label: str) -> Tenant:
        tenant = _make_tenant(admin_api, lab, label)
        made.append(tenant)
        return tenant

    yield make
    for tenant in made:
        tenant.api.close()  # type: ignore[no-untyped-call]


Start = Callable[..., ControllerProcess]


def start_controller(lab: Lab, directory: Path, **overrides: Any) -> ControllerProcess:
    """One controller with lab config plus `overrides` (a dict updates the section it names),
    leading on a Lease of its own."""
    data = yaml.safe_load(Path(lab["CERTBOTK8S_CONFIG"]).read_text())
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    port = 19800 + os.getpid() % 150
    proc = ControllerProcess(lab, path, port, f"tenants-{_uid()}", f"tenants-{_uid()}",
                             directory).start()
    try:
        proc.wait_ready()
        wait_for(proc.is_leader, 15, "leadership")
    except BaseException:
        proc.stop()
        raise
    return proc


@pytest.fixture
def controller(lab: Lab, controller_api: ApiClient, tmp_path: Path) -> Iterator[Start]:
    """Start one controller with lab config plus `overrides`; stopped at the end of the test."""
    started: list[ControllerProcess] = []

    def start(**overrides: Any) -> ControllerProcess:
        proc = start_controller(lab, tmp_path, **overrides)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


class TenantPool:
    """Tenants made before their controller starts, so that its config can name them: each
    one's hostPatterns are its own domain and `shared` (a domain any of them may ask for), and
    each namespace may place Istio Gateways. Each test takes fresh ones (`take`)."""

    def __init__(self, tenants: list[Tenant], shared: str) -> None:
        self._unused = list(tenants)
        self.shared = shared
        self.controller: ControllerProcess | None = None

    def overrides(self) -> dict[str, Any]:
        return {"tenants": {"hostPatterns": {t.namespace: [f"*.{t.domain}", f"*.{self.shared}"]
                                             for t in self._unused}},
                "istio": {"allowedSourceNamespaces": [t.namespace for t in self._unused]}}

    def take(self, count: int) -> list[Tenant]:
        assert len(self._unused) >= count, "the tenant pool is used up: make it larger"
        taken, self._unused = self._unused[:count], self._unused[count:]
        return taken

    def running(self) -> ControllerProcess:
        assert self.controller is not None
        return self.controller


def tenant_pool(admin: ApiClient, lab: Lab, directory: Path, size: int
                ) -> Iterator[TenantPool]:
    """`size` tenants and one controller configured for them (see TenantPool), for a module."""
    made = [_make_tenant(admin, lab, f"p{i}") for i in range(size)]
    pool = TenantPool(made, f"shared-{_uid()}.{lab['DNS_ZONE']}")
    pool.controller = start_controller(lab, directory, **pool.overrides())
    try:
        yield pool
    finally:
        pool.controller.stop()
        for tenant in made:
            tenant.api.close()  # type: ignore[no-untyped-call]
