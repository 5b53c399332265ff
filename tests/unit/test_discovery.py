"""Discovery: every DESIGN.md source row, opt-in, refusals, and Secret conflicts."""

from __future__ import annotations

from typing import Any

from certbotk8s.core.config.settings import Config
from certbotk8s.core.model import (
    ChallengeType,
    DesiredCertificate,
    Discovery,
    HttpRouting,
    KeyType,
    ObjectRef,
    SecretRef,
    SourceKind,
)
from certbotk8s.core.sources.discovery import config_certificate_source, discover
from tests.unit.factories import (
    OPT_IN,
    gateway,
    ingress,
    istio_gateway,
    istio_server,
    listener,
    make_config,
    reference_grant,
    secret_ref,
    tls_entry,
)

Obj = dict[str, Any]
CONFIG = make_config()
DNS01 = {**OPT_IN, "certbotk8s.io/challenge": "dns-01", "certbotk8s.io/dns-provider": "bind"}
LEGACY = "/etc/istio/ingressgateway-certs/tls.crt"


def run(
    ingresses: list[Obj] = (),  # type: ignore[assignment]
    istio: list[Obj] = (),  # type: ignore[assignment]
    gateways: list[Obj] = (),  # type: ignore[assignment]
    grants: list[Obj] = (),  # type: ignore[assignment]
    config: Config = CONFIG,
) -> Discovery:
    return discover(ingresses, istio, gateways, grants, config)


def by_secret(result: Discovery) -> dict[SecretRef, DesiredCertificate]:
    return {d.secret: d for d in result.desired}


def reasons(result: Discovery) -> list[tuple[str, str]]:
    return [(p.source.name, p.reason) for p in result.problems]


# -- Ingress ------------------------------------------------------------------------------


def test_ingress_tls_entries_become_secrets_in_the_ingress_namespace() -> None:
    result = run(
        [
            ingress(
                namespace="shop",
                ingress_class="nginx",
                tls=[
                    tls_entry("shop-tls", "Shop.Example.com", "www.shop.example.com"),
                    tls_entry("api-tls", "api.example.com"),
                ],
            )
        ]
    )
    assert result.problems == ()
    desired = by_secret(result)
    assert set(desired) == {SecretRef("shop", "shop-tls"), SecretRef("shop", "api-tls")}
    shop = desired[SecretRef("shop", "shop-tls")]
    assert shop.spec.hosts == ("shop.example.com", "www.shop.example.com")
    assert shop.spec.issuer == "le"
    assert shop.spec.key_type is KeyType.ECDSA_P256
    assert shop.source == ObjectRef(
        "networking.k8s.io/v1", "Ingress", "shop", "web", "uid-shop-web"
    )
    assert shop.source_kind is SourceKind.INGRESS
    assert shop.routing == HttpRouting(kind=SourceKind.INGRESS, ingress_class="nginx",
                                       namespace="shop")
    assert shop.routing.source_namespace == "shop"


def test_ingress_without_tls_uses_rule_hosts_and_name_tls_secret() -> None:
    result = run(
        [
            ingress(
                name="blog",
                rules_hosts=["blog.example.com", "www.blog.example.com", "blog.example.com"],
            )
        ]
    )
    (d,) = result.desired
    assert d.secret == SecretRef("default", "blog-tls")
    assert d.spec.hosts == ("blog.example.com", "www.blog.example.com")


def test_ingress_legacy_class_annotation() -> None:
    result = run(
        [
            ingress(
                rules_hosts=["a.example.com"],
                annotations={**OPT_IN, "kubernetes.io/ingress.class": "traefik"},
            )
        ]
    )
    assert result.desired[0].routing is not None
    assert result.desired[0].routing.ingress_class == "traefik"


def test_tls_acme_annotation_opts_in_and_others_are_ignored() -> None:
    result = run(
        [
            ingress(
                name="acme",
                rules_hosts=["a.example.com"],
                annotations={"kubernetes.io/tls-acme": "true"},
            ),
            ingress(name="plain", rules_hosts=["b.example.com"], annotations={}),
            ingress(
                name="off",
                rules_hosts=["c.example.com"],
                annotations={"certbotk8s.io/enabled": "false", "kubernetes.io/tls-acme": "true"},
            ),
        ]
    )
    assert [d.source.name for d in result.desired] == ["acme"]
    assert result.problems == ()


def test_malformed_enabled_is_reported_even_without_opt_in() -> None:
    result = run(
        [ingress(rules_hosts=["a.example.com"], annotations={"certbotk8s.io/enabled": "yes"})]
    )
    assert result.desired == ()
    assert reasons(result) == [("web", "InvalidAnnotation")]


def test_invalid_annotation_refuses_the_whole_source() -> None:
    result = run(
        [
            ingress(
                rules_hosts=["a.example.com"],
                annotations={
                    **OPT_IN,
                    "certbotk8s.io/key-type": "rsa-1024",
                    "certbotk8s.io/isuer": "le",
                },
            )
        ]
    )
    assert result.desired == ()
    assert reasons(result) == [("web", "InvalidAnnotation")] * 2
    messages = " ".join(p.message for p in result.problems)
    assert "certbotk8s.io/key-type='rsa-1024'" in messages
    assert "certbotk8s.io/isuer" in messages


def test_annotations_shape_the_spec() -> None:
    result = run(
        [
            ingress(
                rules_hosts=["a.example.com"],
                annotations={
                    **OPT_IN,
                    "certbotk8s.io/issuer": "staging",
                    "certbotk8s.io/key-type": "rsa-2048",
                    "certbotk8s.io/profile": "shortlived",
                    "certbotk8s.io/renew-before": "48h",
                },
            )
        ]
    )
    spec = result.desired[0].spec
    assert (spec.issuer, spec.key_type, spec.profile) == ("staging", KeyType.RSA_2048, "shortlived")
    assert spec.renew_before is not None and spec.renew_before.days == 2


def test_invalid_host_is_reported_and_the_rest_served() -> None:
    result = run(
        [
            ingress(
                tls=[
                    tls_entry("web-tls", "good.example.com", "bad_host.example.com"),
                    tls_entry("only-bad", "localhost"),
                ]
            )
        ]
    )
    assert [d.secret.name for d in result.desired] == ["web-tls"]
    assert result.desired[0].spec.hosts == ("good.example.com",)
    assert reasons(result) == [("web", "InvalidHostname")] * 2


def test_tls_entry_without_secret_name_or_hosts() -> None:
    result = run(
        [
            ingress(
                tls=[
                    tls_entry(None, "a.example.com"),
                    tls_entry("x-tls"),
                    tls_entry("ok-tls", "b.example.com"),
                ]
            )
        ]
    )
    assert [d.secret.name for d in result.desired] == ["ok-tls"]
    assert sorted(reasons(result)) == [("web", "MissingSecretName"), ("web", "NoHosts")]


def test_ingress_without_any_host() -> None:
    result = run([ingress(rules_hosts=[])])
    assert result.desired == ()
    assert reasons(result) == [("web", "NoHosts")]


def test_invalid_secret_name() -> None:
    result = run([ingress(tls=[tls_entry("Bad_Name", "a.example.com")])])
    assert result.desired == ()
    assert reasons(result) == [("web", "InvalidSecretName")]


def test_entries_naming_the_same_secret_are_merged() -> None:
    result = run([ingress(tls=[tls_entry("s", "a.example.com"), tls_entry("s", "b.example.com")])])
    (d,) = result.desired
    assert d.spec.hosts == ("a.example.com", "b.example.com")


def test_wildcard_needs_dns01() -> None:
    result = run(
        [ingress(tls=[tls_entry("wild", "*.example.com"), tls_entry("plain", "a.example.com")])]
    )
    assert [d.secret.name for d in result.desired] == ["plain"]
    assert reasons(result) == [("web", "WildcardNeedsDns01")]


def test_wildcard_with_dns01() -> None:
    result = run(
        [ingress(tls=[tls_entry("wild", "*.example.com", "example.com")], annotations=DNS01)]
    )
    (d,) = result.desired
    assert d.spec.hosts == ("*.example.com", "example.com")
    assert d.spec.challenge is ChallengeType.DNS01
    assert d.spec.dns_provider == "bind"


def test_dns_provider_zones_refuse_hosts_outside_before_any_order() -> None:
    bind = {"type": "rfc2136", "server": "127.0.0.1:5353", "zones": ["example.com"],
            "tsig": {"keyName": "k.", "secretRef": {"name": "tsig", "key": "secret"}}}
    config = make_config(dnsProviders={"bind": bind})
    result = run([ingress(tls=[tls_entry("in", "*.shop.example.com", "example.com"),
                               tls_entry("out", "www.example.org", "a.example.com")],
                          annotations=DNS01)], config=config)
    assert [d.secret.name for d in result.desired] == ["in"]
    assert reasons(result) == [("web", "OutsideDnsZones")]
    assert "www.example.org" in result.problems[0].message
    assert "a.example.com" not in result.problems[0].message
    # with CNAME following the record name is only known at order time: not refused here
    config = make_config(dnsProviders={"bind": {**bind, "followCname": True}})
    result = run([ingress(tls=[tls_entry("out", "www.example.org")], annotations=DNS01)],
                 config=config)
    assert [d.secret.name for d in result.desired] == ["out"]


# -- Istio Gateway (SDS) -------------------------------------------------------------------


def test_istio_gateway_in_gateway_namespace() -> None:
    gw = istio_gateway(
        servers=[
            istio_server(
                "shop/shop.example.com",
                "./www.example.com",
                "*/api.example.com",
                credential="shop-cert",
            ),
            istio_server("*", "ns/*", credential="shop-cert", port_name="https-2"),
            istio_server("plain.example.com", protocol="HTTP", port_name="http", number=80),
        ]
    )
    result = run(istio=[gw])
    assert [(p.reason, p.message) for p in result.problems] == [
        ("NoHosts", "spec.servers[1] has no host but '*'")
    ]
    (d,) = result.desired
    assert d.secret == SecretRef("istio-system", "shop-cert")
    assert d.spec.hosts == ("api.example.com", "shop.example.com", "www.example.com")
    assert d.source_kind is SourceKind.ISTIO_GATEWAY
    assert d.source.kind == "Gateway" and d.source.api_version == "networking.istio.io/v1"
    assert d.routing == HttpRouting(
        kind=SourceKind.ISTIO_GATEWAY, gateway=d.source, listener="http",
        namespace=d.source.namespace,
    )
    assert d.routing.source_namespace == d.source.namespace  # the Gateway's, not the Secret's


def test_istio_v1beta1_accepted_other_versions_refused() -> None:
    server = istio_server("a.example.com", credential="c")
    ok = istio_gateway(name="beta", servers=[server], api_version="networking.istio.io/v1beta1")
    old = istio_gateway(name="alpha", servers=[server], api_version="networking.istio.io/v1alpha3")
    result = run(istio=[ok, old])
    assert [d.source.name for d in result.desired] == ["beta"]
    assert reasons(result) == [("alpha", "UnsupportedApiVersion")]


def test_istio_only_star_hosts_is_no_host() -> None:
    result = run(istio=[istio_gateway(servers=[istio_server("*", "team/*", credential="c")])])
    assert result.desired == ()
    assert reasons(result) == [("gw", "NoHosts")]


def test_istio_servers_that_do_not_terminate_are_ignored() -> None:
    result = run(
        istio=[
            istio_gateway(
                servers=[
                    istio_server("a.example.com", credential="a", mode="PASSTHROUGH"),
                    istio_server("b.example.com", credential="b", mode="ISTIO_MUTUAL"),
                    istio_server("c.example.com", credential="c", protocol="TLS"),
                    istio_server("d.example.com", server_certificate="/etc/certs/own.pem"),
                    istio_server("e.example.com", credential="e", mode="MUTUAL"),
                ]
            )
        ]
    )
    assert [d.secret.name for d in result.desired] == ["e"]


def test_istio_gateway_elsewhere_needs_the_allow_list() -> None:
    gw = istio_gateway(namespace="team-a", servers=[istio_server("a.example.com", credential="c")])
    refused = run(istio=[gw])
    assert refused.desired == ()
    assert reasons(refused) == [("gw", "NamespaceNotAllowed")]
    allowed = run(istio=[gw], config=make_config(istio={"allowedSourceNamespaces": ["team-a"]}))
    (d,) = allowed.desired
    assert d.secret == SecretRef("istio-system", "c")


def test_istio_config_gateway_namespace() -> None:
    config = make_config(istio={"gatewayNamespace": "ingress"})
    gw = istio_gateway(namespace="ingress", servers=[istio_server("a.example.com", credential="c")])
    assert run(istio=[gw], config=config).desired[0].secret == SecretRef("ingress", "c")
    in_default = istio_gateway(servers=[istio_server("a.example.com", credential="c")])
    assert reasons(run(istio=[in_default], config=config)) == [("gw", "NamespaceNotAllowed")]


def test_istio_gateway_namespace_override() -> None:
    server = istio_server("a.example.com", credential="c")
    own = istio_gateway(
        name="own",
        namespace="team-a",
        servers=[server],
        annotations={**OPT_IN, "certbotk8s.io/gateway-namespace": "team-a"},
    )
    foreign = istio_gateway(
        name="foreign",
        namespace="team-b",
        servers=[server],
        annotations={**OPT_IN, "certbotk8s.io/gateway-namespace": "edge"},
    )
    result = run(istio=[own, foreign])
    assert [d.secret for d in result.desired] == [SecretRef("team-a", "c")]
    assert reasons(result) == [("foreign", "NamespaceNotAllowed")]
    allowed = run(
        istio=[foreign], config=make_config(istio={"allowedSourceNamespaces": ["team-b"],
                                                   "gatewayNamespaces": ["edge"]})
    )
    assert [d.secret for d in allowed.desired] == [SecretRef("edge", "c")]


def test_gateway_namespace_override_only_to_configured_gateway_namespaces() -> None:
    """An allow-listed source namespace still cannot aim its Secret at any namespace."""
    hostile = istio_gateway(
        name="g", namespace="team-b", servers=[istio_server("a.example.com", credential="c")],
        annotations={**OPT_IN, "certbotk8s.io/gateway-namespace": "kube-system"},
    )
    config = make_config(istio={"allowedSourceNamespaces": ["team-b"],
                                "gatewayNamespaces": ["edge"]})
    result = run(istio=[hostile], config=config)
    assert result.desired == ()
    assert reasons(result) == [("g", "NamespaceNotAllowed")]
    assert "not a configured gateway namespace" in result.problems[0].message


# -- Istio legacy file mount ---------------------------------------------------------------


def test_file_mount_hosts_of_all_gateways_share_one_secret() -> None:
    gw1 = istio_gateway(
        name="b-gw", servers=[istio_server("b.example.com", server_certificate=LEGACY)]
    )
    gw2 = istio_gateway(
        name="a-gw",
        servers=[
            istio_server("ns/a.example.com", "c.example.com", server_certificate=LEGACY),
            istio_server("sds.example.com", credential="sds"),
        ],
    )
    result = run(istio=[gw1, gw2])
    assert result.problems == ()
    desired = by_secret(result)
    mount = desired[SecretRef("istio-system", "istio-ingressgateway-certs")]
    assert mount.spec.hosts == ("a.example.com", "b.example.com", "c.example.com")
    assert mount.source_kind is SourceKind.ISTIO_FILE_MOUNT
    assert mount.source.name == "a-gw"
    assert desired[SecretRef("istio-system", "sds")].spec.hosts == ("sds.example.com",)


def test_file_mount_gateways_with_different_options_conflict() -> None:
    gw1 = istio_gateway(
        name="one", servers=[istio_server("a.example.com", server_certificate=LEGACY)]
    )
    gw2 = istio_gateway(
        name="two",
        servers=[istio_server("b.example.com", server_certificate=LEGACY)],
        annotations={**OPT_IN, "certbotk8s.io/key-type": "rsa-2048"},
    )
    result = run(istio=[gw1, gw2])
    assert result.desired == ()
    assert reasons(result) == [("one", "SecretConflict"), ("two", "SecretConflict")]


def test_file_mount_wildcard_contribution_left_out() -> None:
    gw1 = istio_gateway(
        name="one", servers=[istio_server("a.example.com", server_certificate=LEGACY)]
    )
    gw2 = istio_gateway(
        name="two", servers=[istio_server("*.example.com", server_certificate=LEGACY)]
    )
    result = run(istio=[gw1, gw2])
    (d,) = result.desired
    assert d.spec.hosts == ("a.example.com",)
    assert reasons(result) == [("two", "WildcardNeedsDns01")]


# -- Gateway API ---------------------------------------------------------------------------


def test_gateway_api_https_and_tls_terminate_listeners() -> None:
    gw = gateway(
        listeners=[
            listener("http", None, protocol="HTTP"),
            listener("web", "Web.Example.com", secret_ref("web-cert")),
            listener("tls", "tls.example.com", secret_ref("tls-cert")),
            listener(
                "term",
                "term.example.com",
                secret_ref("term-cert"),
                protocol="TLS",
                mode="Terminate",
            ),
            listener(
                "pass",
                "pass.example.com",
                secret_ref("pass-cert"),
                protocol="TLS",
                mode="Passthrough",
            ),
        ]
    )
    gw["spec"]["listeners"][2]["protocol"] = "TLS"  # mode defaults to Terminate
    result = run(gateways=[gw])
    assert result.problems == ()
    desired = by_secret(result)
    assert set(desired) == {SecretRef("apps", n) for n in ("web-cert", "tls-cert", "term-cert")}
    web = desired[SecretRef("apps", "web-cert")]
    assert web.spec.hosts == ("web.example.com",)
    assert web.source_kind is SourceKind.GATEWAY_API
    assert web.source.api_version == "gateway.networking.k8s.io/v1"
    assert web.routing == HttpRouting(
        kind=SourceKind.GATEWAY_API, gateway=web.source, listener="http", namespace="apps"
    )


def test_gateway_api_routing_picks_the_matching_http_listener() -> None:
    gw = gateway(
        listeners=[
            listener("http-other", "other.example.com", protocol="HTTP"),
            listener("http-wild", "*.example.com", protocol="HTTP"),
            listener("web", "web.example.com", secret_ref("web-cert")),
        ]
    )
    (d,) = run(gateways=[gw]).desired
    assert d.routing is not None and d.routing.listener == "http-wild"


def test_gateway_api_listeners_sharing_a_secret_are_merged() -> None:
    gw = gateway(
        listeners=[
            listener("a", "a.example.com", secret_ref("shared")),
            listener("b", "b.example.com", secret_ref("shared")),
        ]
    )
    (d,) = run(gateways=[gw]).desired
    assert d.spec.hosts == ("a.example.com", "b.example.com")


def test_gateway_api_listener_without_hostname() -> None:
    result = run(gateways=[gateway(listeners=[listener("web", None, secret_ref("c"))])])
    assert result.desired == ()
    assert reasons(result) == [("gw", "NoHosts")]


def test_gateway_api_non_secret_ref() -> None:
    ref = secret_ref("c", kind="ConfigMap")
    result = run(gateways=[gateway(listeners=[listener("web", "a.example.com", ref)])])
    assert result.desired == ()
    assert reasons(result) == [("gw", "UnsupportedCertificateRef")]


def test_gateway_api_v1beta1_accepted_other_versions_refused() -> None:
    """The versions of the one source table (core.sources.resources), as the listers use."""
    web = [listener("web", "a.example.com", secret_ref("c"))]
    beta = gateway(name="beta", listeners=web, api_version="gateway.networking.k8s.io/v1beta1")
    old = gateway(name="alpha", listeners=web, api_version="gateway.networking.k8s.io/v1alpha2")
    result = run(gateways=[beta, old])
    assert [d.source.name for d in result.desired] == ["beta"]
    assert result.desired[0].source.api_version == "gateway.networking.k8s.io/v1beta1"
    assert reasons(result) == [("alpha", "UnsupportedApiVersion")]


def _cross_ns_gateway() -> Obj:
    return gateway(listeners=[listener("web", "a.example.com", secret_ref("cert", "certs"))])


def test_cross_namespace_ref_needs_a_reference_grant() -> None:
    result = run(gateways=[_cross_ns_gateway()])
    assert result.desired == ()
    assert reasons(result) == [("gw", "RefNotPermitted")]


def test_cross_namespace_ref_with_grant() -> None:
    for grant in (
        reference_grant("certs", "apps"),
        reference_grant("certs", "apps", to_name="cert"),
    ):
        (d,) = run(gateways=[_cross_ns_gateway()], grants=[grant]).desired
        assert d.secret == SecretRef("certs", "cert")


def test_reference_grants_that_do_not_fit() -> None:
    for grant in (
        reference_grant("apps", "apps"),  # in the gateway's namespace, not the Secret's
        reference_grant("certs", "other"),  # from another namespace
        reference_grant("certs", "apps", to_name="other-cert"),
        reference_grant("certs", "apps", from_kind="HTTPRoute"),
        reference_grant("certs", "apps", to_kind="ConfigMap"),
    ):
        result = run(gateways=[_cross_ns_gateway()], grants=[grant])
        assert result.desired == (), grant
        assert reasons(result) == [("gw", "RefNotPermitted")]


# -- default certificate and conflicts -----------------------------------------------------


def _config_with_default(**extra: Any) -> Config:
    return make_config(
        defaultCertificate={
            "hosts": ["*.apps.example.com"],
            "secret": {"namespace": "ingress-nginx", "name": "default-tls"},
            "dnsProvider": "bind",
            **extra,
        }
    )


def test_default_certificate_always_desired() -> None:
    config = _config_with_default(keyType="rsa-2048")
    (d,) = run(config=config).desired
    assert d.secret == SecretRef("ingress-nginx", "default-tls")
    assert d.spec.hosts == ("*.apps.example.com",)
    assert d.spec.challenge is ChallengeType.DNS01
    assert d.spec.key_type is KeyType.RSA_2048
    assert d.source_kind is SourceKind.CONFIG_CERTIFICATE
    assert d.source == config_certificate_source(config)
    assert d.routing is None


def test_same_secret_same_spec_is_one_certificate() -> None:
    a = ingress(name="b-ing", tls=[tls_entry("shared", "a.example.com")], ingress_class="x")
    b = ingress(name="a-ing", tls=[tls_entry("shared", "a.example.com")], ingress_class="y")
    for order in ([a, b], [b, a]):
        result = run(order)
        (d,) = result.desired
        assert d.source.name == "a-ing"
        assert d.routing is not None and d.routing.ingress_class == "y"
        assert result.problems == ()


def test_same_secret_different_hosts_is_a_conflict() -> None:
    a = ingress(name="a", tls=[tls_entry("shared", "a.example.com"), tls_entry("own", "o.ex.com")])
    b = ingress(name="b", tls=[tls_entry("shared", "b.example.com")])
    result = run([a, b])
    assert [d.secret.name for d in result.desired] == ["own"]
    assert reasons(result) == [("a", "SecretConflict"), ("b", "SecretConflict")]
    assert "default/shared" in result.problems[0].message


def test_same_secret_different_options_is_a_conflict() -> None:
    a = ingress(name="a", tls=[tls_entry("shared", "a.example.com")])
    b = ingress(
        name="b",
        tls=[tls_entry("shared", "a.example.com")],
        annotations={**OPT_IN, "certbotk8s.io/issuer": "staging"},
    )
    result = run([a, b])
    assert result.desired == ()
    assert reasons(result) == [("a", "SecretConflict"), ("b", "SecretConflict")]


def test_default_certificate_conflicting_with_an_ingress() -> None:
    ing = ingress(namespace="ingress-nginx", tls=[tls_entry("default-tls", "x.example.com")])
    result = run([ing], config=_config_with_default())
    assert result.desired == ()
    assert sorted(p.reason for p in result.problems) == ["SecretConflict"] * 2


def test_sources_of_different_kinds_claiming_one_secret() -> None:
    ing = ingress(namespace="istio-system", tls=[tls_entry("c", "a.example.com")])
    gw = istio_gateway(servers=[istio_server("a.example.com", credential="c")])
    (d,) = run([ing], istio=[gw]).desired
    assert d.source_kind is SourceKind.INGRESS  # "Ingress" sorts before "IstioGateway"


def test_output_is_deterministic() -> None:
    ings = [ingress(name=f"i{n}", tls=[tls_entry(f"s{n}", f"h{n}.example.com")]) for n in range(5)]
    ings.append(ingress(name="bad", rules_hosts=["localhost"]))
    first = run(ings)
    second = run(list(reversed(ings)))
    assert first == second
    assert [d.secret.name for d in first.desired] == [f"s{n}" for n in range(5)]


def test_special_use_names_are_refused_unless_configured() -> None:
    """Finding 8: `.svc.cluster.local`, `.cluster.local`, `.internal`, `.local`, `.localhost`
    are names no public CA can validate, and inside the cluster they name its services: each
    is reported and dropped (the rest of the source served), unless its suffix is allowed
    in `tenants.allowedSpecialUseSuffixes`."""
    special = ["api.default.svc.cluster.local", "x.cluster.local", "db.internal",
               "printer.local", "app.localhost"]
    obj = ingress(tls=[tls_entry("s", "www.example.com", *special)])
    result = run([obj])
    assert by_secret(result)[SecretRef("default", "s")].spec.hosts == ("www.example.com",)
    assert [r for _, r in reasons(result)] == ["SpecialUseName"] * 5
    assert "tenants.allowedSpecialUseSuffixes" in result.problems[0].message
    tenants = {"allowedSpecialUseSuffixes": ["internal", "local"]}
    allowed = run([obj], config=make_config(tenants=tenants))
    assert by_secret(allowed)[SecretRef("default", "s")].spec.hosts == (
        "api.default.svc.cluster.local", "db.internal", "printer.local", "www.example.com",
        "x.cluster.local")
    assert [r for _, r in reasons(allowed)] == ["SpecialUseName"]  # app.localhost
    # a name merely ending in the same letters is not special
    assert reasons(run([ingress(tls=[tls_entry("s", "mylocal.example", "notinternal.com")])])) == []
