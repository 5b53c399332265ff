"""HTTP-01 routing from the source's namespace (`routeNamespace: source`) through real ACME
orders, as the controller's ServiceAccount with manifests/base/rbac.yaml."""

from __future__ import annotations

import json
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
    KubeRoutingPublisher,
    RoutedHttp01Solver,
    route_name,
)
from certbotk8s.core.errors import ChallengeFailed, Http01SolverError, KubeError
from certbotk8s.core.model import (
    CertificateSpec,
    ChallengeType,
    DesiredCertificate,
    HttpRouting,
    KeyType,
    ObjectRef,
    SecretRef,
    SourceKind,
)
from certbotk8s.core.ports import ChallengeSolver, PendingChallenge

from .conftest import EngineFactory, Lab

pytestmark = pytest.mark.lab

OWN = "certbotk8s"  # the namespace manifests/base/rbac.yaml binds the controller's Role in
SOLVER_HOST = f"certbotk8s-solver.{OWN}.svc.cluster.local"
GW_GROUP = "gateway.networking.k8s.io"

PLURALS = {"Ingress": "ingresses", "VirtualService": "virtualservices",
           "HTTPRoute": "httproutes", "ReferenceGrant": "referencegrants"}


def _read(admin: client.ApiClient, ref: ObjectRef) -> dict[str, Any] | None:
    try:
        if ref.kind == "Service":
            response = client.CoreV1Api(admin).read_namespaced_service(
                ref.name, ref.namespace, _preload_content=False)
            return cast(dict[str, Any], json.loads(cast(Any, response).data))
        group, version = ref.api_version.split("/")
        return cast(dict[str, Any], client.CustomObjectsApi(admin).get_namespaced_custom_object(
            group, version, ref.namespace, PLURALS[ref.kind], ref.name))
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def _routing(kind: SourceKind, source_ns: str) -> HttpRouting:
    if kind is SourceKind.INGRESS:
        return HttpRouting(kind, "lab", namespace=source_ns)
    api = "networking.istio.io/v1" if kind is SourceKind.ISTIO_GATEWAY else f"{GW_GROUP}/v1"
    gateway = ObjectRef(api, "Gateway", source_ns, "public")
    return HttpRouting(kind, gateway=gateway, listener="http", namespace=source_ns)


def _expected(kind: SourceKind, source_ns: str, order_id: str) -> list[ObjectRef]:
    """What an order for a source of `kind` in `source_ns` creates, route first."""
    name = route_name(order_id, kind)
    if kind is SourceKind.INGRESS:
        return [ObjectRef("networking.k8s.io/v1", "Ingress", source_ns, name),
                ObjectRef("v1", "Service", source_ns, name)]
    if kind is SourceKind.ISTIO_GATEWAY:
        return [ObjectRef("networking.istio.io/v1", "VirtualService", source_ns, name)]
    return [ObjectRef(f"{GW_GROUP}/v1", "HTTPRoute", source_ns, name),
            ObjectRef(f"{GW_GROUP}/v1beta1", "ReferenceGrant", OWN, name)]


class Probe:
    """Wraps the real HTTP-01 solver; reads the routing objects while the CA validates."""

    def __init__(self, inner: ChallengeSolver, admin: client.ApiClient,
                 refs: Sequence[ObjectRef]) -> None:
        self.inner = inner
        self.challenge_type = inner.challenge_type
        self.admin = admin
        self.refs = refs
        self.seen: list[list[dict[str, Any] | None]] = []

    def present(self, challenge: PendingChallenge) -> None:
        self.inner.present(challenge)

    def wait_until_ready(self, challenges: Sequence[PendingChallenge]) -> None:
        self.seen.append([_read(self.admin, r) for r in self.refs])
        self.inner.wait_until_ready(challenges)

    def clean_up(self, challenge: PendingChallenge) -> None:
        self.inner.clean_up(challenge)


class NoTokens:
    """Stores no token: the CA's validation gets a 404 and the order fails."""

    challenge_type = ChallengeType.HTTP01

    def present(self, challenge: PendingChallenge) -> None:
        pass

    def wait_until_ready(self, challenges: Sequence[PendingChallenge]) -> None:
        pass

    def clean_up(self, challenge: PendingChallenge) -> None:
        pass


@pytest.fixture
def publisher(controller_api: client.ApiClient) -> KubeRoutingPublisher:
    return KubeRoutingPublisher(controller_api, OWN)  # routeNamespace: source, the default


def _check_objects(kind: SourceKind, source_ns: str, hosts: Sequence[str],
                   seen: list[dict[str, Any] | None]) -> None:
    assert all(obj is not None for obj in seen), seen
    route = cast(dict[str, Any], seen[0])
    assert route["metadata"]["labels"]["certbotk8s.io/role"] == "http01-route"
    if kind is SourceKind.INGRESS:
        service = cast(dict[str, Any], seen[1])
        assert service["spec"]["type"] == "ExternalName"
        assert service["spec"]["externalName"] == SOLVER_HOST
        (rule, *_) = route["spec"]["rules"]
        assert sorted(r["host"] for r in route["spec"]["rules"]) == sorted(hosts)
        (path,) = rule["http"]["paths"]
        assert path["path"] == CHALLENGE_PATH
        # the backend is the Service next to the Ingress (an Ingress names no namespace)
        assert path["backend"]["service"] == {"name": service["metadata"]["name"],
                                              "port": {"number": 80}}
    elif kind is SourceKind.ISTIO_GATEWAY:
        assert route["spec"]["gateways"] == [f"{source_ns}/public"]  # a `./host` server
        (http,) = route["spec"]["http"]
        assert http["route"][0]["destination"]["host"] == SOLVER_HOST
    else:
        parent = route["spec"]["parentRefs"][0]
        assert (parent["namespace"], parent["sectionName"]) == (source_ns, "http")
        (backend,) = route["spec"]["rules"][0]["backendRefs"]
        assert (backend["namespace"], backend["name"]) == (OWN, "certbotk8s-solver")
        grant = cast(dict[str, Any], seen[1])
        assert grant["spec"]["from"] == [{"group": GW_GROUP, "kind": "HTTPRoute",
                                          "namespace": source_ns}]
        assert grant["spec"]["to"] == [{"group": "", "kind": "Service",
                                        "name": "certbotk8s-solver"}]


KINDS = [SourceKind.INGRESS, SourceKind.ISTIO_GATEWAY, SourceKind.GATEWAY_API]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
def test_order_routes_from_the_source_namespace_and_cleans_up(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver,
    admin_api: client.ApiClient, publisher: KubeRoutingPublisher, namespace: str,
    kind: SourceKind,
) -> None:
    hosts = tuple(sorted((lab.host("sa"), lab.host("sb"))))
    order_id = f"order-{uuid.uuid4().hex[:8]}"
    refs = _expected(kind, namespace, order_id)
    probe = Probe(http01_solver, admin_api, refs)
    solver = RoutedHttp01Solver(probe, publisher, _routing(kind, namespace), hosts, order_id)
    cert = make_engine().issue(OrderRequest(hosts=hosts, profile="default"),
                               {ChallengeType.HTTP01: solver})
    assert cert.info.sans == hosts
    (during,) = probe.seen
    _check_objects(kind, namespace, hosts, during)
    assert [_read(admin_api, r) for r in refs] == [None] * len(refs)
    assert solver.published == ()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.value)
def test_failed_order_removes_everything_it_created(
    lab: Lab, make_engine: EngineFactory, admin_api: client.ApiClient,
    publisher: KubeRoutingPublisher, namespace: str, kind: SourceKind,
) -> None:
    hosts = (lab.host("sf"),)
    order_id = f"order-{uuid.uuid4().hex[:8]}"
    refs = _expected(kind, namespace, order_id)
    probe = Probe(NoTokens(), admin_api, refs)
    solver = RoutedHttp01Solver(probe, publisher, _routing(kind, namespace), hosts, order_id)
    with pytest.raises(ChallengeFailed):
        make_engine().issue(OrderRequest(hosts=hosts, profile="default"),
                            {ChallengeType.HTTP01: solver})
    (during,) = probe.seen
    assert all(obj is not None for obj in during)  # they existed while the CA validated
    assert [_read(admin_api, r) for r in refs] == [None] * len(refs)


def test_a_tenant_object_of_that_name_is_left_alone_and_the_service_removed(
    admin_api: client.ApiClient, publisher: KubeRoutingPublisher, namespace: str,
) -> None:
    """The route's name is taken by a tenant's own Ingress: publishing fails, the tenant's
    Ingress is neither replaced nor deleted, the Service created first is removed again."""
    order_id = f"order-{uuid.uuid4().hex[:8]}"
    ingress_ref, service_ref = _expected(SourceKind.INGRESS, namespace, order_id)
    theirs = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
              "metadata": {"name": ingress_ref.name, "namespace": namespace},
              "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}
    client.CustomObjectsApi(admin_api).create_namespaced_custom_object(
        "networking.k8s.io", "v1", namespace, "ingresses", theirs)
    solver = RoutedHttp01Solver(NoTokens(), publisher, _routing(SourceKind.INGRESS, namespace),
                                ("x.example.test",), order_id)
    challenge = PendingChallenge(type=ChallengeType.HTTP01, domain="x.example.test",
                                 wildcard=False, token="t", key_authorization="t.k")
    with pytest.raises(Http01SolverError, match="not certbotk8s's"):
        solver.present(challenge)
    kept = _read(admin_api, ingress_ref)
    assert kept is not None and "defaultBackend" in kept["spec"]
    assert _read(admin_api, service_ref) is None
    with pytest.raises(KubeError, match="refusing"):
        publisher.remove([ObjectRef("v1", "Service", namespace, "web")])  # not a name of ours


def test_namespaces_not_served_are_refused_and_nothing_is_written(
    admin_api: client.ApiClient, controller_api: client.ApiClient, namespace: str,
) -> None:
    limited = KubeRoutingPublisher(controller_api, OWN, namespaces=("team-a",))
    order_id = f"order-{uuid.uuid4().hex[:8]}"
    for kind in KINDS:
        with pytest.raises(KubeError, match="not a namespace this controller serves"):
            limited.publish(_routing(kind, namespace), ["x.example.test"], order_id)
        assert [_read(admin_api, r) for r in _expected(kind, namespace, order_id)] == [
            None] * len(_expected(kind, namespace, order_id))


def test_sweep_removes_what_a_killed_leader_left_in_source_namespaces(
    admin_api: client.ApiClient, publisher: KubeRoutingPublisher, namespace: str,
) -> None:
    order_id = f"order-{uuid.uuid4().hex[:8]}"
    left: list[ObjectRef] = []
    for kind in KINDS:
        left += publisher.publish(_routing(kind, namespace), ["x.example.test"], order_id)
    assert all(_read(admin_api, r) is not None for r in left)
    swept = KubeRoutingPublisher(admin_api, OWN).sweep()  # the next leader
    assert {(r.kind, r.namespace, r.name) for r in left} <= {
        (r.kind, r.namespace, r.name) for r in swept}
    assert [_read(admin_api, r) for r in left] == [None] * len(left)


def test_the_controllers_orders_share_one_service_per_namespace_until_it_is_retired(
    lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver,
    admin_api: client.ApiClient, controller_api: client.ApiClient, namespace: str,
) -> None:
    """`share_services` (the controller): two real orders from one namespace route through
    one ExternalName Service, made once; each order's Ingress goes with the order, the Service
    stays for the next order until `retire_shared` finds no HTTP-01 source routing from there
    (or the leader stops), and is then gone."""
    shared = KubeRoutingPublisher(controller_api, OWN, share_services=True)
    service = ObjectRef("v1", "Service", namespace, shared.shared_service_name)
    routing = _routing(SourceKind.INGRESS, namespace)
    seen: list[list[dict[str, Any] | None]] = []
    uids: set[str] = set()
    for i in range(2):
        hosts = (lab.host(f"share{i}"),)
        order_id = f"order-{uuid.uuid4().hex[:8]}"
        route = ObjectRef("networking.k8s.io/v1", "Ingress", namespace,
                          route_name(order_id, SourceKind.INGRESS))
        probe = Probe(http01_solver, admin_api, [route, service])
        solver = RoutedHttp01Solver(probe, shared, routing, hosts, order_id)
        cert = make_engine().issue(OrderRequest(hosts=hosts, profile="default"),
                                   {ChallengeType.HTTP01: solver})
        assert cert.info.sans == hosts
        seen += probe.seen
        assert _read(admin_api, route) is None  # the order's own object is gone with it
        kept = _read(admin_api, service)
        assert kept is not None
        uids.add(kept["metadata"]["uid"])
    assert len(seen) == 2
    for route_obj, service_obj in seen:  # while the CA validated
        assert route_obj is not None and service_obj is not None
        assert service_obj["spec"]["type"] == "ExternalName"
        assert service_obj["spec"]["externalName"] == SOLVER_HOST
        (path,) = route_obj["spec"]["rules"][0]["http"]["paths"]
        assert path["backend"]["service"]["name"] == shared.shared_service_name
    assert len(uids) == 1  # one Service for both orders, never made twice
    wanted = DesiredCertificate(
        SecretRef(namespace, "web-tls"),
        CertificateSpec(hosts=(lab.host("share0"),), issuer="pebble",
                        challenge=ChallengeType.HTTP01, dns_provider=None,
                        key_type=KeyType.ECDSA_P256, profile=None, renew_before=None),
        ObjectRef("networking.k8s.io/v1", "Ingress", namespace, "web"), SourceKind.INGRESS,
        routing)
    assert shared.retire_shared([wanted]) == []  # the namespace still routes HTTP-01
    assert _read(admin_api, service) is not None
    assert shared.retire_shared([]) == [namespace]
    assert _read(admin_api, service) is None
