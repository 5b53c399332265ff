"""The one table of the resource types certbotk8s reads (sources) and writes (HTTP-01 routing),
with the API versions it understands, in order of preference.

Both modes read it: the adapters ask the cluster once (API discovery) which of `versions` it
serves and use the first one (`adapters.kube.discovery`); `core.sources.discovery` accepts
objects of exactly these apiVersions. A new version goes here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class ApiResource:
    """One resource type: API group ("" for the core group), kind, plural, known versions."""

    group: str
    kind: str
    plural: str
    versions: tuple[str, ...]  # preference order: the first one the cluster serves is used

    @property
    def name(self) -> str:
        """`gateways.gateway.networking.k8s.io`, as kubectl and RBAC name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def first_api_version(self) -> str:
        """The apiVersion of the most preferred version (for objects that name none)."""
        return self.api_version(self.versions[0])

    @property
    def api_versions(self) -> frozenset[str]:
        """Every apiVersion of this type that certbotk8s understands."""
        return frozenset(self.api_version(v) for v in self.versions)

    def preferred(self, served: Collection[str]) -> str | None:
        """The first known version among `served` (the cluster's versions of the group)."""
        return next((v for v in self.versions if v in served), None)


INGRESSES = ApiResource("networking.k8s.io", "Ingress", "ingresses", ("v1",))
ISTIO_GATEWAYS = ApiResource("networking.istio.io", "Gateway", "gateways", ("v1", "v1beta1"))
GATEWAY_API_GATEWAYS = ApiResource("gateway.networking.k8s.io", "Gateway", "gateways",
                                   ("v1", "v1beta1"))
REFERENCE_GRANTS = ApiResource("gateway.networking.k8s.io", "ReferenceGrant", "referencegrants",
                               ("v1", "v1beta1"))

# HTTP-01 routing objects certbotk8s creates in its own namespace
VIRTUAL_SERVICES = ApiResource("networking.istio.io", "VirtualService", "virtualservices",
                               ("v1", "v1beta1"))
HTTP_ROUTES = ApiResource("gateway.networking.k8s.io", "HTTPRoute", "httproutes",
                          ("v1", "v1beta1"))

# The sources, keyed as `SourceSnapshot` and the controller's informers name them.
SOURCES: dict[str, ApiResource] = {
    "ingresses": INGRESSES,
    "istio": ISTIO_GATEWAYS,
    "gateway_api": GATEWAY_API_GATEWAYS,
    "grants": REFERENCE_GRANTS,
}
