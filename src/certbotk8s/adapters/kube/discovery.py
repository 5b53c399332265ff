"""Which version of each resource type of `core.sources.resources` the cluster serves.

API discovery (`/apis/<group>/<version>`, the resources one group version serves, readable by
every authenticated client through the default `system:discovery` role) is asked once per group
version: a group may serve a version for some of its types only (Gateway API 1.4 serves
ReferenceGrant at v1beta1 only, Gateways at v1 and v1beta1, and a CRD can stop serving one
version). The first of the table's versions that serves the type is used, by the one-shot
listing, the controller's informers and the HTTP-01 routing alike. `fresh=True` asks again (an
informer re-checking a type it found missing). The choice, and a type with no known version
served, are logged once, in the same words in every mode.
"""

from __future__ import annotations

import logging
import threading

from kubernetes.client import ApiClient

from certbotk8s.adapters.kube.client import REQUEST_TIMEOUT, Op, get_raw, request
from certbotk8s.adapters.kube.watch import Locate, WatchedResource
from certbotk8s.core.sources.resources import ApiResource

log = logging.getLogger(__name__)


def watched(resource: ApiResource, version: str, namespace: str | None = None
            ) -> WatchedResource:
    """`resource` at `version`, cluster-wide or in one namespace, for listing and watching."""
    root = f"/apis/{resource.group}" if resource.group else "/api"
    found = WatchedResource(resource.name, f"{root}/{version}/{resource.plural}",
                            resource.api_version(version), resource.kind)
    return found.in_namespace(namespace)


class ServedVersions:
    """The cluster's resources per group version, asked once (see the module docstring)."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api
        self._lock = threading.Lock()
        self._resources: dict[str, frozenset[str]] = {}  # "group/version" -> plurals served
        self._told: dict[str, str | None] = {}  # resource name -> version last logged

    def version(self, resource: ApiResource, fresh: bool = False) -> str | None:
        """The version of `resource` to use, None when the cluster serves none it knows.
        Failures to ask raise the `KubeError` family."""
        chosen = next((v for v in resource.versions
                       if resource.plural in self._served(resource.api_version(v), fresh)),
                      None)
        self._tell(resource, chosen)
        return chosen

    def locate(self, resource: ApiResource, namespace: str | None = None) -> Locate:
        """For an informer: `resource` at the version to use, in `namespace`."""
        def find(fresh: bool) -> WatchedResource | None:
            version = self.version(resource, fresh)
            return None if version is None else watched(resource, version, namespace)
        return find

    def _served(self, group_version: str, fresh: bool) -> frozenset[str]:
        with self._lock:  # informers start together: one request per group version in all
            if fresh or group_version not in self._resources:
                self._resources[group_version] = self._ask(group_version)
            return self._resources[group_version]

    def _ask(self, group_version: str) -> frozenset[str]:
        path = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
        found = request(Op("get", "API discovery", name=path),
                        lambda: get_raw(self._api, path, [], REQUEST_TIMEOUT))
        if found is None:  # the group version is not served at all
            return frozenset()
        return frozenset(str(r.get("name")) for r in found.get("resources") or []
                         if isinstance(r, dict))  # subresources are "gateways/status"

    def _tell(self, resource: ApiResource, chosen: str | None) -> None:
        with self._lock:
            if resource.name in self._told and self._told[resource.name] == chosen:
                return
            self._told[resource.name] = chosen
        if chosen is not None:
            log.info("%s: reading %s", resource.name, resource.api_version(chosen))
        else:
            log.info("%s: not served by this cluster at any known version (%s); treated as "
                     "empty", resource.name, ", ".join(resource.versions))
