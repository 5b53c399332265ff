"""Where HTTP-01 routing objects go (`solver.http01.routeNamespace`) and where they may not."""

from __future__ import annotations

import pytest
from kubernetes import client

from certbotk8s.adapters.http01.routing import KubeRoutingPublisher
from certbotk8s.core.config.settings import ConfigError
from certbotk8s.core.errors import KubeError
from certbotk8s.core.model import HttpRouting, ObjectRef, SourceKind
from tests.unit.factories import make_config

GW = ObjectRef("gateway.networking.k8s.io/v1", "Gateway", "edge", "public")


def _nowhere() -> client.ApiClient:
    """An API client whose every request would fail: the tests prove none is made."""
    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:1"
    return client.ApiClient(configuration)


def test_the_route_goes_where_the_proxy_reads_the_source() -> None:
    source = KubeRoutingPublisher(_nowhere(), "certbotk8s")
    ingress = HttpRouting(SourceKind.INGRESS, "nginx", namespace="shop")
    gateway = HttpRouting(SourceKind.GATEWAY_API, gateway=GW, namespace="shop")
    assert source.target_namespace(ingress) == "shop"
    assert source.target_namespace(gateway) == "edge"  # the Gateway's, for allowedRoutes: Same
    controller = KubeRoutingPublisher(_nowhere(), "certbotk8s", route_namespace="controller")
    assert controller.target_namespace(gateway) == "certbotk8s"


def test_only_served_namespaces_and_our_own_are_written() -> None:
    limited = KubeRoutingPublisher(_nowhere(), "certbotk8s", namespaces=("team-a",))
    assert limited.may_write("certbotk8s") and limited.may_write("team-a")
    assert not limited.may_write("team-b")
    controller = KubeRoutingPublisher(_nowhere(), "certbotk8s", route_namespace="controller")
    assert not controller.may_write("team-a")
    for kind, routing in ((SourceKind.INGRESS, HttpRouting(SourceKind.INGRESS,
                                                           namespace="team-b")),
                          (SourceKind.GATEWAY_API, HttpRouting(SourceKind.GATEWAY_API,
                                                               gateway=GW, namespace="x"))):
        with pytest.raises(KubeError, match="not a namespace this controller serves"):
            limited.publish(routing, ["a.example.com"], f"order-{kind.value}")
    with pytest.raises(KubeError, match="refusing"):
        limited.remove([ObjectRef("v1", "Service", "team-b", "certbotk8s-http01-abc")])
    with pytest.raises(KubeError, match="refusing"):  # never a ReferenceGrant outside our own
        limited.remove([ObjectRef("gateway.networking.k8s.io/v1beta1", "ReferenceGrant",
                                  "team-a", "certbotk8s-http01-abc")])
    with pytest.raises(KubeError, match="refusing"):  # never a name we do not give
        limited.remove([ObjectRef("v1", "Service", "team-a", "web")])


def test_route_namespace_is_validated() -> None:
    assert make_config().solver.http01.route_namespace == "source"
    config = make_config(solver={"http01": {"routeNamespace": "controller"}})
    assert config.solver.http01.route_namespace == "controller"
    with pytest.raises(ConfigError, match=r"solver\.http01\.routeNamespace: must be one of"):
        make_config(solver={"http01": {"routeNamespace": "elsewhere"}})
