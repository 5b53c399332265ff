"""One source table for both modes: `renew --once`'s lister and the controller's informers read
each type at the version the cluster serves (API discovery, asked once per group version), a
v1beta1-only Gateway API included, and report a type with no known version in the same words."""

from __future__ import annotations

import logging
import threading
from typing import Any, cast

import pytest
from kubernetes.client import ApiClient

from certbotk8s.adapters.kube.discovery import ServedVersions, watched
from certbotk8s.adapters.kube.sources import KubeSourceReader
from certbotk8s.adapters.kube.watch import Informer
from certbotk8s.app.controller.watch import Watch
from certbotk8s.core.model import Discovery
from certbotk8s.core.sources.discovery import discover
from certbotk8s.core.sources.resources import GATEWAY_API_GATEWAYS
from tests.unit.apiserver import FakeApiServer
from tests.unit.factories import gateway, listener, make_config, secret_ref

GATEWAY_GROUP = "gateway.networking.k8s.io"
EDGE = gateway(name="edge", namespace="apps",
               listeners=[listener("web", "a.example.com", secret_ref("edge-tls"))])


def cluster(gateway_versions: tuple[str, ...], *, routes: tuple[str, ...] = ("v1", "v1beta1")
            ) -> FakeApiServer:
    """Ingresses served; no Istio; Gateways at `gateway_versions` (HTTPRoutes at `routes`: the
    group may serve a version for its other types only), ReferenceGrants at v1beta1."""
    return FakeApiServer(served={"ingresses.networking.k8s.io": ("v1",),
                                 GATEWAY_API_GATEWAYS.name: gateway_versions,
                                 f"httproutes.{GATEWAY_GROUP}": routes,
                                 f"referencegrants.{GATEWAY_GROUP}": ("v1beta1",)},
                         objects={GATEWAY_API_GATEWAYS.name: [EDGE]})


def one_shot(api: Any) -> list[dict[str, Any]]:
    """What `renew --once` reads: the lister's Gateways."""
    return [dict(o) for o in KubeSourceReader(api).list_sources().gateway_api_gateways]


def controller(api: Any, namespaces: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """What the controller reads: its informers' Gateways, once synced."""
    watch = Watch(api, namespaces)
    watch.start()
    try:
        assert watch.wait_synced(10)
        return [dict(o) for o in watch.sources("gateway_api")]
    finally:
        watch.stop()


def found(gateways: list[dict[str, Any]]) -> Discovery:
    return discover([], [], gateways, [], make_config())


@pytest.mark.parametrize("mode", [one_shot, controller])
@pytest.mark.parametrize("routes", [("v1beta1",), ("v1", "v1beta1")])
def test_gateways_served_at_v1beta1_only_are_read_at_v1beta1_and_served(
        mode: Any, routes: tuple[str, ...]) -> None:
    """Also when the group serves v1 for HTTPRoutes: versions are per type, not per group."""
    api = cluster(("v1beta1",), routes=routes)
    gateways = mode(api)
    assert [(g["metadata"]["name"], g["apiVersion"]) for g in gateways] == [
        ("edge", "gateway.networking.k8s.io/v1beta1")]
    result = found(gateways)
    assert [d.secret.name for d in result.desired] == ["edge-tls"]
    assert result.problems == ()  # no UnsupportedApiVersion
    assert not any(path.startswith(f"/apis/{GATEWAY_GROUP}/v1/") for path, _ in api.requests)


@pytest.mark.parametrize("served", [("v1",), ("v1", "v1beta1"), ("v1beta1", "v1"),
                                    ("v1beta1",), ("v1alpha2",), ()])
def test_both_modes_pick_the_same_version(served: tuple[str, ...]) -> None:
    once, watching = one_shot(cluster(served)), controller(cluster(served))
    assert [(g["metadata"]["name"], g["apiVersion"]) for g in once] == [
        (g["metadata"]["name"], g["apiVersion"]) for g in watching]
    expected = GATEWAY_API_GATEWAYS.preferred(served)
    assert [g["apiVersion"] for g in once] == (
        [] if expected is None else [f"{GATEWAY_GROUP}/{expected}"])


def test_a_type_with_no_known_version_is_reported_in_the_same_words_by_both_modes(
        caplog: pytest.LogCaptureFixture) -> None:
    said = []
    for mode in (one_shot, controller):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="certbotk8s.adapters.kube.discovery"):
            assert mode(cluster(("v1alpha2",))) == []
        said.append(sorted(r.getMessage() for r in caplog.records
                           if r.getMessage().startswith("gateways.gateway.networking.k8s.io")))
    assert said[0] == said[1] == [
        "gateways.gateway.networking.k8s.io: not served by this cluster at any known version "
        "(v1, v1beta1); treated as empty"]
    reader = KubeSourceReader(cast(ApiClient, cluster(("v1alpha2",))))
    assert reader.list_sources().missing_apis == (
        "gateways.networking.istio.io", "gateways.gateway.networking.k8s.io")


def test_discovery_is_asked_once_per_group_version_however_many_informers_read_it() -> None:
    api = cluster(("v1beta1",))
    controller(api, namespaces=("apps", "web", "ops"))  # 2 Gateway API types x 3 namespaces
    asked = api.discovery_requests()
    assert sorted(asked) == sorted(set(asked))
    assert {f"/apis/{GATEWAY_GROUP}/v1", f"/apis/{GATEWAY_GROUP}/v1beta1"} <= set(asked)
    api = cluster(("v1beta1",))
    one_shot(api)
    assert sorted(api.discovery_requests()) == sorted(asked)


def test_an_informer_finds_a_type_installed_after_it_started() -> None:
    api = FakeApiServer()
    listed = threading.Event()

    def changed(key: Any, value: Any) -> None:
        if key is None:  # a full list landed
            listed.set()

    start_at = watched(GATEWAY_API_GATEWAYS, GATEWAY_API_GATEWAYS.versions[0])
    informer = Informer(cast(ApiClient, api), start_at, changed, missing_recheck=0.01,
                        locate=ServedVersions(cast(ApiClient, api)).locate(GATEWAY_API_GATEWAYS))
    informer.start()
    try:
        assert informer.synced.wait(10) and informer.missing
        api.objects[GATEWAY_API_GATEWAYS.name] = [EDGE]
        api.served[GATEWAY_API_GATEWAYS.name] = ("v1beta1",)  # the CRD is installed
        assert listed.wait(10)
        assert not informer.missing
        assert informer.resource.api_version == "gateway.networking.k8s.io/v1beta1"
        assert list(informer.cache) == [("apps", "edge")]
    finally:
        informer.stop()
