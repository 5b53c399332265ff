"""Raw JSON requests to the API server over the ApiClient's connection pool, auth and TLS.

The generated API classes (`CoreV1Api`, `NetworkingV1Api`, ...) are not used: each one's module
defines hundreds of pydantic-validated methods (`CoreV1Api` alone is ~21 MB resident, the
largest part of the controller's idle memory), and every dict body is turned into its model
and back before it is sent. Here a request is a path, a query and a JSON body, sent as given.

Every request is declared in `adapters/kube/api_calls.py` (`require`: an undeclared one
raises `UndeclaredApiCall` before it is sent).

Contract: the answer is the raw response (its `data` is the body); a non-2xx answer raises
`ApiException` (status, reason, body), as the generated methods do with
`_preload_content=False`, so `client.request` translates it the same way. Transport failures
raise urllib3's errors or `OSError`, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from certbotk8s.adapters.kube.api_calls import require
from certbotk8s.adapters.kube.client import REQUEST_TIMEOUT

Query = Sequence[tuple[str, str]]
Timeout = tuple[float, float]


def path(api_version: str, plural: str, namespace: str | None = None,
         name: str | None = None) -> str:
    """The URL path of a collection or an object: `v1` is the core group (`/api/v1`),
    `group/version` any other (`/apis/group/version`)."""
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace is not None:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{plural}"
    return base + f"/{quote(name, safe='')}" if name is not None else base


def secrets(namespace: str, name: str | None = None) -> str:
    return path("v1", "secrets", namespace, name)


def paged(query: Query, limit: int, token: str | None) -> list[tuple[str, str]]:
    """`query` plus one page's `limit` and `continue`."""
    out = [*query, ("limit", str(limit))]
    if token:
        out.append(("continue", token))
    return out


class KubeRest:
    """One request per call; see the module docstring."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    def call(self, method: str, resource_path: str, *, query: Query = (),
             body: object = None, content_type: str | None = None,
             timeout: Timeout = REQUEST_TIMEOUT) -> Any:
        require(method, resource_path, query)  # adapters/kube/api_calls.py
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        params = self.api.param_serialize(
            method=method, resource_path=resource_path, query_params=list(query) or None,
            header_params=headers, body=body, auth_settings=["BearerToken"])
        response = self.api.call_api(*params, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()  # type: ignore[no-untyped-call]
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    def get(self, resource_path: str, query: Query = (),
            timeout: Timeout = REQUEST_TIMEOUT) -> Any:
        return self.call("GET", resource_path, query=query, timeout=timeout)

    def post(self, resource_path: str, body: object, query: Query = (),
             timeout: Timeout = REQUEST_TIMEOUT) -> Any:
        return self.call("POST", resource_path, query=query, body=body, timeout=timeout)

    def put(self, resource_path: str, body: object, query: Query = (),
            timeout: Timeout = REQUEST_TIMEOUT) -> Any:
        return self.call("PUT", resource_path, query=query, body=body, timeout=timeout)

    def patch(self, resource_path: str, body: object, content_type: str,
              query: Query = (), timeout: Timeout = REQUEST_TIMEOUT) -> Any:
        return self.call("PATCH", resource_path, query=query, body=body,
                         content_type=content_type, timeout=timeout)

    def delete(self, resource_path: str, query: Query = (),
               timeout: Timeout = REQUEST_TIMEOUT) -> Any:
        return self.call("DELETE", resource_path, query=query, timeout=timeout)
