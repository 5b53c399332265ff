"""HTTP-01 routing objects (Ingress, VirtualService, HTTPRoute) in the controller namespace
(`routeNamespace: controller`) on the lab kube-apiserver."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from certbotk8s.adapters.acme.engine import OrderRequest
from certbotk8s.adapters.http01.responder import Http01Solver
from certbotk8s.adapters.http01.routing import (
    CHALLENGE_PATH,
    HTTP_ROUTE,
    VIRTUAL_SERVICE,
    VIRTUAL_SERVICE_V1BETA1,
    KubeRoutingPublisher,
    RoutedHttp01Solver,
    order_label_value,
    route_name,
)
from certbotk8s.adapters.kube.discovery import ServedVersions
from certbotk8s.core.errors import (
    ChallengeFailed,
    Http01SolverError,
    KubeError,
)
from certbotk8s.core.model import ChallengeType, HttpRouting, ObjectRef, SourceKind
from certbotk8s.core.ports import ChallengeSolver, PendingChallenge

from .conftest import EngineFactory, Lab

pytestmark = pytest.mark.lab

ORDER = "https://127.0.0.1:14000/my-order/AbC_123-xyz"
GATEWAY = ObjectRef("networking.istio.io/v1", "Gateway", "istio-system", "public")
GW_API_GATEWAY = ObjectRef("gateway.networking.k8s.io/v1", "Gateway", "gateways", "public")


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def own_ns(namespace: str) -> str:
    """A fresh namespace standing in for the controller's own."""
    return namespace


@pytest.fixture
def admin(admin_api: client.ApiClient) -> client.ApiClient:
    return admin_api


@pytest.fixture
def publisher(admin: client.ApiClient, own_ns: str) -> KubeRoutingPublisher:
    return KubeRoutingPublisher(admin, own_ns, solver_service="solver", solver_port=8089,
                                route_namespace="controller")


def _read(admin: client.ApiClient, ref: ObjectRef) -> dict[str, Any] | None:
    group, version = ref.api_version.split("/")
    plural = {"Ingress": "ingresses", "VirtualService": "virtualservices",
              "HTTPRoute": "httproutes"}[ref.kind]
    try:
        return cast(dict[str, Any], client.CustomObjectsApi(admin).get_namespaced_custom_object(
            group, version, ref.namespace, plural, ref.name))
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def _publish_read_remove(admin: client.ApiClient, publisher: KubeRoutingPublisher,
                         routing: HttpRouting, hosts: Sequence[str]) -> dict[str, Any]:
    """Publish, read back (checking the metadata every kind shares), remove, check it is gone."""
    refs = publisher.publish(routing, hosts, ORDER)
    assert len(refs) == 1
    ref = refs[0]
    assert ref.namespace == publisher.namespace
    assert ref.name == route_name(ORDER, routing.kind)
    assert ref.uid
    obj = _read(admin, ref)
    assert obj is not None
    meta = obj["metadata"]
    assert meta["labels"] == {
        "app.kubernetes.io/managed-by": "certbotk8s",
        "certbotk8s.io/role": "http01-route",
        "certbotk8s.io/order": order_label_value(ORDER),
        "certbotk8s.io/controller-namespace": publisher.namespace,
    }
    assert meta["annotations"]["certbotk8s.io/order-id"] == ORDER
    publisher.remove(refs)
    assert _read(admin, ref) is None
    publisher.remove(refs)  # already gone: still fine
    return obj


# -- the three kinds --------------------------------------------------------------------------


@pytest.mark.parametrize("path_type", ["ImplementationSpecific", "Prefix"])
def test_ingress_has_class_hosts_path_and_backend(
    admin: client.ApiClient, own_ns: str, path_type: str
) -> None:
    publisher = KubeRoutingPublisher(admin, own_ns, "solver", 8089, path_type, "controller")
    obj = _publish_read_remove(admin, publisher, HttpRouting(SourceKind.INGRESS, "nginx"),
                               ["a.example.test", "b.example.test"])
    assert obj["apiVersion"] == "networking.k8s.io/v1"
    spec = obj["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert "tls" not in spec
    assert [r["host"] for r in spec["rules"]] == ["a.example.test", "b.example.test"]
    for rule in spec["rules"]:
        assert rule["http"]["paths"] == [{
            "path": CHALLENGE_PATH,
            "pathType": path_type,
            "backend": {"service": {"name": "solver", "port": {"number": 8089}}},
        }]
    annotations = obj["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/ssl-redirect"] == "false"


def test_ingress_without_class_and_exact_path_type_becomes_prefix(
    admin: client.ApiClient, own_ns: str
) -> None:
    publisher = KubeRoutingPublisher(admin, own_ns, path_type="Exact",
                                     route_namespace="controller")
    obj = _publish_read_remove(admin, publisher, HttpRouting(SourceKind.INGRESS),
                               ["c.example.test"])
    assert "ingressClassName" not in obj["spec"]
    path = obj["spec"]["rules"][0]["http"]["paths"][0]
    assert path["pathType"] == "Prefix"
    assert path["backend"]["service"] == {"name": "certbotk8s-solver", "port": {"number": 80}}


@pytest.mark.parametrize("kind", [SourceKind.ISTIO_GATEWAY, SourceKind.ISTIO_FILE_MOUNT])
def test_istio_virtual_service_binds_to_the_gateway(
    admin: client.ApiClient, own_ns: str, publisher: KubeRoutingPublisher, kind: SourceKind
) -> None:
    routing = HttpRouting(kind, gateway=GATEWAY, listener="http")
    obj = _publish_read_remove(admin, publisher, routing, ["a.example.test", "b.example.test"])
    assert obj["apiVersion"] == VIRTUAL_SERVICE.api_version
    assert obj["kind"] == "VirtualService"
    spec = obj["spec"]
    assert spec["gateways"] == ["istio-system/public"]
    assert spec["hosts"] == ["a.example.test", "b.example.test"]
    assert spec["http"] == [{
        "name": "acme-http01",
        "match": [{"uri": {"prefix": CHALLENGE_PATH}}],
        "route": [{"destination": {"host": f"solver.{own_ns}.svc.cluster.local",
                                   "port": {"number": 8089}}}],
    }]


def test_istio_falls_back_to_v1beta1_when_v1_is_not_served(
    admin: client.ApiClient, own_ns: str
) -> None:
    class IstioBeforeV1(ServedVersions):
        """The real discovery, except that Istio's group serves v1beta1 only."""

        def _served(self, group_version: str, fresh: bool) -> frozenset[str]:
            if group_version == "networking.istio.io/v1":
                return frozenset()
            return super()._served(group_version, fresh)

    publisher = KubeRoutingPublisher(admin, own_ns, solver_service="solver", solver_port=8089,
                                     served=IstioBeforeV1(admin),
                                     route_namespace="controller")
    refs = publisher.publish(HttpRouting(SourceKind.ISTIO_GATEWAY, gateway=GATEWAY),
                             ["a.example.test"], ORDER)
    assert refs[0].api_version == VIRTUAL_SERVICE_V1BETA1.api_version
    obj = _read(admin, refs[0])
    assert obj is not None and obj["spec"]["gateways"] == ["istio-system/public"]
    publisher.remove(refs)
    assert _read(admin, refs[0]) is None


@pytest.mark.parametrize("listener", ["http", None])
def test_http_route_attaches_to_the_listener(
    admin: client.ApiClient, own_ns: str, publisher: KubeRoutingPublisher, listener: str | None
) -> None:
    routing = HttpRouting(SourceKind.GATEWAY_API, gateway=GW_API_GATEWAY, listener=listener)
    obj = _publish_read_remove(admin, publisher, routing, ["a.example.test", "b.example.test"])
    assert obj["apiVersion"] == HTTP_ROUTE.api_version
    spec = obj["spec"]
    parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway",
              "namespace": "gateways", "name": "public"}
    if listener:
        parent["sectionName"] = listener
    assert spec["parentRefs"] == [parent]
    assert spec["hostnames"] == ["a.example.test", "b.example.test"]
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": CHALLENGE_PATH}}]
    (backend,) = rule["backendRefs"]
    assert {k: backend[k] for k in ("group", "kind", "name", "port")} == {
        "group": "", "kind": "Service", "name": "solver", "port": 8089}


# -- idempotency, refusals, errors ------------------------------------------------------------


def test_publish_twice_for_one_order_replaces_the_object(
    admin: client.ApiClient, publisher: KubeRoutingPublisher
) -> None:
    routing = HttpRouting(SourceKind.INGRESS, "nginx")
    first = publisher.publish(routing, ["a.example.test"], ORDER)
    second = publisher.publish(routing, ["a.example.test", "b.example.test"], ORDER)
    assert first == second  # same name, same object (uid)
    obj = _read(admin, second[0])
    assert obj is not None
    assert [r["host"] for r in obj["spec"]["rules"]] == ["a.example.test", "b.example.test"]
    other = publisher.publish(routing, ["a.example.test"], ORDER + "-other")
    assert other[0].name != first[0].name
    publisher.remove(first + other)
    assert _read(admin, first[0]) is None and _read(admin, other[0]) is None


def test_default_certificate_needs_no_routing(publisher: KubeRoutingPublisher) -> None:
    assert publisher.publish(HttpRouting(SourceKind.CONFIG_CERTIFICATE), ["a.test"], ORDER) == []


def test_refusals(publisher: KubeRoutingPublisher) -> None:
    with pytest.raises(KubeError, match="wildcard"):
        publisher.publish(HttpRouting(SourceKind.INGRESS), ["*.example.test"], ORDER)
    with pytest.raises(KubeError, match="gateway"):
        publisher.publish(HttpRouting(SourceKind.GATEWAY_API), ["a.example.test"], ORDER)
    foreign = ObjectRef("networking.k8s.io/v1", "Ingress", "kube-system", "anything")
    with pytest.raises(KubeError, match="refusing"):
        publisher.remove([foreign])
    secret = ObjectRef("v1", "Secret", publisher.namespace, "anything")
    with pytest.raises(KubeError, match="refusing"):
        publisher.remove([secret])


def test_controller_identity_publishes_in_its_namespace_only(
    admin: client.ApiClient, controller_api: client.ApiClient, own_ns: str
) -> None:
    """With manifests/base/rbac.yaml and routeNamespace: controller: every kind is published
    (and updated) in namespace certbotk8s; a ReferenceGrant elsewhere is 403."""
    own = KubeRoutingPublisher(controller_api, "certbotk8s", route_namespace="controller")
    order = f"order-{uuid.uuid4().hex[:8]}"
    routings = [
        HttpRouting(SourceKind.INGRESS, "nginx"),
        HttpRouting(SourceKind.ISTIO_GATEWAY, gateway=GATEWAY),
        HttpRouting(SourceKind.GATEWAY_API, gateway=GW_API_GATEWAY, listener="http"),
    ]
    refs: list[ObjectRef] = []
    try:
        for routing in routings:
            refs += own.publish(routing, ["a.example.test"], order)
            refs += own.publish(routing, ["a.example.test", "b.example.test"], order)  # update
        assert len({r.name for r in refs}) == 3
        assert all(_read(admin, r) is not None for r in refs)
    finally:
        own.remove(refs)
    assert all(_read(admin, r) is None for r in refs)

    # A ReferenceGrant is only ever created in the controller namespace: RBAC agrees.
    grant = {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
             "metadata": {"name": "certbotk8s-http01-x"},
             "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                "namespace": "certbotk8s"}],
                      "to": [{"group": "", "kind": "Service"}]}}
    with pytest.raises(ApiException) as forbidden:
        client.CustomObjectsApi(controller_api).create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1beta1", own_ns, "referencegrants", grant)
    assert forbidden.value.status == 403


# -- through a real ACME order ----------------------------------------------------------------


class IngressProbe:
    """Wraps the real HTTP-01 solver; records whether the routing Ingress existed meanwhile."""

    def __init__(self, inner: ChallengeSolver, admin: client.ApiClient, ref: ObjectRef,
                 fail_in: str | None = None) -> None:
        self.inner = inner
        self.challenge_type = inner.challenge_type
        self.admin = admin
        self.ref = ref
        self.fail_in = fail_in
        self.seen: list[dict[str, Any] | None] = []

    def present(self, challenge: PendingChallenge) -> None:
        if self.fail_in == "present":
            raise Http01SolverError("forced failure in present")
        self.inner.present(challenge)

    def wait_until_ready(self, challenges: Sequence[PendingChallenge]) -> None:
        self.seen.append(_read(self.admin, self.ref))
        if self.fail_in == "wait":
            raise Http01SolverError("forced failure in wait_until_ready")
        self.inner.wait_until_ready(challenges)

    def clean_up(self, challenge: PendingChallenge) -> None:
        self.inner.clean_up(challenge)


def _routed(probe: IngressProbe, publisher: KubeRoutingPublisher, hosts: tuple[str, ...],
            order_id: str) -> RoutedHttp01Solver:
    return RoutedHttp01Solver(probe, publisher, HttpRouting(SourceKind.INGRESS, "lab"),
                              hosts, order_id)


def test_acme_order_routes_while_pending_and_cleans_up(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver, admin: client.ApiClient,
    publisher: KubeRoutingPublisher, own_ns: str
) -> None:
    hosts = tuple(sorted((lab.host("ra"), lab.host("rb"))))
    order_id = f"order-{uuid.uuid4().hex[:8]}"
    ref = ObjectRef("networking.k8s.io/v1", "Ingress", own_ns,
                    route_name(order_id, SourceKind.INGRESS))
    probe = IngressProbe(http01_solver, admin, ref)
    cert = make_engine().issue(OrderRequest(hosts=hosts, profile="default"),
                               {ChallengeType.HTTP01: _routed(probe, publisher, hosts, order_id)})
    assert cert.info.sans == hosts
    (during,) = probe.seen
    assert during is not None
    assert during["spec"]["ingressClassName"] == "lab"
    assert sorted(r["host"] for r in during["spec"]["rules"]) == list(hosts)
    assert _read(admin, ref) is None


@pytest.mark.parametrize("fail_in", ["present", "wait", "ca"])
def test_failed_acme_order_removes_the_routing(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver, admin: client.ApiClient,
    publisher: KubeRoutingPublisher, own_ns: str, fail_in: str
) -> None:
    hosts = (lab.host("rf"),)
    order_id = f"order-{uuid.uuid4().hex[:8]}"
    ref = ObjectRef("networking.k8s.io/v1", "Ingress", own_ns,
                    route_name(order_id, SourceKind.INGRESS))
    inner: ChallengeSolver = http01_solver
    if fail_in == "ca":
        # no token is ever stored, so the CA's validation gets a 404 and fails the order
        inner = _NoTokens()
    probe = IngressProbe(inner, admin, ref, fail_in=None if fail_in == "ca" else fail_in)
    solver = _routed(probe, publisher, hosts, order_id)
    expected: type[Exception] = ChallengeFailed if fail_in == "ca" else Http01SolverError
    with pytest.raises(expected):
        make_engine().issue(OrderRequest(hosts=hosts, profile="default"),
                            {ChallengeType.HTTP01: solver})
    if fail_in != "present":
        assert probe.seen and probe.seen[0] is not None  # it did exist while pending
    assert _read(admin, ref) is None
    assert solver.published == ()


class _NoTokens:
    challenge_type = ChallengeType.HTTP01

    def present(self, challenge: PendingChallenge) -> None:
        pass

    def wait_until_ready(self, challenges: Sequence[PendingChallenge]) -> None:
        pass

    def clean_up(self, challenge: PendingChallenge) -> None:
        pass
