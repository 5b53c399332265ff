"""Whether a namespace still takes new content: one GET per namespace asked about.

Contract: not found is `GONE`; a `deletionTimestamp` is `TERMINATING` (the API server refuses new
objects there, and without a namespace controller it may stay so for ever); a 403 (namespaced
mode: Roles only, no `get namespaces`) is `UNKNOWN`, so callers decide without it. Other
failures raise `KubeError`.
"""

from __future__ import annotations

from kubernetes.client import ApiClient

from certbotk8s.adapters.kube import rest
from certbotk8s.adapters.kube.client import Op, request
from certbotk8s.adapters.kube.rest import KubeRest
from certbotk8s.core.errors import KubeForbidden
from certbotk8s.core.state.inflight import NamespaceState


class KubeNamespaces:
    """`ask=False` (namespaced mode: Roles only, no `get namespaces` granted) answers `UNKNOWN`
    without a request, rather than a 403 in the API server's audit log at every sweep."""

    def __init__(self, api_client: ApiClient, ask: bool = True) -> None:
        self._rest = KubeRest(api_client)
        self._ask = ask

    def state(self, name: str) -> NamespaceState:
        if not self._ask:
            return NamespaceState.UNKNOWN
        try:
            found = request(Op("get", "namespaces", None, name),
                            lambda: self._rest.get(rest.path("v1", "namespaces", None, name)))
        except KubeForbidden:
            return NamespaceState.UNKNOWN
        if found is None:
            return NamespaceState.GONE
        if (found.get("metadata") or {}).get("deletionTimestamp"):
            return NamespaceState.TERMINATING
        return NamespaceState.ACTIVE
