"""TokenStore shared by every controller replica: HTTP-01 tokens as keys of one Secret.

All tokens live in ONE Opaque Secret in the controller's namespace (labelled as certbotk8s's,
role `http01-tokens`), one data key per token, so any replica can answer any token:

- `put` merge-patches `data[token]` (the API server applies merge patches atomically, so
  concurrent puts of different tokens from different replicas never lose one); it creates the
  Secret when it is missing and patches again when another replica created it first.
- `delete` merge-patches `data[token]` to null; a missing Secret or token is success. With
  `delete_delay` (the controller) the removal waits up to that long and rides on the next
  `put`'s patch when one comes first (one write per token instead of two; a token of an
  ended order is harmless for those seconds: its challenge is over). `flush_deletes` (and
  `stop`) send what is waiting; a failed one is kept for the next `put` or flush.
- `remove_stale` deletes the tokens already there at its previous call: called by the leader at
  an interval longer than any order may take, it clears what orders nobody finishes left (a
  leader killed mid-order whose successor ordered anew, a CronJob run that was killed).
- `get` answers from a local cache that a watch on that single Secret keeps current (re-list on
  410 Gone, reconnect with backoff on errors). A cache miss falls back to one direct GET, rate
  limited, so a token another replica has just put is served even if the watch lags, and a
  scanner cannot turn 404s into API load. `get` never raises: a failed read is a miss.

Token values are key authorizations (public), but they are never logged anyway. Tokens must be
base64url strings (they become Secret data keys); `put`/`delete` refuse others (`ValueError`),
`get` of one is `None`. Kubernetes failures of `put`/`delete` raise the `KubeError` family.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import urllib3
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from certbotk8s.adapters.kube import rest
from certbotk8s.adapters.kube.client import (
    MERGE_PATCH,
    REQUEST_TIMEOUT,
    JsonDict,
    Op,
    request,
    translate,
)
from certbotk8s.adapters.kube.rest import KubeRest
from certbotk8s.core.errors import KubeConflict, KubeError
from certbotk8s.core.state.secret_meta import MANAGED_BY_LABEL, MANAGED_BY_VALUE

log = logging.getLogger(__name__)

DEFAULT_SECRET_NAME = "certbotk8s-http01-tokens"
ROLE_LABEL = "certbotk8s.io/role"
ROLE_HTTP01_TOKENS = "http01-tokens"
FIELD_MANAGER = "certbotk8s"

# base64url alphabet; 253 is the longest Secret data key (RFC 8555 tokens are 43 characters)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,253}")

_WATCH_SECONDS = 240  # server-side end of one watch request (jittered), then re-watch
_BACKOFF_FIRST = 0.5
_BACKOFF_CAP = 30.0


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


def valid_token(token: str) -> bool:
    """Whether `token` can be a data key of the tokens Secret (base64url, 1..253 chars)."""
    return _TOKEN.fullmatch(token) is not None


def _check(token: str) -> None:
    if not valid_token(token):
        raise ValueError("HTTP-01 token must be 1..253 base64url characters")


def _rv_int(rv: str | None) -> int | None:
    try:
        return int(rv) if rv else None
    except ValueError:
        return None


class _RateLimit:
    """Token bucket: `rate` per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


class _WatchRun:
    """One start()..stop() of the watch: its stop flag, thread and open response."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.response: Any = None


class KubeTokenStore:
    """TokenStore on one Secret, shared between replicas (see the module docstring).

    `start()` runs the watch thread that feeds `get`; without it nothing is cached and every
    `get` is a (rate limited) direct read. `stop()` ends it. `wait_synced()` blocks until the
    first list landed.
    """

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        name: str = DEFAULT_SECRET_NAME,
        *,
        fallback_per_second: float = 20.0,
        delete_delay: float = 0.0,
    ) -> None:
        self.namespace = namespace
        self._delete_delay = delete_delay
        self._doomed: set[str] = set()  # deletions waiting for the next put or flush
        self._flush_timer: threading.Timer | None = None
        self.name = name
        self._rest = KubeRest(api_client)
        self._only = ("fieldSelector", f"metadata.name={name}")
        self._lock = threading.Lock()
        self._cache: dict[str, str] = {}
        self._cache_rv: str | None = None
        self._fallback = _RateLimit(fallback_per_second, fallback_per_second)
        self._synced = threading.Event()
        self._run: _WatchRun | None = None
        self._seen_at_last_sweep: set[str] = set()

    # --- TokenStore -------------------------------------------------------------------

    def put(self, token: str, key_authorization: str) -> None:
        _check(token)
        value = base64.b64encode(key_authorization.encode()).decode("ascii")
        with self._lock:
            doomed, self._doomed = self._doomed - {token}, set()
        try:
            patched = self._patch({**dict.fromkeys(doomed), token: value})
            if patched is None:
                patched = self._create({token: value})  # a new Secret: nothing to delete
        except Exception:
            self._keep_doomed(doomed)
            raise
        self._apply(patched)

    def delete(self, token: str) -> None:
        _check(token)
        if self._delete_delay > 0:
            with self._lock:
                self._doomed.add(token)
                if self._flush_timer is None:
                    self._flush_timer = threading.Timer(self._delete_delay, self.flush_deletes)
                    self._flush_timer.daemon = True
                    self._flush_timer.start()
            return
        self._remove({token})

    def flush_deletes(self) -> None:
        """Send the deletions still waiting (`delete_delay`); a failure keeps them."""
        with self._lock:
            doomed, self._doomed = self._doomed, set()
            self._flush_timer = None
        if not doomed:
            return
        try:
            self._remove(doomed)
        except KubeError as e:
            log.warning("token store: removing %d tokens failed (%s); trying again later",
                        len(doomed), e)
            self._keep_doomed(doomed)

    def _keep_doomed(self, doomed: set[str]) -> None:
        with self._lock:
            self._doomed |= doomed

    def _remove(self, tokens: set[str]) -> None:
        patched = self._patch(dict.fromkeys(tokens))
        if patched is None:  # no Secret, so no token
            with self._lock:
                for token in tokens:
                    self._cache.pop(token, None)
            return
        self._apply(patched)

    def remove_stale(self) -> list[str]:
        secret = self._read()
        data = (secret or {}).get("data")
        current = set(data) if isinstance(data, dict) else set()
        with self._lock:
            stale = sorted(current & self._seen_at_last_sweep)
            self._seen_at_last_sweep = current - set(stale)
        if stale:
            patched = self._patch(dict.fromkeys(stale))
            if patched is not None:
                self._apply(patched)
        return stale

    def get(self, token: str) -> str | None:
        if not valid_token(token):
            return None
        with self._lock:
            value = self._cache.get(token)
        if value is not None:
            return value
        if not self._fallback.allow():
            log.debug("token store: direct read rate limited, answering a cache miss as unknown")
            return None
        try:
            secret = self._read()
        except KubeError as e:
            log.warning("token store: direct read of the tokens Secret failed: %s", e)
            return None
        if secret is None:
            return None
        self._apply(secret)
        return _decode(secret).get(token)

    # --- watch ------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """Whether the watch has listed the Secret at least once since `start()`."""
        return self._synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def start(self) -> KubeTokenStore:
        if self._run is not None:
            return self
        run = _WatchRun()
        self._run = run
        run.thread = threading.Thread(target=self._watch_loop, args=(run,),
                                      name="http01-token-watch", daemon=True)
        run.thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """End the watch and forget the cache.

        A watch request still waiting for the API server's first answer cannot be interrupted;
        its daemon thread ends by itself when that answer comes and changes nothing here.
        Deletions still waiting are sent first.
        """
        self.flush_deletes()
        run, self._run = self._run, None
        if run is None:
            return
        run.stopping.set()
        response = run.response
        if response is not None:
            with contextlib.suppress(OSError, AttributeError, ValueError, RuntimeError):
                response.shutdown()  # unblocks the read in the watch thread
        with self._lock:
            self._synced.clear()
            self._cache = {}
            self._cache_rv = None
        if run.thread is not None:
            run.thread.join(timeout)

    def __enter__(self) -> KubeTokenStore:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _watch_loop(self, run: _WatchRun) -> None:
        backoff = _BACKOFF_FIRST
        while not run.stopping.is_set():
            try:
                rv = self._list(run)
                backoff = _BACKOFF_FIRST
                while not run.stopping.is_set():
                    rv = self._watch(run, rv)
            except _Gone:
                log.debug("token store: watch expired (410), listing again")
                continue
            except (KubeError, ApiException, urllib3.exceptions.HTTPError, OSError,
                    ValueError) as e:
                if run.stopping.is_set():
                    break
                log.warning("token store: watch of Secret %s/%s failed (%s: %s); "
                            "retrying in %.1fs", self.namespace, self.name,
                            type(e).__name__, e, backoff)
                run.stopping.wait(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, _BACKOFF_CAP)

    def _list(self, run: _WatchRun) -> str:
        """List the one Secret, replace the cache, return the list's resourceVersion.

        resourceVersion "0" lets the API server answer from its watch cache, so the watch
        that follows starts at once instead of waiting for the cache to catch up.
        """
        op = Op("list", "secrets", self.namespace)
        data = request(op, lambda: self._rest.get(
            rest.secrets(self.namespace), (self._only, ("resourceVersion", "0"))))
        if data is None:
            raise KubeError(f"{op} failed: namespace {self.namespace} not found")
        rv = str((data.get("metadata") or {}).get("resourceVersion") or "")
        items = [i for i in data.get("items") or [] if isinstance(i, dict)]
        self._replace(run, _decode(items[0]) if items else {}, rv, synced=True)
        return rv

    def _watch(self, run: _WatchRun, rv: str) -> str:
        """One watch request from `rv`; returns the last resourceVersion seen."""
        seconds = int(_WATCH_SECONDS * random.uniform(0.9, 1.1))
        try:
            response = self._rest.get(
                rest.secrets(self.namespace),
                (self._only, ("watch", "true"), ("allowWatchBookmarks", "true"),
                 ("resourceVersion", rv), ("timeoutSeconds", str(seconds))),
                timeout=(REQUEST_TIMEOUT[0], seconds + 30.0))
        except ApiException as e:
            if e.status == 410:
                raise _Gone() from e
            raise translate(e, Op("watch", "secrets", self.namespace, self.name)) from e
        run.response = response
        try:
            if run.stopping.is_set():  # stop() may have missed this response
                return rv
            for line in _lines(response):
                if run.stopping.is_set():
                    break
                rv = self._event(run, line, rv)
        finally:
            run.response = None
            # A watch left early still streams on its connection: close it rather than
            # hand it back to the pool, where the next request would wait behind the watch.
            response.close()
            response.release_conn()
        return rv

    def _event(self, run: _WatchRun, line: str, rv: str) -> str:
        event = json.loads(line)
        if not isinstance(event, dict):
            raise ValueError("watch event is not a JSON object")
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, dict):
            raise ValueError("watch event without an object")
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone()
            raise KubeError(f"watch secrets {self.namespace}/{self.name}: "
                            f"HTTP {obj.get('code')}: {str(obj.get('message', ''))[:400]}")
        new_rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
        if kind in ("ADDED", "MODIFIED"):
            self._replace(run, _decode(obj), new_rv)
        elif kind == "DELETED":
            self._replace(run, {}, new_rv)
        return new_rv

    def _replace(self, run: _WatchRun, tokens: dict[str, str], rv: str, *,
                 synced: bool = False) -> None:
        """The watch's view replaces the cache, unless that watch has been stopped."""
        with self._lock:
            if run.stopping.is_set():
                return
            self._cache = tokens
            self._cache_rv = rv
            if synced:
                self._synced.set()

    # --- cache and API ----------------------------------------------------------------

    def _apply(self, secret: JsonDict) -> None:
        """Let a direct read or a write's answer update the cache, when that is safe.

        Only while the watch runs (it corrects the cache later) and only when its
        resourceVersion is known to be newer (integers in practice). Without a watch nothing
        is cached, so a token another replica deleted is never served from here.
        """
        rv = str((secret.get("metadata") or {}).get("resourceVersion") or "")
        tokens = _decode(secret)
        with self._lock:
            if not self._synced.is_set():
                return
            mine, theirs = _rv_int(self._cache_rv), _rv_int(rv)
            if theirs is not None and (mine is None or theirs > mine):
                self._cache = tokens
                self._cache_rv = rv

    def _read(self) -> JsonDict | None:
        return request(Op("get", "secrets", self.namespace, self.name),
                       lambda: self._rest.get(rest.secrets(self.namespace, self.name)))

    def _patch(self, data: dict[str, str | None]) -> JsonDict | None:
        body = {"data": data}
        return request(Op("patch", "secrets", self.namespace, self.name),
                       lambda: self._rest.patch(rest.secrets(self.namespace, self.name), body,
                                                MERGE_PATCH, (("fieldManager", FIELD_MANAGER),)))

    def _create(self, data: dict[str, str]) -> JsonDict:
        body: JsonDict = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, ROLE_LABEL: ROLE_HTTP01_TOKENS},
            },
            "type": "Opaque",
            "data": data,
        }
        op = Op("create", "secrets", self.namespace, self.name)
        try:
            created = request(op, lambda: self._rest.post(
                rest.secrets(self.namespace), body, (("fieldManager", FIELD_MANAGER),)))
        except KubeConflict:
            # another replica created it first: add our keys to theirs
            patched = self._patch(dict(data))
            if patched is None:
                raise KubeError(f"{op}: the Secret appeared and vanished again; "
                                "try again") from None
            return patched
        if created is None:
            raise KubeError(f"{op} failed: namespace {self.namespace} not found")
        return created


def _decode(secret: JsonDict) -> dict[str, str]:
    """The token → key authorization map of the tokens Secret (bad entries skipped)."""
    out: dict[str, str] = {}
    data = secret.get("data")
    if not isinstance(data, dict):
        return out
    for key, encoded in data.items():
        try:
            out[str(key)] = base64.b64decode(str(encoded or ""), validate=True).decode()
        except (binascii.Error, ValueError):
            log.warning("token store: data key of Secret %s is not valid base64 text; skipped",
                        (secret.get("metadata") or {}).get("name"))
    return out


def _lines(response: Any) -> Iterator[str]:
    """Non-empty lines of a streamed (chunked) response."""
    buffer = bytearray()
    for chunk in response.stream(amt=None, decode_content=False):
        buffer.extend(chunk)
        while (cut := buffer.find(b"\n")) != -1:
            line = buffer[:cut].decode("utf-8", errors="replace").strip()
            del buffer[:cut + 1]
            if line:
                yield line
    rest = buffer.decode("utf-8", errors="replace").strip()
    if rest:
        yield rest
