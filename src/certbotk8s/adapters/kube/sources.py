"""The Kubernetes adapters: source listing here; Secrets, Events and client loading re-exported.

Only this package imports `kubernetes`. Objects come back as the API server's JSON (camelCase).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kubernetes.client import ApiClient

from certbotk8s.adapters.kube.access import allowed
from certbotk8s.adapters.kube.client import load_api_client
from certbotk8s.adapters.kube.discovery import ServedVersions, watched
from certbotk8s.adapters.kube.events import EventRow, KubeEventRecorder, list_events
from certbotk8s.adapters.kube.secrets import KubeAccountStore, KubeSecretStore
from certbotk8s.adapters.kube.watch import list_objects
from certbotk8s.core.ports import KubeObject, SourceSnapshot
from certbotk8s.core.sources.resources import (
    GATEWAY_API_GATEWAYS,
    INGRESSES,
    ISTIO_GATEWAYS,
    REFERENCE_GRANTS,
    ApiResource,
)

__all__ = [
    "EventRow",
    "KubeAccountStore",
    "KubeEventRecorder",
    "KubeSecretStore",
    "KubeSourceReader",
    "list_events",
    "load_api_client",
]

class KubeSourceReader:
    """SourceReader: Ingresses, Istio Gateways, Gateway API Gateways and ReferenceGrants, each at
    the version the cluster serves (`ServedVersions`: the same table and choice as the
    controller's informers), through the one list code (`adapters.kube.watch`)."""

    def __init__(self, api_client: ApiClient, served: ServedVersions | None = None) -> None:
        self._api = api_client
        self._served = served or ServedVersions(api_client)

    def list_sources(self, namespaces: Sequence[str] = ()) -> SourceSnapshot:
        missing: list[str] = []
        scopes: Sequence[str | None] = tuple(namespaces) or (None,)

        def collect(resource: ApiResource, in_scopes: Sequence[str | None] = scopes
                    ) -> tuple[KubeObject, ...]:
            version = self._served.version(resource)
            found: list[KubeObject] = []
            for namespace in in_scopes:
                items = None if version is None else list_objects(
                    self._api, watched(resource, version, namespace))
                if items is None:
                    missing.append(resource.name)
                    return ()
                found.extend(items)
            return tuple(found)

        return SourceSnapshot(
            ingresses=collect(INGRESSES),
            istio_gateways=collect(ISTIO_GATEWAYS),
            gateway_api_gateways=collect(GATEWAY_API_GATEWAYS),
            reference_grants=self._grants(collect, namespaces),
            missing_apis=tuple(missing),
        )

    def _grants(self, collect: Callable[..., tuple[KubeObject, ...]],
                namespaces: Sequence[str]) -> tuple[KubeObject, ...]:
        """Grants live in the Secret's namespace, not the Gateway's: listed cluster-wide, or,
        where RBAC does not allow that (namespaced mode, Role-only; asked first, so no 403),
        in the listed namespaces."""
        if not namespaces or allowed(self._api, "list", REFERENCE_GRANTS.group,
                                     REFERENCE_GRANTS.plural):
            return collect(REFERENCE_GRANTS, (None,))
        return collect(REFERENCE_GRANTS, tuple(namespaces))
