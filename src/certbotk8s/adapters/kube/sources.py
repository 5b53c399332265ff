"""The Kubernetes adapters: source listing here; Secrets, Events and client loading re-exported.

Only this package imports `kubernetes`. Objects come back as the API server's JSON (camelCase).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kubernetes.client import ApiClient

from certbotk8s.adapters.kube import rest
from certbotk8s.adapters.kube.client import (
    PAGE_SIZE,
    JsonDict,
    Op,
    list_all,
    load_api_client,
)
from certbotk8s.adapters.kube.events import EventRow, KubeEventRecorder, list_events
from certbotk8s.adapters.kube.rest import KubeRest
from certbotk8s.adapters.kube.secrets import KubeAccountStore, KubeSecretStore
from certbotk8s.core.errors import KubeForbidden
from certbotk8s.core.ports import KubeObject, SourceSnapshot

__all__ = [
    "EventRow",
    "KubeAccountStore",
    "KubeEventRecorder",
    "KubeSecretStore",
    "KubeSourceReader",
    "list_events",
    "load_api_client",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CustomResource:
    """A custom resource type, with the versions to try in order of preference."""

    group: str
    plural: str
    kind: str
    versions: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"


ISTIO_GATEWAYS = CustomResource("networking.istio.io", "gateways", "Gateway", ("v1", "v1beta1"))
GATEWAY_API_GATEWAYS = CustomResource("gateway.networking.k8s.io", "gateways", "Gateway",
                                      ("v1", "v1beta1"))
REFERENCE_GRANTS = CustomResource("gateway.networking.k8s.io", "referencegrants",
                                  "ReferenceGrant", ("v1", "v1beta1"))
INGRESSES = "ingresses.networking.k8s.io"

_logged_missing: set[str] = set()
_logged_lock = threading.Lock()


def _note_missing(name: str) -> None:
    with _logged_lock:
        if name in _logged_missing:
            return
        _logged_missing.add(name)
    log.info("the cluster does not serve %s; treating it as empty", name)


class KubeSourceReader:
    """SourceReader: Ingresses, Istio Gateways, Gateway API Gateways and ReferenceGrants."""

    def __init__(self, api_client: ApiClient) -> None:
        self._rest = KubeRest(api_client)
        self._served: dict[str, str] = {}  # resource name -> version that answered last

    def list_sources(self, namespaces: Sequence[str] = ()) -> SourceSnapshot:
        missing: list[str] = []
        scopes: Sequence[str | None] = tuple(namespaces) or (None,)

        def collect(name: str, lister: Callable[[str | None], list[JsonDict] | None],
                    in_scopes: Sequence[str | None] = scopes) -> tuple[KubeObject, ...]:
            found: list[KubeObject] = []
            for namespace in in_scopes:
                items = lister(namespace)
                if items is None:
                    _note_missing(name)
                    missing.append(name)
                    return ()
                found.extend(items)
            return tuple(found)

        return SourceSnapshot(
            ingresses=collect(INGRESSES, self._ingresses),
            istio_gateways=collect(ISTIO_GATEWAYS.name,
                                   lambda ns: self._custom_list(ISTIO_GATEWAYS, ns)),
            gateway_api_gateways=collect(GATEWAY_API_GATEWAYS.name,
                                         lambda ns: self._custom_list(GATEWAY_API_GATEWAYS, ns)),
            reference_grants=self._grants(collect, namespaces),
            missing_apis=tuple(missing),
        )

    def _grants(self, collect: Callable[..., tuple[KubeObject, ...]],
                namespaces: Sequence[str]) -> tuple[KubeObject, ...]:
        """Grants live in the Secret's namespace, not the Gateway's: listed cluster-wide, or,
        where RBAC forbids that (namespaced mode, Role-only), in the listed namespaces."""
        def lister(ns: str | None) -> list[JsonDict] | None:
            return self._custom_list(REFERENCE_GRANTS, ns)

        try:
            return collect(REFERENCE_GRANTS.name, lister, (None,))
        except KubeForbidden:
            if not namespaces:
                raise
            return collect(REFERENCE_GRANTS.name, lister, tuple(namespaces))

    def _ingresses(self, namespace: str | None) -> list[JsonDict] | None:
        where = rest.path("networking.k8s.io/v1", "ingresses", namespace)
        return list_all(Op("list", INGRESSES, namespace),
                        lambda token: self._rest.get(where, rest.paged((), PAGE_SIZE, token)),
                        "networking.k8s.io/v1", "Ingress")

    def _custom_list(self, resource: CustomResource, namespace: str | None
                     ) -> list[JsonDict] | None:
        """Items of the first served version (the last one that answered is tried first)."""
        preferred = self._served.get(resource.name)
        versions = sorted(resource.versions, key=lambda v: v != preferred)
        for version in versions:
            items = self._custom_list_version(resource, version, namespace)
            if items is not None:
                self._served[resource.name] = version
                return items
        return None

    def _custom_list_version(self, resource: CustomResource, version: str,
                             namespace: str | None) -> list[JsonDict] | None:
        api_version = f"{resource.group}/{version}"
        where = rest.path(api_version, resource.plural, namespace)
        return list_all(Op("list", resource.name, namespace),
                        lambda token: self._rest.get(where, rest.paged((), PAGE_SIZE, token)),
                        api_version, resource.kind)
