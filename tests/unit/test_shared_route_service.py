"""One ExternalName Service per source namespace across HTTP-01 orders (the controller's
`share_services`): the writes it saves, and that a route never points at a missing Service."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

import pytest
from kubernetes.client import ApiClient

from certbotk8s.adapters.http01.routing import KubeRoutingPublisher
from certbotk8s.core.errors import KubeError
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
from tests.unit.object_api import ObjectApi

OWN = "certbotk8s"
SOLVER = f"certbotk8s-solver.{OWN}.svc.cluster.local"


def _publisher(api: ObjectApi, share: bool = True) -> KubeRoutingPublisher:
    return KubeRoutingPublisher(cast(ApiClient, api), OWN, share_services=share)


def _ingress(namespace: str = "shop") -> HttpRouting:
    return HttpRouting(SourceKind.INGRESS, "nginx", namespace=namespace)


def _wanted(namespace: str, challenge: ChallengeType = ChallengeType.HTTP01
            ) -> DesiredCertificate:
    """A certificate wanted by an Ingress in `namespace`."""
    spec = CertificateSpec(hosts=("a.example.com",), issuer="le", challenge=challenge,
                           dns_provider=None, key_type=KeyType.ECDSA_P256, profile=None,
                           renew_before=None)
    return DesiredCertificate(SecretRef(namespace, "web-tls"), spec,
                              ObjectRef("networking.k8s.io/v1", "Ingress", namespace, "web"),
                              SourceKind.INGRESS, _ingress(namespace))


def _backend(api: ObjectApi, route: ObjectRef) -> str:
    ingress = cast(dict[str, Any], api.named("ingresses", route.namespace, route.name))
    return str(ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"])


def _routes_reach_the_solver(api: ObjectApi, routes: list[ObjectRef]) -> None:
    """Every route's backend Service exists and points at the solver."""
    for route in routes:
        service = api.named("services", route.namespace, _backend(api, route))
        assert service is not None, f"{route} routes to a missing Service"
        assert service["spec"]["externalName"] == SOLVER


def test_orders_in_one_namespace_share_one_service_created_once() -> None:
    api = ObjectApi()
    publisher = _publisher(api)
    first = publisher.publish(_ingress(), ["a.example.com"], "order-1")
    second = publisher.publish(_ingress(), ["b.example.com"], "order-2")
    assert [r.kind for r in first + second] == ["Ingress", "Ingress"]  # not an order's object
    _routes_reach_the_solver(api, first + second)
    assert api.writes("services") == [("POST", "/api/v1/namespaces/shop/services")]
    publisher.remove(first)
    publisher.remove(second)
    assert api.writes("services") == [("POST", "/api/v1/namespaces/shop/services")]
    # the next order: the Service was free, so it is read again, and not written
    before = len(api.calls)
    third = publisher.publish(_ingress(), ["c.example.com"], "order-3")
    _routes_reach_the_solver(api, third)
    service_calls = [c for c in api.calls[before:] if "/services" in c[1]]
    assert service_calls == [("GET", f"/api/v1/namespaces/shop/services/"
                                     f"{publisher.shared_service_name}")]
    assert len(api.writes("services")) == 1


def test_without_sharing_each_order_creates_and_deletes_its_own() -> None:
    api = ObjectApi()
    publisher = _publisher(api, share=False)
    for order in ("order-1", "order-2"):
        refs = publisher.publish(_ingress(), ["a.example.com"], order)
        _routes_reach_the_solver(api, refs[:1])
        publisher.remove(refs)
    assert [m for m, _ in api.writes("services")] == ["POST", "DELETE"] * 2
    assert api.objects == {}


def test_a_burst_checks_and_creates_the_service_once() -> None:
    api = ObjectApi()
    publisher = _publisher(api)
    routes: list[ObjectRef] = []
    start = threading.Barrier(8)

    def order(i: int) -> None:
        start.wait()
        routes.extend(publisher.publish(_ingress(), [f"h{i}.example.com"], f"order-{i}"))

    threads = [threading.Thread(target=order, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(routes) == 8
    _routes_reach_the_solver(api, routes)
    assert [m for m, p in api.calls if "/services" in p] == ["GET", "POST"]


def test_retire_deletes_only_services_no_order_holds_in_namespaces_not_kept() -> None:
    api = ObjectApi()
    publisher = _publisher(api)
    shop = publisher.publish(_ingress("shop"), ["a.example.com"], "order-1")
    blog = publisher.publish(_ingress("blog"), ["b.example.com"], "order-2")
    publisher.remove(blog)
    assert publisher.retire_shared(()) == ["blog"]  # shop's is held by order-1
    assert api.named("services", "blog", publisher.shared_service_name) is None
    _routes_reach_the_solver(api, shop)
    publisher.remove(shop)
    assert publisher.retire_shared([_wanted("shop")]) == []  # shop still has HTTP-01 sources
    assert publisher.retire_shared(()) == ["shop"]
    assert api.objects == {}
    before = len(api.calls)
    assert publisher.retire_shared(()) == []  # nothing left: no request either
    assert api.calls[before:] == []
    # a later order there makes it again
    again = publisher.publish(_ingress("shop"), ["a.example.com"], "order-3")
    _routes_reach_the_solver(api, again)


def test_a_service_a_tenant_changed_or_deleted_is_repaired_before_it_is_used() -> None:
    api = ObjectApi()
    publisher = _publisher(api)
    publisher.remove(publisher.publish(_ingress(), ["a.example.com"], "order-1"))
    service = cast(dict[str, Any], api.named("services", "shop", publisher.shared_service_name))
    service["spec"]["externalName"] = "tenant.example.net"
    routes = publisher.publish(_ingress(), ["a.example.com"], "order-2")
    _routes_reach_the_solver(api, routes)
    assert [m for m, _ in api.writes("services")] == ["POST", "PUT"]
    publisher.remove(routes)
    api.objects.clear()  # deleted by the tenant
    routes = publisher.publish(_ingress(), ["a.example.com"], "order-3")
    _routes_reach_the_solver(api, routes)
    assert [m for m, _ in api.writes("services")] == ["POST", "PUT", "POST"]


def test_a_tenant_service_of_that_name_is_left_alone_and_nothing_is_routed() -> None:
    api = ObjectApi()
    publisher = _publisher(api)
    theirs = {"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": publisher.shared_service_name, "namespace": "shop"},
              "spec": {"type": "ExternalName", "externalName": "tenant.example.net"}}
    api.call_api("POST", "/api/v1/namespaces/shop/services", {}, theirs)
    api.calls.clear()
    with pytest.raises(KubeError, match="not certbotk8s's"):
        publisher.publish(_ingress(), ["a.example.com"], "order-1")
    assert api.writes() == []
    kept = cast(dict[str, Any], api.named("services", "shop", publisher.shared_service_name))
    assert kept["spec"]["externalName"] == "tenant.example.net"
    assert publisher.retire_shared(()) == []  # never ours: never deleted


def test_a_failed_route_releases_the_service() -> None:
    api = ObjectApi()
    publisher = _publisher(api)
    refs = publisher.publish(_ingress(), ["a.example.com"], "order-1")
    publisher.remove(refs)
    # the next order's route name is taken by a tenant Ingress
    taken = publisher.publish(_ingress(), ["a.example.com"], "order-2")
    ingress = cast(dict[str, Any], api.named("ingresses", "shop", taken[0].name))
    publisher.remove(taken)
    ingress["metadata"]["labels"] = {}
    api.call_api("POST", "/apis/networking.k8s.io/v1/namespaces/shop/ingresses", {}, ingress)
    with pytest.raises(KubeError, match="not certbotk8s's"):
        publisher.publish(_ingress(), ["a.example.com"], "order-2")
    assert publisher.retire_shared(()) == ["shop"]  # held by no order


def test_sweep_deletes_every_shared_service_and_the_next_order_makes_it_again() -> None:
    """The sweep (a new leader, before it orders) removes what a dead leader left: routes and
    shared Services alike. This process then knows its Services are gone."""
    api = ObjectApi()
    publisher = _publisher(api)
    publisher.publish(_ingress("shop"), ["a.example.com"], "order-1")  # its leader died
    publisher.remove(publisher.publish(_ingress("blog"), ["b.example.com"], "order-2"))
    swept = _publisher(api).sweep()  # the next leader
    name = publisher.shared_service_name
    assert {("Service", "blog", name), ("Service", "shop", name)} <= {
        (r.kind, r.namespace, r.name) for r in swept}
    assert api.objects == {}
    publisher.sweep()  # this process taking up leadership again: forgets what it made
    routes = publisher.publish(_ingress("shop"), ["a.example.com"], "order-3")
    _routes_reach_the_solver(api, routes)


def test_two_installations_never_share_a_service() -> None:
    api = ObjectApi()
    ours = _publisher(api)
    theirs = KubeRoutingPublisher(cast(ApiClient, api), "other", share_services=True)
    assert ours.shared_service_name != theirs.shared_service_name
    routes: list[Callable[[], object]] = [
        lambda: ours.publish(_ingress(), ["a.example.com"], "o-1"),
        lambda: theirs.publish(_ingress(), ["b.example.com"], "o-2")]
    for publish in routes:
        publish()
    assert len([p for p in api.objects if "/services/" in p]) == 2


def test_a_namespace_whose_certificates_left_http01_loses_its_service() -> None:
    api = ObjectApi()
    publisher = _publisher(api)
    publisher.remove(publisher.publish(_ingress("shop"), ["a.example.com"], "order-1"))
    assert publisher.retire_shared([_wanted("shop")]) == []
    # the same source now asks for DNS-01: no HTTP-01 order will route from there
    assert publisher.retire_shared([_wanted("shop", ChallengeType.DNS01)]) == ["shop"]
    assert api.objects == {}
