"""Which version of each resource type of `core.sources.resources` the cluster serves.

API discovery (`/apis/<group>`, readable by every authenticated client through the default
`system:discovery` role) is asked once per group; the first of the table's versions the group
serves is used, by the one-shot listing, the controller's informers and the HTTP-01 routing
alike. `fresh=True` asks again (an informer re-checking a type it found missing). The choice,
and a type with no known version served, are logged once, in the same words in every mode.
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
    """The cluster's versions per API group, asked once (see the module docstring)."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api
        self._lock = threading.Lock()
        self._groups: dict[str, tuple[str, ...]] = {}  # group -> served versions
        self._told: dict[str, str | None] = {}  # resource name -> version last logged

    def version(self, resource: ApiResource, fresh: bool = False) -> str | None:
        """The version of `resource` to use, None when the cluster serves none it knows.
        Failures to ask raise the `KubeError` family."""
        served = self._served(resource.group, fresh)
        chosen = resource.preferred(served)
        self._tell(resource, served, chosen)
        return chosen

    def locate(self, resource: ApiResource, namespace: str | None = None) -> Locate:
        """For an informer: `resource` at the version to use, in `namespace`."""
        def find(fresh: bool) -> WatchedResource | None:
            version = self.version(resource, fresh)
            return None if version is None else watched(resource, version, namespace)
        return find

    def _served(self, group: str, fresh: bool) -> tuple[str, ...]:
        with self._lock:  # informers start together: one request per group, not one each
            if fresh or group not in self._groups:
                self._groups[group] = self._ask(group)
            return self._groups[group]

    def _ask(self, group: str) -> tuple[str, ...]:
        path = f"/apis/{group}" if group else "/api"
        found = request(Op("get", "API discovery", name=path), lambda: get_raw(self._api, path, [],
                                                               REQUEST_TIMEOUT))
        if found is None:  # the group is not served at all
            return ()
        if not group:  # APIVersions: {"versions": ["v1"]}
            return tuple(str(v) for v in found.get("versions") or [])
        return tuple(str(v.get("version")) for v in found.get("versions") or []
                     if isinstance(v, dict))

    def _tell(self, resource: ApiResource, served: tuple[str, ...], chosen: str | None) -> None:
        with self._lock:
            if resource.name in self._told and self._told[resource.name] == chosen:
                return
            self._told[resource.name] = chosen
        if chosen is not None:
            log.info("%s: reading %s (the cluster serves %s)", resource.name,
                     resource.api_version(chosen), ", ".join(served))
        else:
            log.info("%s: not served by this cluster (it serves %s; known: %s); treated as "
                     "empty", resource.name, ", ".join(served) or "no version of the group",
                     ", ".join(resource.versions))
