"""Sources of several namespaces writing into one (Istio Gateways into istio-system, Gateway API
Gateways through a ReferenceGrant): claimants, keys, patterns."""

from __future__ import annotations

from typing import Any

from certbotk8s.core.model import Discovery, SecretRef
from certbotk8s.core.sources.claimants import claimant_namespace
from certbotk8s.core.sources.ownership import Holding, discover_owned, order_share_key

from .factories import (
    T0,
    gateway,
    istio_gateway,
    istio_server,
    listener,
    make_config,
    reference_grant,
    secret_ref,
)

ISTIO = {"allowedSourceNamespaces": ["shop", "pay"]}
LEGACY = "/etc/istio/ingressgateway-certs/tls.crt"


def _sds(namespace: str, credential: str, *hosts: str, created: str = "",
         name: str = "gw") -> dict[str, Any]:
    gw = istio_gateway(name, namespace, servers=[istio_server(*hosts, credential=credential)])
    if created:
        gw["metadata"]["creationTimestamp"] = created
    return gw


def _mounted(namespace: str, *hosts: str) -> dict[str, Any]:
    return istio_gateway("legacy", namespace,
                         servers=[istio_server(*hosts, server_certificate=LEGACY)])


def _run(*gateways: dict[str, Any], holdings: tuple[Holding, ...] = (),
         **config: Any) -> Discovery:
    return discover_owned([], list(gateways), [], [], make_config(istio=ISTIO, **config),
                          holdings)


def _reasons(found: Discovery) -> list[tuple[str, str]]:
    return sorted((p.source.namespace, p.reason) for p in found.problems)


OLDER, NEWER = "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"
WEB = SecretRef("istio-system", "web")


def test_two_namespaces_naming_one_credential_never_share_its_key_unclaimed() -> None:
    """Finding 8: Gateways in `shop` and `pay` naming one `credentialName` with the same hosts
    were merged into one order and one key for both. Now the older source's namespace claims
    the hosts and keeps the Secret; the other is refused with an Event on its Gateway."""
    shop = _sds("shop", "web", "shop.example.com", created=OLDER)
    pay = _sds("pay", "web", "shop.example.com", created=NEWER)
    for listed in ((shop, pay), (pay, shop)):
        found = _run(*listed)
        assert [(d.secret, d.source.namespace) for d in found.desired] == [(WEB, "shop")]
        assert _reasons(found) == [("pay", "HostClaimed")]


def test_the_namespace_holding_the_hosts_keeps_the_shared_credential() -> None:
    """`pay`'s Gateway is older, but `shop` holds the hosts (its certificate was written into
    the Secret): `shop` keeps renewing, `pay` is refused."""
    held = (Holding(WEB, ("shop.example.com",), "Gateway/shop/gw", T0),)
    found = _run(_sds("shop", "web", "shop.example.com", created=NEWER),
                 _sds("pay", "web", "shop.example.com", created=OLDER), holdings=held)
    assert [d.source.namespace for d in found.desired] == ["shop"]
    assert _reasons(found) == [("pay", "HostClaimed")]


def test_with_shared_hosts_one_secret_still_goes_to_one_namespace() -> None:
    """`tenants.shareHosts` lets two namespaces hold one host, never one key: the Secret goes
    to the namespace it was last written for (else the older source), the other gets
    SecretConflict naming the keeper."""
    tenants = {"shareHosts": True}
    shop = _sds("shop", "web", "shop.example.com", created=NEWER)
    pay = _sds("pay", "web", "shop.example.com", created=OLDER)
    found = _run(shop, pay, tenants=tenants)
    assert [d.source.namespace for d in found.desired] == ["pay"]
    assert _reasons(found) == [("shop", "SecretConflict")]
    held = (Holding(WEB, ("shop.example.com",), "Gateway/shop/gw", T0),)
    found = _run(shop, pay, holdings=held, tenants=tenants)
    assert [d.source.namespace for d in found.desired] == ["shop"]
    (problem,) = found.problems
    assert (problem.source.namespace, problem.reason) == ("pay", "SecretConflict")
    assert "Gateway/shop/gw of namespace shop too, which keeps it" in problem.message


def test_gateways_of_one_namespace_still_share_one_credential() -> None:
    found = _run(_sds("shop", "web", "shop.example.com", name="a"),
                 _sds("shop", "web", "shop.example.com", name="b"))
    assert [(d.secret, d.source.name) for d in found.desired] == [(WEB, "a")]
    assert found.problems == ()


def test_a_host_held_through_istio_is_refused_to_another_namespaces_gateway() -> None:
    """The claim is the Gateway's namespace, not istio-system's: `pay` cannot have `shop`'s
    host in a Secret of its own name either (before, both counted as istio-system)."""
    held = (Holding(WEB, ("shop.example.com",), "Gateway/shop/gw", T0),)
    found = _run(_sds("shop", "web", "shop.example.com"),
                 _sds("pay", "mine", "shop.example.com"), holdings=held)
    assert [d.secret for d in found.desired] == [WEB]
    assert _reasons(found) == [("pay", "HostClaimed")]


def test_istio_orders_are_shared_only_inside_the_gateways_namespace() -> None:
    found = _run(_sds("shop", "a", "x.example.com", name="one"),
                 _sds("shop", "b", "x.example.com", name="two"),
                 _sds("pay", "c", "y.example.com"), tenants={"shareHosts": True})
    keys = {d.secret.name: order_share_key(d) for d in found.desired}
    assert keys["a"] == keys["b"]
    other = _run(_sds("pay", "c", "x.example.com"), tenants={"shareHosts": True}).desired[0]
    assert order_share_key(other) != keys["a"]  # same Secret namespace and spec, other tenant


def test_the_claimant_is_the_sources_namespace_but_for_the_file_mount_and_the_config() -> None:
    assert claimant_namespace(WEB, "Gateway/shop/gw") == "shop"
    assert claimant_namespace(SecretRef("certs", "wild"), "Gateway/edge/gw") == "edge"
    assert claimant_namespace(SecretRef("istio-system", "istio-ingressgateway-certs"),
                              "Gateway/shop/legacy") == "istio-system"
    assert claimant_namespace(SecretRef("ingress-nginx", "default"),
                              "Config/certbotk8s/default") == "ingress-nginx"
    for unknown in ("", "garbage", "Gateway//gw", "Gateway/shop"):
        assert claimant_namespace(WEB, unknown) == "istio-system"


def test_file_mount_checks_each_gateways_hosts_against_its_own_namespace() -> None:
    """Finding 8: the file-mount certificate checked the first Gateway's namespace alone. Now
    each Gateway's hosts are checked against its own namespace's patterns: a Gateway asking
    for another team's host is left out (with an Event), the others still get theirs."""
    tenants = {"hostPatterns": {"shop": ["*.shop.example.com"], "pay": ["*.pay.example.com"]}}
    found = _run(_mounted("pay", "www.pay.example.com"), _mounted("shop", "www.shop.example.com"),
                 tenants=tenants)
    (cert,) = found.desired
    assert cert.secret == SecretRef("istio-system", "istio-ingressgateway-certs")
    assert cert.spec.hosts == ("www.pay.example.com", "www.shop.example.com")
    assert found.problems == ()
    grab = _run(_mounted("pay", "www.pay.example.com", "www.shop.example.com"),
                _mounted("shop", "www.shop.example.com"), tenants=tenants)
    (cert,) = grab.desired
    assert cert.spec.hosts == ("www.shop.example.com",)
    (problem,) = grab.problems
    assert (problem.source.namespace, problem.reason) == ("pay", "HostNotAllowed")
    assert "www.shop.example.com" in problem.message
    assert "www.pay.example.com" not in problem.message


def test_gateway_api_gateways_of_two_namespaces_using_one_granted_secret_are_two_claimants(
        ) -> None:
    """The same for Gateway API: `certs` grants its Secret to Gateways of `shop` and `pay`;
    the Secret goes to the older one's namespace, the other is refused."""
    wild = secret_ref("wild", "certs")
    grants = [reference_grant("certs", "shop", to_name="wild"),
              reference_grant("certs", "pay", to_name="wild")]
    gateways = []
    for namespace, created in (("shop", OLDER), ("pay", NEWER)):
        gw = gateway("gw", namespace, listeners=[listener("https", "www.example.com", wild)])
        gw["metadata"]["creationTimestamp"] = created
        gateways.append(gw)
    found = discover_owned([], [], gateways, grants, make_config(), ())
    assert [(d.secret, d.source.namespace) for d in found.desired] == [
        (SecretRef("certs", "wild"), "shop")]
    assert _reasons(found) == [("pay", "HostClaimed")]


def test_a_file_mount_gateway_asking_for_a_held_host_is_left_out_alone() -> None:
    """One file-mount Gateway asking for a host another namespace holds refused the shared
    certificate of every file-mount Gateway (HostClaimed on the first one). Now that Gateway
    alone is left out and told why; the others' hosts are still issued."""
    held = (Holding(SecretRef("web", "web-tls"), ("victim.example.com",), "Ingress/web/w", T0),)
    found = _run(_mounted("pay", "pay.example.com", "victim.example.com"),
                 _mounted("shop", "shop.example.com"), holdings=held)
    (cert,) = found.desired
    assert cert.spec.hosts == ("shop.example.com",)
    assert cert.source.namespace == "shop"
    assert cert.routing is not None and cert.routing.gateway == cert.source
    (problem,) = found.problems
    assert (problem.source.namespace, problem.reason) == ("pay", "HostClaimed")
    assert "left out of the shared certificate" in problem.message
    everyone = _run(_mounted("pay", "victim.example.com"), holdings=held)
    assert everyone.desired == ()
    assert _reasons(everyone) == [("pay", "HostClaimed")]
