"""Fixtures for tests against the real lab servers started by lab/up (Pebble, BIND, kube)."""

from __future__ import annotations

import itertools
import os
import shlex
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from cryptography import x509
from kubernetes import client as k8s
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from certbotk8s.adapters.acme.engine import AcmeEngine
from certbotk8s.adapters.acme.network import RequestRecord
from certbotk8s.adapters.dns.propagation import DnsLookup, PropagationSettings
from certbotk8s.adapters.dns.rfc2136 import Rfc2136Provider, Rfc2136Settings
from certbotk8s.adapters.dns.solver import DnsSolver
from certbotk8s.adapters.http01.responder import (
    Http01Responder,
    Http01Solver,
    MemoryTokenStore,
    SelfCheck,
)
from certbotk8s.adapters.kube.sources import load_api_client
from certbotk8s.core.model import KeyType
from certbotk8s.core.pki import keys

ROOT = Path(__file__).resolve().parents[2]


def read_lab_env(path: Path) -> dict[str, str]:
    """Parse the `export KEY=value` lines lab/up writes (values shell-quoted)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        parts = shlex.split(line)
        if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
            key, value = parts[1].split("=", 1)
            env[key] = value
    return env


@dataclass(frozen=True)
class Lab:
    env: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return self.env[key]

    @property
    def http01_port(self) -> int:
        return int(self.env["HTTP01_PORT"])

    @property
    def dns_port(self) -> int:
        return int(self.env["DNS_SERVER"].rsplit(":", 1)[1])

    def host(self, prefix: str = "h") -> str:
        """A fresh name in the lab zone (resolves to 127.0.0.1 through BIND's wildcard)."""
        return f"{prefix}-{uuid.uuid4().hex[:12]}.{self.env['DNS_ZONE']}"

    def blocked_host(self) -> str:
        """A fresh name the lab's Pebble refuses (under its domainBlocklist entry): each test
        its own, so no other test's source already claims it."""
        return f"b-{uuid.uuid4().hex[:12]}.blocked.{self.env['DNS_ZONE']}"

    def roots(self, mgmt_key: str = "PEBBLE_MGMT") -> list[x509.Certificate]:
        """Pebble's live root(s): new at every Pebble start, so always read them."""
        return self.roots_at(0, mgmt_key)

    def roots_at(self, index: int, mgmt_key: str = "PEBBLE_MGMT") -> list[x509.Certificate]:
        base = self.env[mgmt_key]
        pem = requests.get(f"{base}/roots/{index}", verify=self.env["ACME_CA_BUNDLE"],
                           timeout=5)
        pem.raise_for_status()
        return x509.load_pem_x509_certificates(pem.content)

    def rfc2136(self, **overrides: object) -> Rfc2136Settings:
        """RFC 2136 settings for the lab's BIND (TSIG key from .lab/env)."""
        from dataclasses import replace

        settings = Rfc2136Settings(
            server=self.env["DNS_SERVER"],
            tsig_name=self.env["DNS_TSIG_NAME"],
            tsig_secret=self.env["DNS_TSIG_SECRET"],
            tsig_algorithm=self.env["DNS_TSIG_ALGORITHM"],
        )
        return replace(settings, **overrides)  # type: ignore[arg-type]

    def lookup(self, server_key: str = "DNS_SERVER", **overrides: object) -> DnsLookup:
        """The shared propagation check, asking the lab server `server_key` (host:port)."""
        from dataclasses import replace

        server = self.env[server_key]
        settings = PropagationSettings(resolver=server,
                                       nameserver_port=int(server.rsplit(":", 1)[1]),
                                       timeout=20.0)
        return DnsLookup(replace(settings, **overrides))  # type: ignore[arg-type]

    def dns01_solver(self, *, follow_cname: bool = True, **lookup: object) -> DnsSolver:
        """DNS-01 through the lab's BIND over RFC 2136, as the lab config has it."""
        return DnsSolver(Rfc2136Provider(self.rfc2136()), self.lookup("DNS_SERVER", **lookup),
                         name="lab-bind",
                         follow_cname=follow_cname)


@pytest.fixture(scope="session")
def lab() -> Lab:
    path = Path(os.environ.get("CERTBOTK8S_LAB_ENV", ROOT / ".lab" / "env"))
    if not path.exists():
        pytest.fail(f"{path} missing: start the lab with lab/up (scripts/test does this)")
    return Lab(read_lab_env(path))


@pytest.fixture(scope="session")
def token_store() -> MemoryTokenStore:
    return MemoryTokenStore()


@pytest.fixture(scope="module")
def responder(lab: Lab, token_store: MemoryTokenStore) -> Iterator[Http01Responder]:
    """The HTTP-01 responder on the port Pebble validates on, for one test module.

    Module scope frees the port for modules that run the CLI, which serves tokens itself.
    """
    with Http01Responder(token_store, "127.0.0.1", lab.http01_port) as server:
        yield server


@pytest.fixture
def http01_solver(lab: Lab, token_store: MemoryTokenStore, responder: Http01Responder
                  ) -> Http01Solver:
    return Http01Solver(
        token_store, SelfCheck(enabled=True, port=lab.http01_port, resolver=lab["DNS_SERVER"])
    )


@pytest.fixture
def dns01_solver(lab: Lab) -> DnsSolver:
    return lab.dns01_solver()


EngineFactory = Callable[..., AcmeEngine]


@pytest.fixture
def make_engine(lab: Lab) -> EngineFactory:
    def make(directory_key: str = "ACME_DIRECTORY", *, key_type: KeyType = KeyType.ECDSA_P256,
             requests_seen: list[RequestRecord] | None = None, **kwargs: object) -> AcmeEngine:
        return AcmeEngine(
            lab[directory_key],
            keys.generate_key(key_type),
            ca_bundle=lab["ACME_CA_BUNDLE"],
            email="ops@certbotk8s.test",
            observer=requests_seen.append if requests_seen is not None else None,
            **kwargs,  # type: ignore[arg-type]
        )

    return make


def verify_chain(fullchain_pem: bytes, roots: list[x509.Certificate]) -> list[x509.Certificate]:
    """Check every certificate is signed by the next and the last by one of `roots`."""
    chain = x509.load_pem_x509_certificates(fullchain_pem)
    for child, parent in itertools.pairwise(chain):
        child.verify_directly_issued_by(parent)
    top = chain[-1]
    errors = []
    for root in roots:
        try:
            top.verify_directly_issued_by(root)
            return chain
        except (ValueError, TypeError, Exception) as e:
            errors.append(e)
    raise AssertionError(f"chain does not lead to Pebble's live root: {errors}")


# --- Kubernetes ---------------------------------------------------------------------------

RBAC_MANIFEST = ROOT / "manifests" / "base" / "rbac.yaml"
LAB_RBAC_MANIFEST = ROOT / "tests" / "lab" / "lab_rbac.yaml"  # any Lease name (see the file)


def _kube_client(lab: Lab, key: str) -> ApiClient:
    if key not in lab.env:
        pytest.fail(f"{key} missing from .lab/env: the lab has no kube-apiserver (lab/up)")
    return load_api_client(lab[key])


@pytest.fixture(scope="session")
def admin_api(lab: Lab) -> Iterator[ApiClient]:
    """ApiClient with the lab's admin identity (system:masters)."""
    api = _kube_client(lab, "KUBECONFIG")
    yield api
    api.close()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
def controller_api(lab: Lab, controller_rbac: None) -> Iterator[ApiClient]:
    """ApiClient as system:serviceaccount:certbotk8s:certbotk8s, with manifests/base/rbac.yaml."""
    api = _kube_client(lab, "CONTROLLER_KUBECONFIG")
    yield api
    api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def namespace(admin_api: ApiClient) -> str:
    """A fresh namespace (never deleted: the lab has no namespace controller)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    k8s.CoreV1Api(admin_api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    return name


def apply_manifest(api: ApiClient, path: Path) -> None:
    """Create or replace every object of a YAML manifest (the kinds the manifests use)."""
    core = k8s.CoreV1Api(api)
    rbac = k8s.RbacAuthorizationV1Api(api)
    namespaced: dict[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
        "ServiceAccount": (core.create_namespaced_service_account,
                           core.read_namespaced_service_account,
                           core.replace_namespaced_service_account),
        "Role": (rbac.create_namespaced_role, rbac.read_namespaced_role,
                 rbac.replace_namespaced_role),
        "RoleBinding": (rbac.create_namespaced_role_binding, rbac.read_namespaced_role_binding,
                        rbac.replace_namespaced_role_binding),
    }
    cluster: dict[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
        "ClusterRole": (rbac.create_cluster_role, rbac.read_cluster_role,
                        rbac.replace_cluster_role),
        "ClusterRoleBinding": (rbac.create_cluster_role_binding, rbac.read_cluster_role_binding,
                               rbac.replace_cluster_role_binding),
    }
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        kind, meta = doc["kind"], doc["metadata"]
        if kind in namespaced:
            create, read, replace = namespaced[kind]
            scope: tuple[str, ...] = (meta["namespace"],)
        elif kind in cluster:
            create, read, replace = cluster[kind]
            scope = ()
        else:
            raise AssertionError(f"apply_manifest does not know kind {kind}")
        try:
            create(*scope, doc)
        except ApiException as e:
            if e.status != 409:
                raise
            current = read(meta["name"], *scope)
            doc["metadata"]["resourceVersion"] = current.metadata.resource_version
            replace(meta["name"], *scope, doc)


@pytest.fixture(scope="session")
def controller_rbac(admin_api: ApiClient) -> None:
    """manifests/base/rbac.yaml applied with the admin identity (namespace certbotk8s exists),
    plus the lab's Leases of any name (tests/lab/lab_rbac.yaml)."""
    apply_manifest(admin_api, RBAC_MANIFEST)
    apply_manifest(admin_api, LAB_RBAC_MANIFEST)


def read_secret(api: ApiClient, namespace: str, name: str) -> Any:
    """A Secret (typed client object) or None when it does not exist."""
    core: Any = k8s.CoreV1Api(api)
    try:
        return core.read_namespaced_secret(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


# The tenant fixtures (`tenants`, `controller`) shared by the attack suites; imported last: that
# module reads this one's names.
from .tenancy import controller, tenants  # noqa: E402,F401
