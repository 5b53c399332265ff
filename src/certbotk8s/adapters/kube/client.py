"""Kubernetes API plumbing: client loading, one request with error translation, one raw GET
(lists and watches are in `adapters.kube.watch`).

Every call goes through `request`, which asks the generated client for the raw response
(`_preload_content=False`) and parses the JSON itself, so callers get the objects exactly as the
API server sent them (camelCase keys, unknown fields kept). Errors become the `KubeError` family;
404 is `None`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

import pydantic
import urllib3
from kubernetes import client, config
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse

from certbotk8s.adapters.kube.api_calls import require
from certbotk8s.core.errors import (
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeServerError,
    KubeUnreachable,
)

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]

REQUEST_TIMEOUT = (10.0, 30.0)  # connect, read (seconds)
class NoRetryAfterTimeout(urllib3.Retry):
    """urllib3's retries, except that a request the server did not answer in time is never sent
    again. The default repeats it three times: with etcd away the API server holds each one for
    its 60 s request timeout, so one GET blocked a worker for ~2 min (a Lease renewal for four
    renew deadlines), and a write may have been applied meanwhile (the caller decides). Refused
    connections, a connection dropped before an answer (a stale keep-alive connection), and a
    429/503 with Retry-After (the API server while its storage initializes; as client-go does)
    are still retried."""

    def increment(self, method: str | None = None, url: str | None = None,
                  response: BaseHTTPResponse | None = None, error: Exception | None = None,
                  _pool: ConnectionPool | None = None,
                  _stacktrace: TracebackType | None = None) -> NoRetryAfterTimeout:
        if isinstance(error, urllib3.exceptions.ReadTimeoutError):
            raise urllib3.exceptions.MaxRetryError(
                _pool, url or "", error) from error  # type: ignore[arg-type]  # as urllib3 does
        return super().increment(method, url, response, error, _pool, _stacktrace)


NO_READ_RETRIES = NoRetryAfterTimeout(total=3, connect=2, read=2, status=3, other=0,
                                      redirect=0, backoff_factor=0.2, raise_on_status=False)
READINESS_TIMEOUT = (5.0, 8.0)  # the server's etcd check itself takes up to ~4 s when etcd is away
PAGE_SIZE = 500
MERGE_PATCH = "application/merge-patch+json"


def micro_time(value: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 UTC with six fractional digits).

    The client turns a dict body into its model and back, so the string is re-printed by
    `datetime.isoformat()`, which drops the fraction when it is zero; the API server then
    refuses the MicroTime ("cannot parse ... as .000000"). So never send a zero fraction."""
    utc = value.astimezone(UTC)
    if utc.microsecond == 0:
        utc = utc.replace(microsecond=1)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def load_api_client(kubeconfig: str | None, context: str | None = None) -> ApiClient:
    """An ApiClient from `kubeconfig` (or $KUBECONFIG; its `context`, default the current one),
    else from the in-cluster service account, else (outside a pod, like kubectl) from
    ~/.kube/config."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or _home_kubeconfig(context)
    try:
        configuration = client.Configuration()
        # Workers, informers, the token store and the Lease share one client: a pool of 10
        # (the default) would drop connections under load and pay new TLS handshakes.
        configuration.connection_pool_maxsize = 64
        configuration.retries = NO_READ_RETRIES
        if path:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context or None,
                client_configuration=configuration, persist_config=False)
        else:
            config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration)
        _throttle_credential_refresh(configuration)
        return ApiClient(configuration=configuration)
    except (ConfigException, OSError, ValueError) as e:
        where = path or "in-cluster service account"
        where += f" (context {context})" if context else ""
        raise KubeError(f"cannot load Kubernetes client configuration from {where}: {e}") from e


def _home_kubeconfig(context: str | None) -> str | None:
    """~/.kube/config when there is no in-cluster service account (a laptop) or a context is
    asked for (only a kubeconfig has contexts)."""
    home = os.path.expanduser(config.KUBE_CONFIG_DEFAULT_LOCATION)
    outside = not os.environ.get("KUBERNETES_SERVICE_HOST")
    return home if (context or outside) and os.path.exists(home) else None


def _throttle_credential_refresh(configuration: client.Configuration, every: float = 30.0
                                 ) -> None:
    """Re-read credentials at most every `every` seconds, not before every request.

    The kubeconfig loader's hook re-applies the whole kubeconfig on each request (re-reading the
    proxy environment: ~2 ms of CPU per call). Tokens from exec plugins or a projected
    service-account file still get refreshed, just not more often than this.
    """
    hook = configuration.refresh_api_key_hook
    if hook is None:
        return
    lock = threading.Lock()
    last = [-every]

    def throttled(target: client.Configuration) -> None:
        with lock:
            now = time.monotonic()
            if now - last[0] < every:
                return
            last[0] = now
        hook(target)

    configuration.refresh_api_key_hook = throttled


class ApiContact(Protocol):
    """Where the informers and the Lease report how their requests to the API server go (from
    any thread): `reached` after an answer, `failed(cause)` with a plain-words cause,
    `expired` when a watch was answered 410 Gone and listed again."""

    def reached(self, resource: str) -> None: ...

    def failed(self, resource: str, cause: str) -> None: ...

    def expired(self, resource: str) -> None: ...


def failure_cause(e: BaseException) -> str:
    """What went wrong, in plain words, for metrics, logs and Events (never a body or token)."""
    if isinstance(e, KubeUnreachable):
        return e.cause
    if isinstance(e, ApiException):
        message = ""
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            message = str(json.loads(e.body or "").get("message") or "")[:200]
        return f"HTTP {e.status} {message or e.reason or ''}".strip()
    if isinstance(e, urllib3.exceptions.HTTPError | OSError):
        return unreachable(e)
    return str(e)[:200] if isinstance(e, KubeError) else type(e).__name__


@dataclass(frozen=True)
class Op:
    """What a request does, for error messages: `create secrets in ns/name`."""

    verb: str
    resource: str
    namespace: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        target = self.resource
        if self.name:
            target += f" {self.namespace}/{self.name}" if self.namespace else f" {self.name}"
        elif self.namespace:
            target += f" in namespace {self.namespace}"
        else:
            target += " in all namespaces"
        return f"{self.verb} {target}"


def _status_message(e: ApiException) -> str:
    """The `message` of the Status body the server sent (never the whole body)."""
    try:
        body = json.loads(e.body or "")
    except (TypeError, ValueError):
        return ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:400]
    return ""


def unreachable(e: BaseException) -> str:
    """A transport failure in plain words: `connection refused`, `timed out`, `connection reset`
    (no URL with query, no traceback). For an API server the client cannot reach at all."""
    cause: BaseException | None = e
    if isinstance(e, urllib3.exceptions.MaxRetryError) and e.reason is not None:
        cause = e.reason
    text = str(cause).lower()
    for needle, words in (("connection refused", "connection refused"),
                          ("connection reset", "connection reset"),
                          ("read timed out", "timed out (no answer)"),
                          ("timed out", "timed out"),
                          ("name or service not known", "host name not found"),
                          ("certificate_verify_failed", "TLS certificate not trusted")):
        if needle in text:
            return words
    if isinstance(cause, urllib3.exceptions.ProtocolError | ConnectionError):
        return "connection broken"
    return type(cause).__name__


def translate(e: ApiException, op: Op) -> KubeError:
    """The KubeError for a failed request (the caller raises it `from e`)."""
    detail = _status_message(e) or str(e.reason or "")
    status = e.status
    if status == 403:
        return KubeForbidden(f"forbidden: cannot {op}: {detail}")
    if status == 409:
        return KubeConflict(f"conflict: {op}: {detail}")
    if status is not None and status >= 500:
        return KubeServerError(f"{op} failed: HTTP {status}: {detail}")
    return KubeError(f"{op} failed: HTTP {status}: {detail}")


def request(op: Op, call: Callable[[], Any]) -> JsonDict | None:
    """Run one API call made with `_preload_content=False`; parsed JSON, or None on 404."""
    with translated(op):
        try:
            response = call()
        except ApiException as e:
            if e.status == 404:
                return None
            raise
    try:
        data = json.loads(response.data)
    except (TypeError, ValueError) as e:
        raise KubeError(f"{op}: the API server answered with something that is not JSON") from e
    if not isinstance(data, dict):
        raise KubeError(f"{op}: expected a JSON object from the API server")
    return data


@contextlib.contextmanager
def translated(op: Op) -> Iterator[None]:
    """Failures of the requests made inside become the `KubeError` family (404 included)."""
    try:
        yield
    except ApiException as e:
        raise translate(e, op) from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        pool = getattr(e, "pool", None)  # MaxRetryError names the server it gave up on
        where = f" {pool.host}:{pool.port}" if pool is not None else ""
        cause = unreachable(e)
        raise KubeUnreachable(f"{op} failed: API server{where} unreachable ({cause})",
                              cause) from e
    except pydantic.ValidationError as e:
        # The generated client validates bodies against its models before sending. The
        # pydantic error quotes input values (Secret data), so it is not chained: only the
        # field paths are kept.
        where = ", ".join(".".join(str(p) for p in err["loc"]) for err in e.errors())
        raise KubeError(f"{op}: the client refused the request body ({where})") from None


def get_raw(api: ApiClient, path: str, query: list[tuple[str, str]],
            timeout: tuple[float, float]) -> BaseHTTPResponse:
    """One GET of `path` (no host) with the client's credentials; the raw urllib3 response,
    unread (lists are parsed, watches streamed by the caller). An error answer raises
    `ApiException` with its status and body; a request `api_calls` does not declare raises
    `UndeclaredApiCall` before it is sent."""
    require("GET", path, query)  # adapters/kube/api_calls.py
    params = api.param_serialize(
        method="GET", resource_path=path, query_params=query,
        header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
    )
    raw = api.call_api(*params, _request_timeout=timeout).response
    if raw.status >= 400:
        body = raw.data
        raise ApiException(status=raw.status, reason=raw.reason,
                           body=body.decode(errors="replace") if body else "")
    return raw  # type: ignore[no-any-return]


def failing_readiness_checks(api: ApiClient) -> list[str] | None:
    """The API server's own readiness checks that fail (`[-]etcd failed` gives `etcd`), read
    from `/readyz?verbose`, which every client may read (the default `system:public-info-viewer`
    role). [] when it is ready; None when it cannot tell (unreachable, forbidden, no answer)."""
    require("GET", "/readyz")  # adapters/kube/api_calls.py
    try:
        params = api.param_serialize(method="GET", resource_path="/readyz",
                                     query_params=[("verbose", "true")],
                                     header_params={"Accept": "text/plain"},
                                     auth_settings=["BearerToken"])
        raw = api.call_api(*params, _request_timeout=READINESS_TIMEOUT).response
        status, text = raw.status, raw.data.decode("utf-8", errors="replace")
    except (ApiException, urllib3.exceptions.HTTPError, OSError):
        return None
    if status == 200:
        return []
    if status != 500:  # 401/403: not allowed to ask; anything else: not a readyz answer
        return None
    return readiness_failures(text)


def readiness_failures(verbose_readyz: str) -> list[str]:
    """The names of the failed checks in a `/readyz?verbose` body (`[-]NAME failed: ...`)."""
    return [m.group(1) for m in _FAILED_CHECK.finditer(verbose_readyz)][:10]


_FAILED_CHECK = re.compile(r"^\[-\]([A-Za-z0-9_./-]{1,80}) failed", re.MULTILINE)


def not_ready_cause(checks: list[str]) -> str:
    """The failing checks in plain words for logs, `/readyz` and `status`."""
    if any(check.startswith("etcd") for check in checks):
        return "the API server cannot reach its storage (readyz: etcd failed)"
    return f"the API server is not ready (readyz: {', '.join(checks)} failed)"


def check_storage(api: ApiClient) -> None:
    """Raise `KubeError` at once when the API server says it cannot reach its storage (etcd):
    every read and write would otherwise wait out the server's 60 s timeout before failing.
    For one-shot commands, before their first request."""
    checks = failing_readiness_checks(api)
    if checks and any(check.startswith("etcd") for check in checks):
        raise KubeError(f"API server {api.configuration.host}: {not_ready_cause(checks)}; "
                        "Secrets and sources can be neither read nor written until it is back")
    if checks:
        log.warning("API server %s: %s", api.configuration.host, not_ready_cause(checks))
