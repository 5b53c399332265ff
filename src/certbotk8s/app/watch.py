"""The controller's informers: sources and certbotk8s's own Secrets, one wake event for all."""

from __future__ import annotations

import threading
from typing import Any

from certbotk8s.adapters.kube_secrets import to_stored_secret
from certbotk8s.adapters.kube_watch import Informer, Key, WatchedResource
from certbotk8s.core import secret_meta
from certbotk8s.core.config import Config
from certbotk8s.core.discovery import ROLE_LABEL, trim_source
from certbotk8s.core.model import Discovery, ObservedSecret, SecretRef
from certbotk8s.core.observe import observe
from certbotk8s.core.ownership import Holding, discover_owned

MANAGED_TLS = WatchedResource(
    "secrets (certbotk8s-managed)", "/api/v1/secrets", "v1", "Secret",
    label_selector=f"{secret_meta.MANAGED_BY_LABEL}={secret_meta.MANAGED_BY_VALUE}",
    field_selector="type=kubernetes.io/tls",
)
SOURCES = {
    "ingresses": [WatchedResource("ingresses.networking.k8s.io",
                                  "/apis/networking.k8s.io/v1/ingresses",
                                  "networking.k8s.io/v1", "Ingress")],
    "istio": [WatchedResource(f"gateways.networking.istio.io/{v}",
                              f"/apis/networking.istio.io/{v}/gateways",
                              f"networking.istio.io/{v}", "Gateway") for v in ("v1", "v1beta1")],
    "gateway_api": [WatchedResource("gateways.gateway.networking.k8s.io",
                                    "/apis/gateway.networking.k8s.io/v1/gateways",
                                    "gateway.networking.k8s.io/v1", "Gateway")],
    "grants": [WatchedResource(f"referencegrants.gateway.networking.k8s.io/{v}",
                               f"/apis/gateway.networking.k8s.io/{v}/referencegrants",
                               f"gateway.networking.k8s.io/{v}", "ReferenceGrant")
               for v in ("v1", "v1beta1")],
}


def observe_json(obj: dict[str, Any]) -> ObservedSecret:
    """Informer transform: keep what policy needs, drop the Secret's data (memory)."""
    return observe(to_stored_secret(obj))


class Watch:
    """Informer caches plus `wake`, set on every change that may alter what is wanted."""

    def __init__(self, api: Any) -> None:
        self.wake = threading.Event()

        def on_source(key: Key | None, obj: Any) -> None:
            # Our own temporary HTTP-01 routing objects never change what is wanted.
            labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
            if labels.get(ROLE_LABEL) != "http01-route":
                self.wake.set()

        self.informers: dict[str, list[Informer]] = {
            name: [Informer(api, r, on_source, transform=trim_source) for r in resources]
            for name, resources in SOURCES.items()
        }
        self.secrets = Informer(api, MANAGED_TLS, lambda key, obj: self.wake.set(),
                                transform=observe_json)

    def all(self) -> list[Informer]:
        return [i for group in self.informers.values() for i in group] + [self.secrets]

    def start(self) -> None:
        for informer in self.all():
            informer.start()

    def stop(self) -> None:
        for informer in self.all():
            informer.stop()

    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self.all())

    def wait_synced(self) -> None:
        for informer in self.all():
            informer.synced.wait()

    def sources(self, group: str) -> list[Any]:
        for informer in self.informers[group]:
            if not informer.missing:
                return list(informer.cache.values())
        return []

    def discovery(self, config: Config) -> Discovery:
        """Desired certificates, after host ownership against the managed Secrets cached."""
        held = [Holding.of(SecretRef(ns, name), seen.annotations)
                for (ns, name), seen in self.managed()]
        return discover_owned(self.sources("ingresses"), self.sources("istio"),
                              self.sources("gateway_api"), self.sources("grants"), config, held)

    def observed(self, ref: SecretRef) -> ObservedSecret | None:
        value: ObservedSecret | None = self.secrets.cache.get((ref.namespace, ref.name))
        return value

    def managed(self) -> list[tuple[Key, ObservedSecret]]:
        """A snapshot of every managed Secret in the cache."""
        return list(self.secrets.cache.items())
