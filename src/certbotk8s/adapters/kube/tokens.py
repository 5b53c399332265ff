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
- `get` answers from a local cache that an informer on that single Secret keeps current (the one
  list/watch code of `adapters.kube.watch`: re-list on 410 Gone, bookmarks, resume from the last
  resourceVersion, reconnect with backoff on errors; events are applied as their chunk arrives).
  A cache miss falls back to one direct GET, rate limited, so a token another replica has just
  put is served even if the watch lags, and a scanner cannot turn 404s into API load. `get`
  never raises: a failed read is a miss.

Token values are key authorizations (public), but they are never logged anyway. Tokens must be
base64url strings (they become Secret data keys); `put`/`delete` refuse others (`ValueError`),
`get` of one is `None`. Kubernetes failures of `put`/`delete` raise the `KubeError` family.
"""

from __future__ import annotations

import base64
import binascii
import logging
import random
import re
import threading
import time

from kubernetes.client import ApiClient

from certbotk8s.adapters.kube import rest
from certbotk8s.adapters.kube.api_calls import TOKENS_SECRET
from certbotk8s.adapters.kube.client import (
    MERGE_PATCH,
    JsonDict,
    Op,
    request,
)
from certbotk8s.adapters.kube.rest import KubeRest
from certbotk8s.adapters.kube.watch import Informer, Key, WatchedResource
from certbotk8s.core.errors import KubeConflict, KubeError
from certbotk8s.core.state.secret_meta import MANAGED_BY_LABEL, MANAGED_BY_VALUE

log = logging.getLogger(__name__)

DEFAULT_SECRET_NAME = TOKENS_SECRET
ROLE_LABEL = "certbotk8s.io/role"
ROLE_HTTP01_TOKENS = "http01-tokens"
FIELD_MANAGER = "certbotk8s"

# base64url alphabet; 253 is the longest Secret data key (RFC 8555 tokens are 43 characters)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,253}")

_WATCH_SECONDS = 240  # server-side end of one watch request (jittered), then re-watch


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
        self.name = name
        self._api = api_client
        self._rest = KubeRest(api_client)
        self._path = rest.secrets(namespace, name)
        self._delete_delay = delete_delay
        self._doomed: set[str] = set()  # deletions waiting for the next put or flush
        self._flush_timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._cache: dict[str, str] = {}
        self._cache_rv: str | None = None
        self._fallback = _RateLimit(fallback_per_second, fallback_per_second)
        self._informer: Informer | None = None
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
        informer = self._informer
        return informer is not None and informer.synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        informer = self._informer
        return informer is not None and informer.synced.wait(timeout)

    def start(self) -> KubeTokenStore:
        if self._informer is not None:
            return self
        secret = WatchedResource(
            f"secret {self.namespace}/{self.name}", f"/api/v1/namespaces/{self.namespace}/secrets",
            "v1", "Secret", field_selector=f"metadata.name={self.name}",
            namespace=self.namespace, list_version="0")
        informer = Informer(self._api, secret, lambda key, value: self._changed(informer),
                            transform=_TokenView.of,
                            watch_timeout=int(_WATCH_SECONDS * random.uniform(0.9, 1.1)),
                            missing_recheck=5.0, thread_name="http01-token-watch")
        self._informer = informer
        informer.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """End the watch and forget the cache.

        A watch request still waiting for the API server's first answer cannot be interrupted;
        its daemon thread ends by itself when that answer comes and changes nothing here.
        Deletions still waiting are sent first.
        """
        self.flush_deletes()
        informer, self._informer = self._informer, None
        if informer is None:
            return
        informer.stop(timeout)
        with self._lock:
            self._cache = {}
            self._cache_rv = None

    def __enter__(self) -> KubeTokenStore:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _changed(self, informer: Informer) -> None:
        """The informer's view (after an event or a re-list) replaces the cache, unless that
        informer has been stopped. A deleted Secret keeps the last resourceVersion seen, so a
        direct read that started before the deletion cannot bring its tokens back."""
        view: _TokenView | None = informer.cache.get(self._key)
        with self._lock:
            if informer.stopping or informer is not self._informer:
                return
            self._cache = dict(view.tokens) if view is not None else {}
            if view is not None:
                self._cache_rv = view.version

    @property
    def _key(self) -> Key:
        return (self.namespace, self.name)

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
            if not self.synced:
                return
            mine, theirs = _rv_int(self._cache_rv), _rv_int(rv)
            if theirs is not None and (mine is None or theirs > mine):
                self._cache = tokens
                self._cache_rv = rv

    def _read(self) -> JsonDict | None:
        return request(Op("get", "secrets", self.namespace, self.name),
                       lambda: self._rest.get(self._path))

    def _patch(self, data: dict[str, str | None]) -> JsonDict | None:
        body = {"data": data}
        return request(Op("patch", "secrets", self.namespace, self.name),
                       lambda: self._rest.patch(self._path, body, MERGE_PATCH,
                                                (("fieldManager", FIELD_MANAGER),)))

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


class _TokenView:
    """What the informer keeps of the tokens Secret: its tokens and its resourceVersion."""

    __slots__ = ("tokens", "version")

    def __init__(self, tokens: dict[str, str], version: str | None) -> None:
        self.tokens, self.version = tokens, version

    @classmethod
    def of(cls, secret: JsonDict) -> _TokenView:
        version = (secret.get("metadata") or {}).get("resourceVersion")
        return cls(_decode(secret), str(version) if version else None)


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
