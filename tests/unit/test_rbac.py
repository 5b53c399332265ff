"""The RBAC of manifests/ grants exactly the Kubernetes API calls the code declares
(adapters/kube/api_calls.py), both ways; every request the adapters send is declared."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

from certbotk8s.adapters.kube import rest
from certbotk8s.adapters.kube.api_calls import (
    CALLS,
    Caller,
    Request,
    UndeclaredApiCall,
    classify,
    require,
)
from certbotk8s.adapters.kube.namespaces import KubeNamespaces
from certbotk8s.adapters.kube.rest import KubeRest
from certbotk8s.adapters.kube.sources import KubeSourceReader
from certbotk8s.core.state.inflight import NamespaceState
from tests.rbac import Doc, Install, differences, split_docs
from tests.unit.apiserver import FakeApiServer

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
SRC = ROOT / "src" / "certbotk8s"


def _load(path: Path) -> list[Doc]:
    return split_docs(yaml.safe_load_all(path.read_text()))


def test_base_rbac_grants_exactly_the_declared_calls() -> None:
    docs = _load(MANIFESTS / "base" / "rbac.yaml")
    assert differences(docs, Install("certbotk8s")) == ""


def test_namespaced_overlay_grants_exactly_the_declared_calls() -> None:
    overlay = MANIFESTS / "overlays" / "namespaced"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    deleted = {p["target"]["kind"] for p in kustomization["patches"]
               if "$patch: delete" in p["patch"]}
    assert deleted == {"ClusterRole", "ClusterRoleBinding"}
    docs = [d for d in _load(MANIFESTS / "base" / "rbac.yaml") if d["kind"] not in deleted]
    docs += _load(overlay / "roles.yaml")
    assert differences(docs, Install("certbotk8s", ("team-a", "team-b"))) == ""


def test_a_grant_no_call_uses_and_a_call_not_granted_are_both_reported() -> None:
    docs = _load(MANIFESTS / "base" / "rbac.yaml")
    (cluster_role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    cluster_role["rules"].append(
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]})
    (role,) = [d for d in docs if d["kind"] == "Role"]
    role["rules"] = [r for r in role["rules"] if r.get("resourceNames") is None]
    role["rules"].append({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                          "verbs": ["get", "update"]})  # no resourceNames: broader
    found = differences(docs, Install("certbotk8s"))
    assert "granted but used by no call" in found
    assert "cluster: events.k8s.io/events create" in found
    assert "own: coordination.k8s.io/leases get\n" in found + "\n"
    assert "needed by a call but not granted" in found
    assert "own: coordination.k8s.io/leases update [certbotk8s-leader]" in found


def test_the_cli_users_calls_are_not_the_service_accounts() -> None:
    person = {(c.verb, c.resource) for c in CALLS if c.caller is Caller.PERSON}
    assert person == {("list", "events"), ("get", "configmaps"), ("list", "configmaps")}


@pytest.mark.parametrize(("method", "path", "query", "request_info"), [
    ("GET", "/api/v1/namespaces/a/secrets", [("watch", "true")],
     Request("watch", "", "secrets", namespace="a")),
    ("GET", "/api/v1/namespaces/a/secrets",
     [("fieldSelector", "metadata.name=certbotk8s-http01-tokens"), ("limit", "500")],
     Request("list", "", "secrets", namespace="a", name="certbotk8s-http01-tokens")),
    ("GET", "/api/v1/secrets", [("labelSelector", "x=y")], Request("list", "", "secrets")),
    ("GET", "/api/v1/namespaces/gone", [], Request("get", "", "namespaces", name="gone")),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/c/leases/certbotk8s-leader", [],
     Request("update", "coordination.k8s.io", "leases", namespace="c",
             name="certbotk8s-leader")),
    ("PATCH", "/api/v1/namespaces/a/events/e.1", [], Request("patch", "", "events",
                                                             namespace="a", name="e.1")),
    ("DELETE", "/api/v1/namespaces/a/services", [],
     Request("deletecollection", "", "services", namespace="a")),
    ("PUT", "/apis/gateway.networking.k8s.io/v1/namespaces/a/gateways/g/status", [],
     Request("update", "gateway.networking.k8s.io", "gateways", "status", "a", "g")),
    ("GET", "/apis/gateway.networking.k8s.io/v1", [], Request("get", path="/apis/"
                                                              "gateway.networking.k8s.io/v1")),
])
def test_requests_are_read_as_the_api_servers_authorizer_reads_them(
        method: str, path: str, query: list[tuple[str, str]], request_info: Request) -> None:
    assert classify(method, path, query) == request_info


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", "/api/v1/namespaces/a/secrets/web-tls"),  # never deletes a Secret
    ("GET", "/api/v1/pods"),
    ("POST", "/apis/events.k8s.io/v1/namespaces/a/events"),
    ("GET", "/apis/networking.istio.io/v1/namespaces/a/gateways/web"),  # sources: list only
    ("GET", "/api/v1/namespaces"),  # one namespace by name, never the list
    ("PUT", "/apis/gateway.networking.k8s.io/v1/namespaces/a/gateways/g/status"),
    ("POST", "/version"),
])
def test_an_undeclared_request_is_refused(method: str, path: str) -> None:
    with pytest.raises(UndeclaredApiCall, match="undeclared Kubernetes API call"):
        require(method, path)


def test_declared_requests_pass() -> None:
    require("GET", "/api/v1/namespaces/a/secrets", [("watch", "true")])
    require("POST", "/apis/coordination.k8s.io/v1/namespaces/c/leases")
    require("GET", "/apis/gateway.networking.k8s.io/v1")  # discovery
    require("GET", "/readyz", [("verbose", "true")])


class _RecordingApi:
    """An ApiClient stand-in that records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def param_serialize(self, **kwargs: Any) -> tuple[Any, ...]:
        return (kwargs,)

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(args)
        raise AssertionError("sent")


def test_kube_rest_refuses_an_undeclared_request_before_sending_it() -> None:
    api = _RecordingApi()
    with pytest.raises(UndeclaredApiCall):
        KubeRest(api).delete(rest.secrets("a", "web-tls"))  # type: ignore[arg-type]
    assert api.sent == []


def _functions_sending_requests() -> list[tuple[str, ast.FunctionDef]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                    isinstance(n, ast.Attribute) and n.attr in ("call_api", "request")
                    and isinstance(n.value, ast.Attribute | ast.Name)
                    and getattr(n.value, "attr", getattr(n.value, "id", "")) in ("api", "_api")
                    for n in ast.walk(node)):
                found.append((f"{path.relative_to(SRC)}:{node.name}", node))
    return found


def test_every_request_to_the_api_server_is_checked_against_the_table() -> None:
    """Whatever sends a request (`ApiClient.call_api`) asks `require` first: the only way to
    the API server goes through the table."""
    senders = _functions_sending_requests()
    assert {name for name, _ in senders} == {
        "adapters/kube/rest.py:call", "adapters/kube/client.py:get_raw",
        "adapters/kube/client.py:failing_readiness_checks"}
    for name, function in senders:
        calls = [n.func.id for n in ast.walk(function)
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        assert "require" in calls, name


def test_namespaced_mode_asks_nothing_outside_its_namespaces() -> None:
    """Role-only RBAC grants no `get namespaces` and no cluster-wide list: the controller's
    namespace check answers UNKNOWN unasked, and `renew --once -n` asks whether it may list
    ReferenceGrants cluster-wide before it does (a Secret may live outside `-n` with
    cluster-wide RBAC), else lists them in its namespaces only."""
    api = _RecordingApi()
    assert KubeNamespaces(api, ask=False).state("apps") is NamespaceState.UNKNOWN  # type: ignore[arg-type]
    assert api.sent == []

    grants = "/apis/gateway.networking.k8s.io/v1beta1/namespaces/{}/referencegrants"
    for may, expected in ((False, [grants.format("apps"), grants.format("shop")]),
                          (True, ["/apis/gateway.networking.k8s.io/v1beta1/referencegrants"])):
        server = FakeApiServer(served={"referencegrants.gateway.networking.k8s.io": ("v1beta1",)},
                               access_allowed=may)
        KubeSourceReader(server).list_sources(["apps", "shop"])  # type: ignore[arg-type]
        listed = [path for path, _ in server.requests if path.endswith("/referencegrants")]
        assert listed == expected
