"""A fake `ApiClient` answering raw GETs as a Kubernetes API server does: API discovery, paged
lists and watches of the objects it holds, for the adapters that read through `get_raw`."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


class Stream:
    """A watch response: event lines pushed by the test; ends on `shutdown()` (the informer's
    stop) or `end()`. `push` returns once the reader asked for what follows the event, that is
    once the informer has applied it."""

    chunked = False
    status = 200

    def __init__(self) -> None:
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._asked = 0  # read attempts begun
        self._pushed = 0  # lines pushed
        self._reading = threading.Condition()

    def push(self, event: dict[str, Any], timeout: float = 10) -> bool:
        """Send `event`; True once the informer has applied it (False: it never read on)."""
        with self._reading:
            self._pushed += 1
            line = self._pushed  # read attempt N takes line N; N + 1 begins once it is applied
        self._lines.put(json.dumps(event).encode() + b"\n")
        with self._reading:
            return self._reading.wait_for(lambda: self._asked > line, timeout)

    def end(self) -> None:
        self._lines.put(None)

    def fail(self, event: dict[str, Any]) -> None:
        """Send an event after which the informer reads no further (an ERROR)."""
        self._lines.put(json.dumps(event).encode() + b"\n")

    def stream(self, size: int) -> Iterator[bytes]:
        while True:
            with self._reading:
                self._asked += 1
                self._reading.notify_all()
            line = self._lines.get()
            if line is None:
                return
            yield line

    def shutdown(self) -> None:
        self.end()

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


@dataclass
class Answer:
    status: int
    data: bytes
    reason: str = ""
    chunked: bool = False


@dataclass
class FakeApiServer:
    """`served`: resource name (`gateways.gateway.networking.k8s.io`) -> the versions it is
    served at (core types are always served); `objects`: resource name (or `secrets`) ->
    objects, at every served version (apiVersion set to the one asked for), per namespace or
    cluster-wide. Records every GET; watches stay open until the informer stops."""

    served: dict[str, tuple[str, ...]] = field(default_factory=dict)
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    watches: list[Stream] = field(default_factory=list)
    watching: threading.Condition = field(default_factory=threading.Condition)
    # the answer to every SelfSubjectAccessReview (adapters/kube/access.py)
    access_allowed: bool = True

    # -- the two ApiClient methods `get_raw` uses ------------------------------------------

    def param_serialize(self, *, method: str, resource_path: str,
                        query_params: list[tuple[str, str]] | None, **_: Any) -> tuple[Any, ...]:
        return (method, resource_path, dict(query_params or ()))

    def call_api(self, method: str, path: str, query: dict[str, str], **_: Any) -> Any:
        self.requests.append((path, query))
        if method == "POST" and path.endswith("/selfsubjectaccessreviews"):
            return _Response(Answer(201, json.dumps(
                {"status": {"allowed": self.access_allowed}}).encode()))
        return _Response(self._answer(path, query))

    # -- helpers for tests -----------------------------------------------------------------

    def wait_watches(self, count: int, timeout: float = 10) -> bool:
        """Until `count` watch requests were made (a new one follows a re-list)."""
        with self.watching:
            return self.watching.wait_for(lambda: len(self.watches) >= count, timeout)

    def discovery_requests(self) -> list[str]:
        """The group versions asked for (`/apis/<group>/<version>`), in order."""
        return [path for path, _ in self.requests if path.count("/") == 3]

    # -- answers ---------------------------------------------------------------------------

    def _answer(self, path: str, query: dict[str, str]) -> Any:
        parts = path.strip("/").split("/")
        if parts[0] == "api":  # the core group: v1, always served
            parts = ["apis", "", *parts[1:]]
        if parts[0] != "apis" or len(parts) < 3:
            return _status(404, "not found")
        group, version = parts[1], parts[2]
        if len(parts) == 3:
            return self._resources(group, version)
        plural = parts[-1]
        name = f"{plural}.{group}" if group else plural
        if group and version not in self.served.get(name, ()):
            return _status(404, "the server could not find the requested resource")
        namespace = parts[4] if len(parts) == 6 and parts[3] == "namespaces" else None
        items = [dict(o, apiVersion=f"{group}/{version}") if group else dict(o)
                 for o in self.objects.get(name, [])
                 if namespace is None or o["metadata"]["namespace"] == namespace]
        if query.get("watch") == "true":
            stream = Stream()
            with self.watching:
                self.watches.append(stream)
                self.watching.notify_all()
            return stream
        return Answer(200, json.dumps({"metadata": {"resourceVersion": "10"},
                                       "items": items}).encode())

    def _resources(self, group: str, version: str) -> Answer:
        """APIResourceList of one group version, 404 when it serves nothing."""
        plurals = [name.split(".", 1)[0] for name, versions in self.served.items()
                   if name.split(".", 1)[1:] == [group] and version in versions]
        if not plurals:
            return _status(404, "the server could not find the requested resource")
        resources = [{"name": p, "namespaced": True, "kind": p.title(), "verbs": ["list"]}
                     for p in plurals] + [{"name": f"{p}/status", "namespaced": True,
                                           "kind": p.title(), "verbs": ["get"]}
                                          for p in plurals]
        return Answer(200, json.dumps({"kind": "APIResourceList",
                                       "groupVersion": f"{group}/{version}",
                                       "resources": resources}).encode())


class _Response:
    def __init__(self, raw: Any) -> None:
        self.response = raw
        self.status = raw.status  # what KubeRest reads before the body


def _status(code: int, message: str) -> Answer:
    return Answer(code, json.dumps({"kind": "Status", "code": code,
                                    "message": message}).encode(), reason="Not Found")
