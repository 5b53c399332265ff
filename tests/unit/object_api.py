"""A fake `ApiClient` holding objects by URL path, for adapters that write through
`adapters.kube.rest` (create, read, replace, merge patch, delete, list by label): it answers
as the API server does (201/200, 404 not found, 409 exists or stale resourceVersion) and
records every request, so a test can count the writes an operation makes."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

WRITES = ("POST", "PUT", "PATCH", "DELETE")


class _Reply:
    """What `KubeRest.call` reads of an answer (status, reason, data; `response` is itself)."""

    headers: Mapping[str, str] = {}

    def __init__(self, status: int, body: object) -> None:
        self.status = status
        self.reason = {200: "OK", 201: "Created", 404: "Not Found", 409: "Conflict"}.get(
            status, "")
        self.data = json.dumps(body).encode()
        self.response = self

    def read(self) -> bytes:
        return self.data


class ObjectApi:
    """`served`: group version -> the plurals it serves (API discovery); the core group is
    always served (Services, Secrets). `objects`: object path -> object. `calls`: (METHOD,
    path) of each request."""

    def __init__(self, served: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.served = {"v1": ("services", "secrets"),
                       **(served or {"networking.k8s.io/v1": ("ingresses",)})}
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self._versions = itertools.count(1)

    # -- the two ApiClient methods KubeRest uses --------------------------------------------

    def param_serialize(self, *, method: str, resource_path: str,
                        query_params: list[tuple[str, str]] | None = None,
                        body: object = None, **_: Any) -> tuple[Any, ...]:
        return (method, resource_path, dict(query_params or []), body)

    def call_api(self, method: str, path: str, query: dict[str, str], body: Any,
                 **_: Any) -> _Reply:
        self.calls.append((method, path))
        if (path.startswith("/apis/") and path.count("/") == 3) or path == "/api/v1":
            return self._discovery(path.removeprefix("/apis/").removeprefix("/api/"))
        if method == "POST":
            return self._create(path, body)
        if method == "GET" and path in self.objects:
            return _Reply(200, self.objects[path])
        if method == "GET" and self._is_collection(path):
            return self._list(path, query.get("labelSelector", ""))
        if path not in self.objects:
            return _Reply(404, {"kind": "Status", "code": 404})
        if method == "PUT":
            return self._replace(path, body)
        if method == "DELETE":
            del self.objects[path]
            return _Reply(200, {"kind": "Status", "status": "Success"})
        if method == "PATCH":  # a merge patch of top-level maps (None removes a key)
            stored = self.objects[path]
            for key, change in body.items():
                merged = {**(stored.get(key) or {}), **change}
                stored[key] = {k: v for k, v in merged.items() if v is not None}
            stored["metadata"]["resourceVersion"] = str(next(self._versions))
            return _Reply(200, stored)
        return _Reply(405, {"kind": "Status", "code": 405})

    # -- for tests ---------------------------------------------------------------------------

    def writes(self, plural: str | None = None) -> list[tuple[str, str]]:
        """The write requests made (of one resource `plural` when given)."""
        return [(m, p) for m, p in self.calls if m in WRITES
                and (plural is None or f"/{plural}" in p)]

    def named(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        for path, obj in self.objects.items():
            meta = obj["metadata"]
            if f"/{plural}/" in path and (meta["namespace"], meta["name"]) == (namespace, name):
                return obj
        return None

    # -- answers -----------------------------------------------------------------------------

    def _discovery(self, group_version: str) -> _Reply:
        plurals = self.served.get(group_version)
        if not plurals:
            return _Reply(404, {"kind": "Status", "code": 404})
        return _Reply(200, {"kind": "APIResourceList", "groupVersion": group_version,
                            "resources": [{"name": p, "namespaced": True, "kind": p.title(),
                                           "verbs": ["create", "get", "list"]}
                                          for p in plurals]})

    @staticmethod
    def _is_collection(path: str) -> bool:
        """`/api/v1[/namespaces/NS]/PLURAL` or `/apis/G/V[/namespaces/NS]/PLURAL`."""
        parts = path.strip("/").split("/")
        if parts[0] == "api":
            parts = ["apis", "", *parts[1:]]
        return len(parts) in (4, 6)

    def _create(self, collection: str, body: dict[str, Any]) -> _Reply:
        meta = body["metadata"]
        path = f"{collection}/{meta['name']}"
        if path in self.objects:
            return _Reply(409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"})
        stored = json.loads(json.dumps(body))
        stored["metadata"].update(resourceVersion=str(next(self._versions)),
                                  uid=f"uid-{meta['name']}")
        self.objects[path] = stored
        return _Reply(201, stored)

    def _replace(self, path: str, body: dict[str, Any]) -> _Reply:
        current = self.objects[path]
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            return _Reply(409, {"kind": "Status", "code": 409, "reason": "Conflict"})
        stored = json.loads(json.dumps(body))
        stored["metadata"].update(resourceVersion=str(next(self._versions)),
                                  uid=current["metadata"]["uid"])
        self.objects[path] = stored
        return _Reply(200, stored)

    def _list(self, path: str, selector: str) -> _Reply:
        """Objects under `path` (a namespace's collection, or `/api/v1/services` for all
        namespaces) whose labels match every `key=value` of `selector`."""
        wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
        parts = path.strip("/").split("/")
        plural = parts[-1]
        namespace = parts[-2] if len(parts) >= 3 and parts[-3] == "namespaces" else None
        items = []
        for at, obj in self.objects.items():
            meta = obj["metadata"]
            if f"/{plural}/" not in at or \
                    (namespace is not None and meta["namespace"] != namespace):
                continue
            labels = meta.get("labels") or {}
            if all(labels.get(k) == v for k, v in wanted.items()):
                items.append(obj)
        return _Reply(200, {"metadata": {"resourceVersion": "1"}, "items": items})
