"""The one list and watch code: paged lists (`list_pages`, `list_objects`) and informers (list,
then watch, one resource type, keeping a local cache of (transformed) objects).

Every list of sources, certbotk8s's Secrets and the HTTP-01 tokens Secret goes through here, in
both modes. Raw JSON over the client's `_preload_content=False` (no model objects: memory stays
proportional to what the transform keeps). Informer contract:
- a resource type the cluster does not serve (404 on list, or `locate` finds no served version)
  is reported once via `missing` and re-checked every `missing_recheck` seconds (asking
  `locate` afresh); no tight retry loop;
- 410 Gone (resourceVersion too old: an ERROR event, or the watch request's own status) -> a
  fresh list, which replaces the cache (objects deleted meanwhile are reported as deleted);
- other errors -> backoff (capped at `RECONNECT_CAP`) and a watch from the last resourceVersion
  seen, even when the broken watch had advanced past the one it started from;
- `health` (optional) hears of each contact: `reached` after a list or an opened watch,
  `failed(cause)` with a plain-words cause, `expired` on every 410 re-list;
- `synced` is set after the first successful list (or after finding the API missing);
- `on_change(key, obj | None)` runs on the informer thread for every add/update/delete
  (None = deleted) and `on_change(None, None)` after each full re-list;
- `stop()` ends the thread; `stopping` is set from then on (late callbacks can tell).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from certbotk8s.adapters.kube.client import (
    PAGE_SIZE,
    ApiContact,
    JsonDict,
    Op,
    failure_cause,
    get_raw,
    translated,
)
from certbotk8s.core.errors import KubeError

log = logging.getLogger(__name__)

RECONNECT_CAP = 2.0  # seconds between reconnect attempts at most

Key = tuple[str, str]  # (namespace, name)
Transform = Callable[[JsonDict], Any]
ChangeHandler = Callable[[Key | None, Any], None]
Get = Callable[[list[tuple[str, str]], tuple[float, float]], urllib3.response.BaseHTTPResponse]
# The resource to list now, None when the cluster serves no known version of it; the flag asks
# the cluster afresh (the informer found it missing before).
Locate = Callable[[bool], "WatchedResource | None"]
LIST_TIMEOUT = (10.0, 60.0)


@dataclass(frozen=True)
class WatchedResource:
    """One resource type, cluster-wide. `path` is the collection URL without the host."""

    name: str  # for logs: "ingresses.networking.k8s.io"
    path: str  # "/apis/networking.k8s.io/v1/ingresses"
    api_version: str
    kind: str
    label_selector: str | None = None
    field_selector: str | None = None
    namespace: str | None = None  # None: cluster-wide
    # "0": the first list may come from the API server's watch cache (one small object whose
    # watch must start at once, e.g. the tokens Secret); None: a consistent, paged list.
    list_version: str | None = None

    def query(self) -> list[tuple[str, str]]:
        """The selectors, as query parameters of every list and watch."""
        query = []
        if self.label_selector:
            query.append(("labelSelector", self.label_selector))
        if self.field_selector:
            query.append(("fieldSelector", self.field_selector))
        return query

    def in_namespace(self, namespace: str | None) -> WatchedResource:
        """The same resource watched only in `namespace` (None: cluster-wide, unchanged)."""
        if namespace is None:
            return self
        base, _, plural = self.path.rpartition("/")
        return replace(self, name=f"{self.name}@{namespace}",
                       path=f"{base}/namespaces/{namespace}/{plural}", namespace=namespace)


def list_pages(get: Get, resource: WatchedResource, each: Callable[[JsonDict], None]
               ) -> str | None:
    """Page through a list of `resource` (`get(query, timeout)` makes one request): each item,
    its apiVersion and kind filled in, goes to `each` as its page arrives. The list's
    resourceVersion; None when the type is not served (404). Other errors raise `ApiException`
    or transport errors."""
    token: str | None = None
    version = ""
    while True:
        query = [("limit", str(PAGE_SIZE))]
        if resource.list_version is not None:
            query.append(("resourceVersion", resource.list_version))
        if token:
            query.append(("continue", token))
        try:
            raw = get(query + resource.query(), LIST_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        data = json.loads(raw.data)
        for item in data.get("items") or []:
            if isinstance(item, dict):
                item.setdefault("apiVersion", resource.api_version)
                item.setdefault("kind", resource.kind)
                each(item)
        meta = data.get("metadata") or {}
        version = meta.get("resourceVersion", version)
        token = meta.get("continue") or None
        if not token:
            return str(version)


def list_objects(api: ApiClient, resource: WatchedResource) -> list[JsonDict] | None:
    """Every object of `resource` (one-shot reads), None when the type is not served; failures
    raise the `KubeError` family."""
    items: list[JsonDict] = []
    with translated(Op("list", resource.name.partition("@")[0], resource.namespace)):
        listed = list_pages(lambda query, timeout: get_raw(api, resource.path, query, timeout),
                            resource, items.append)
    return None if listed is None else items


SECRETS = WatchedResource("secrets", "/api/v1/secrets", "v1", "Secret")
EVENTS = WatchedResource("events", "/api/v1/events", "v1", "Event")


def list_core(resource: WatchedResource, api: ApiClient, namespace: str | None, *,
              label_selector: str | None = None, field_selector: str | None = None
              ) -> list[JsonDict]:
    """Every object of a built-in type that always exists (`SECRETS`, `EVENTS`) matching the
    selectors; failures (a 404 included) raise the `KubeError` family."""
    selected = replace(resource, label_selector=label_selector or None,
                       field_selector=field_selector or None).in_namespace(namespace)
    items = list_objects(api, selected)
    if items is None:
        raise KubeError(f"{Op('list', resource.name, namespace)} failed: HTTP 404")
    return items


class _Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


class Informer:
    def __init__(self, api_client: ApiClient, resource: WatchedResource, on_change: ChangeHandler,
                 transform: Transform = lambda obj: obj, watch_timeout: int = 290,
                 missing_recheck: float = 300.0, health: ApiContact | None = None,
                 locate: Locate | None = None, thread_name: str | None = None) -> None:
        self._api = api_client
        self.resource = resource  # the version in use, once `locate` found it
        self._locate = locate
        self._thread_name = thread_name or f"informer-{resource.name}"
        self._on_change = on_change
        self._transform = transform
        self._watch_timeout = watch_timeout
        self._missing_recheck = missing_recheck
        self.namespace = resource.namespace
        self.cache: dict[Key, Any] = {}
        self.synced = threading.Event()
        self.missing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: urllib3.response.BaseHTTPResponse | None = None
        self._health = health
        self._version: str | None = None  # the last resourceVersion seen (None: list first)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Informer:
        self._thread = threading.Thread(target=self._run, daemon=True, name=self._thread_name)
        self._thread.start()
        return self

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread. A watch request still waiting for the API server's first answer
        cannot be interrupted: its daemon thread ends when that answer comes (`stopping`)."""
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # already closed
                response.shutdown()  # unblock a read in progress
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    # -- HTTP -----------------------------------------------------------------------------------

    def _get(self, query: list[tuple[str, str]], timeout: tuple[float, float]
             ) -> urllib3.response.BaseHTTPResponse:
        return get_raw(self._api, self.resource.path, query, timeout)

    def _apply(self, obj: JsonDict) -> Any:
        """The transformed object; one that cannot be transformed is kept out, not fatal."""
        try:
            return self._transform(obj)
        except Exception:
            log.exception("%s: cannot read %s; ignoring it", self.resource.name, _key(obj))
            return None

    def _located(self) -> bool:
        """Whether the resource is served; with `locate`, the version to use is found first."""
        if self._locate is None:
            return True
        found = self._locate(self.missing)
        if found is None:
            return False
        self.resource = found
        return True

    def _list(self) -> str | None:
        """Replace the cache with a fresh list; the list's resourceVersion, None if missing."""
        if not self._located():
            return None
        fresh: dict[Key, Any] = {}

        def keep(item: JsonDict) -> None:
            value = self._apply(item)
            if value is not None:
                fresh[_key(item)] = value

        version = list_pages(self._get, self.resource, keep)
        if version is None:
            return None
        old = self.cache
        self.cache = fresh
        for key in old.keys() - fresh.keys():
            self._on_change(key, None)
        self._on_change(None, None)
        return version

    def _watch(self, version: str) -> None:
        """Apply watch events until the server ends the watch; `_version` follows each one."""
        query = [("watch", "true"), ("resourceVersion", version),
                 ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(self._watch_timeout))]
        try:
            raw = self._get(query + self.resource.query(), (10.0, self._watch_timeout + 30.0))
        except ApiException as e:
            if e.status == 410:
                raise _Gone() from e
            raise
        self._report_reached()
        self._response = raw
        try:
            if self._stop.is_set():  # stop() may have come before the response was known
                return
            for line in _lines(raw):  # one JSON event per line
                if self._stop.is_set():
                    break
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone()
                    raise ApiException(status=obj.get("code", 500), reason=obj.get("message"))
                new_version = (obj.get("metadata") or {}).get("resourceVersion")
                if new_version:
                    self._version = str(new_version)  # a broken watch resumes from here
                if kind == "BOOKMARK":
                    continue
                obj.setdefault("apiVersion", self.resource.api_version)
                obj.setdefault("kind", self.resource.kind)
                key = _key(obj)
                if kind == "DELETED":
                    self.cache.pop(key, None)
                    self._on_change(key, None)
                else:
                    value = self._apply(obj)
                    if value is None:
                        self.cache.pop(key, None)
                    else:
                        self.cache[key] = value
                    self._on_change(key, value)
        finally:
            self._response = None
            # A watch cut short still has unread data: never hand that connection back.
            raw.close()
            raw.release_conn()

    def _report_reached(self) -> None:
        if self._health is not None:
            self._health.reached(self.resource.name)

    # -- loop -----------------------------------------------------------------------------------

    def _run(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                if self._version is None:
                    listed = self._list()
                    self._report_reached()
                    if listed is None:
                        if not self.missing and self._locate is None:  # else `locate` told
                            log.info("%s not served by this cluster; ignoring it (re-checked "
                                     "every %.0fs)", self.resource.name, self._missing_recheck)
                        self.missing = True
                        self.synced.set()
                        self._stop.wait(self._missing_recheck)
                        continue
                    self.missing = False
                    self._version = listed
                    self.synced.set()
                self._watch(self._version)
                delay = 0.2
            except _Gone:
                log.info("%s: watch too old (410, resourceVersion %s), listing again",
                         self.resource.name, self._version)
                self._version = None
                if self._health is not None:
                    self._health.expired(self.resource.name)
            except Exception as e:  # the informer thread must outlive anything a watch hits
                if self._stop.is_set():
                    break
                expected = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)
                cause = failure_cause(e)
                if self._health is not None:
                    if _answered(e):  # e.g. 403: the API server is there, RBAC said no
                        self._health.reached(self.resource.name)
                    else:
                        self._health.failed(self.resource.name, cause)
                log.log(logging.WARNING if isinstance(e, expected) else logging.ERROR,
                        "%s: watch failed (%s); retrying in %.1fs", self.resource.name,
                        cause, delay, exc_info=not isinstance(e, expected))
                self._stop.wait(delay * random.uniform(0.8, 1.2))
                # Capped low: the watches must be back within seconds of the API server
                # (one failed GET per informer every 2 s is cheap while it is down).
                delay = min(delay * 2, RECONNECT_CAP)
                # Re-watch from the last version seen: nothing is missed; 410 forces a list.


def _answered(e: Exception) -> bool:
    """An error answer from a working API server (4xx but 408/429), not an outage."""
    return isinstance(e, ApiException) and 400 <= (e.status or 0) < 500 \
        and e.status not in (408, 429)


def _lines(raw: urllib3.response.BaseHTTPResponse) -> Iterator[bytes]:
    """Lines as soon as their chunk arrives (iterating the response would wait for 64 KiB)."""
    pending = b""
    chunks = raw.read_chunked(decode_content=True) if raw.chunked else raw.stream(1024)
    for chunk in chunks:
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line
    if pending:
        yield pending


def _key(obj: JsonDict) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))
