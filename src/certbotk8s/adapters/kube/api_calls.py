"""Every Kubernetes API request certbotk8s makes, declared as data: the one table RBAC is
checked against.

Each `ApiCall` is what the API server's authorizer sees: verb, API group, resource,
subresource, where (the controller's own namespace, a namespace it serves, or a cluster-scoped
object), and the object's name when it is fixed in advance (RBAC `resourceNames`; `create` can
never be limited by name). `caller` says whose rights it needs: the ServiceAccount's (the
controller and `renew --once`) or the person running a CLI command with their own kubeconfig.

Enforced three ways:
- `require` runs before every request (`adapters/kube/rest.py`, `client.get_raw`, the readiness
  probe): a request no entry declares raises `UndeclaredApiCall` before it is sent, so a new
  call without a declaration fails the first test that makes it;
- `tests/unit/test_rbac.py` compares the table with the RBAC of manifests/ and the Helm chart in
  both directions (every call granted, every grant used, `resourceNames` where names are fixed);
- `tests/lab/test_rbac_audit.py` runs the controller and `renew --once` as their own
  ServiceAccount against the lab's API server with audit logging, and checks every request in
  the audit log against this table (and that none was refused).

The fixed object names live here too, and the adapters take them from here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from certbotk8s.core.errors import KubeError
from certbotk8s.core.state.records import SHARDS

# The controller's own objects, in its namespace, with names fixed in advance.
LEADER_LEASE = "certbotk8s-leader"  # `--lease-name`; the manifests and the chart keep this one
TOKENS_SECRET = "certbotk8s-http01-tokens"
LEDGER_SECRET = "certbotk8s-renewal-ledger"
INFLIGHT_SECRET = "certbotk8s-inflight-orders"
RECORDS_PREFIX = "certbotk8s-records-"


def records_shard(index: int) -> str:
    return f"{RECORDS_PREFIX}{index:03d}"


RECORDS_SECRETS = tuple(records_shard(i) for i in range(SHARDS))
# Secrets the controller patches in its namespace: each one's name is fixed
PATCHED_OWN_SECRETS = (TOKENS_SECRET, LEDGER_SECRET, INFLIGHT_SECRET, *RECORDS_SECRETS)


class Where(enum.Enum):
    OWN = "the controller's namespace"
    # one namespace the controller serves, or all of them at once (a cluster-wide list or
    # watch); in namespaced mode, each namespace passed with --namespace
    SERVED = "a namespace the controller serves"
    CLUSTER = "a cluster-scoped object"


class Caller(enum.Enum):
    SERVICE_ACCOUNT = "the controller and renew --once (the ServiceAccount's RBAC)"
    PERSON = "a CLI command run with the user's own kubeconfig"
    # granted to every authenticated user by a default role (system:basic-user): no rule of ours
    ANYONE = "any authenticated user"


class Needed(enum.Enum):
    ALWAYS = "always"
    ROUTE_IN_SOURCE = "solver.http01.routeNamespace: source (the default)"
    CLUSTER_MODE = "cluster-wide mode only (namespaced mode does without it and never asks)"


@dataclass(frozen=True)
class ApiCall:
    verb: str  # as RBAC names it: get list watch create update patch delete
    group: str  # "" is the core group
    resource: str  # the plural
    where: Where
    why: str
    names: tuple[str, ...] = ()  # fixed object names; () any name
    subresource: str = ""
    caller: Caller = Caller.SERVICE_ACCOUNT
    needed: Needed = Needed.ALWAYS


def _calls(verbs: str, group: str, resources: str, where: Where, why: str, *,
           names: tuple[str, ...] = (), caller: Caller = Caller.SERVICE_ACCOUNT,
           needed: Needed = Needed.ALWAYS) -> list[ApiCall]:
    return [ApiCall(verb, group, resource, where, why, names, caller=caller, needed=needed)
            for verb in verbs.split() for resource in resources.split()]


OWN, SERVED, CLUSTER = Where.OWN, Where.SERVED, Where.CLUSTER
SOURCE_ROUTES = Needed.ROUTE_IN_SOURCE
ISTIO = "networking.istio.io"
GATEWAY_API = "gateway.networking.k8s.io"
NETWORKING = "networking.k8s.io"

CALLS: tuple[ApiCall, ...] = tuple([
    # -- sources: listed by renew --once, listed and watched by the informers
    *_calls("list watch", NETWORKING, "ingresses", SERVED, "source informers and listing"),
    *_calls("list watch", ISTIO, "gateways", SERVED, "source informers and listing"),
    *_calls("list watch", GATEWAY_API, "gateways referencegrants", SERVED,
            "source informers and listing"),
    # -- tenants' TLS Secrets
    *_calls("list watch", "", "secrets", SERVED,
            "informer on managed TLS Secrets (label and type selectors)"),
    *_calls("get create update patch", "", "secrets", SERVED,
            "read before write, write the certificate with resourceVersion, display copy"),
    # -- Events on sources, Secrets, the Lease, the account Secret
    *_calls("create patch", "", "events", SERVED, "Events on sources and Secrets (patch: count)"),
    *_calls("create patch", "", "events", OWN, "Events on the Lease and the ACME account Secret"),
    # -- the leader's check that a namespace still takes objects (in-flight sweep)
    ApiCall("get", "", "namespaces", CLUSTER, "in-flight records of deleted namespaces",
            needed=Needed.CLUSTER_MODE),
    # -- leader election
    ApiCall("get", "coordination.k8s.io", "leases", OWN, "leader election; renew NS/SECRET "
            "asks who leads", names=(LEADER_LEASE,)),
    ApiCall("update", "coordination.k8s.io", "leases", OWN, "leader election",
            names=(LEADER_LEASE,)),
    ApiCall("create", "coordination.k8s.io", "leases", OWN, "leader election, first replica"),
    # -- the controller's Secrets: records, ledger, in-flight orders, tokens, ACME accounts,
    # DNS credentials (names of the last two come from the config)
    *_calls("get list create update", "", "secrets", OWN,
            "records (listed), ACME account Secrets (read, replaced), DNS credentials (read), "
            "the fixed Secrets (created once)"),
    ApiCall("watch", "", "secrets", OWN, "the HTTP-01 token Secret's informer",
            names=(TOKENS_SECRET,)),
    ApiCall("patch", "", "secrets", OWN, "records, ledger, in-flight orders and token Secrets",
            names=PATCHED_OWN_SECRETS),
    # -- HTTP-01 routing (adapters/http01/routing.py): create, read back after a 409, replace,
    # delete; list: the sweep after a leader change, here always, in the sources' namespaces
    # in routeNamespace: source
    *_calls("create get update delete list", NETWORKING, "ingresses", OWN, "HTTP-01 routing"),
    *_calls("create get update delete list", ISTIO, "virtualservices", OWN, "HTTP-01 routing"),
    *_calls("create get update delete list", GATEWAY_API, "httproutes", OWN, "HTTP-01 routing"),
    *_calls("list", "", "services", OWN, "HTTP-01 routing sweep"),
    *_calls("list", GATEWAY_API, "referencegrants", OWN, "HTTP-01 routing sweep"),
    *_calls("create get update delete", GATEWAY_API, "referencegrants", OWN,
            "the grant letting an HTTPRoute in a source namespace reach the solver Service",
            needed=SOURCE_ROUTES),
    *_calls("create get update delete list", NETWORKING, "ingresses", SERVED,
            "HTTP-01 routing in the source's namespace", needed=SOURCE_ROUTES),
    *_calls("create get update delete list", ISTIO, "virtualservices", SERVED,
            "HTTP-01 routing in the source's namespace", needed=SOURCE_ROUTES),
    *_calls("create get update delete list", GATEWAY_API, "httproutes", SERVED,
            "HTTP-01 routing in the source's namespace", needed=SOURCE_ROUTES),
    *_calls("create get update delete list", "", "services", SERVED,
            "the ExternalName Service next to an Ingress route", needed=SOURCE_ROUTES),
    *_calls("list", GATEWAY_API, "referencegrants", SERVED, "HTTP-01 routing sweep",
            needed=SOURCE_ROUTES),
    # -- renew --once -n: may it list ReferenceGrants cluster-wide (namespaced mode may not)?
    ApiCall("create", "authorization.k8s.io", "selfsubjectaccessreviews", CLUSTER,
            "asks before a list RBAC may refuse (adapters/kube/access.py)",
            caller=Caller.ANYONE),
    # -- CLI commands with the user's own rights
    *_calls("list", "", "events", SERVED, "status: the newest Warning on a source",
            caller=Caller.PERSON),
    *_calls("get list", "", "configmaps", OWN, "the CLI reads the controller's config",
            caller=Caller.PERSON),
])

# Paths that are not resources: API discovery and the readiness probe, readable by every
# authenticated client through the default roles system:discovery and system:public-info-viewer.
NON_RESOURCE_PATHS = ("/api", "/apis", "/readyz")


@dataclass(frozen=True)
class Request:
    """One request as the API server's authorizer sees it (its RequestInfo)."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str | None = None
    name: str | None = None
    path: str = ""  # a non-resource request's path ("" for resource requests)


Query = Iterable[tuple[str, str]]
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def classify(method: str, path: str, query: Query = ()) -> Request:
    """`method path?query` as the API server's RequestInfoFactory reads it: a GET of a
    collection is `list`, or `watch` with `watch=true`; a `fieldSelector` of exactly
    `metadata.name=X` names X (RBAC resourceNames apply to it)."""
    params = dict(query)
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if parts[0] == "api" and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return Request(verb=method.lower(), path="/" + "/".join(parts))
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource, name = rest[0], rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:])
    if method == "GET":
        verb = "get" if name else (
            "watch" if str(params.get("watch", "")).lower() in ("true", "1") else "list")
        selector = str(params.get("fieldSelector") or "")
        if not name and selector.startswith("metadata.name=") and "," not in selector:
            name = selector.removeprefix("metadata.name=")
    else:
        verb = _VERBS.get(method, method.lower())
        if verb == "delete" and not name:
            verb = "deletecollection"
    return Request(verb, group, resource, subresource, namespace, name)


def declares(call: ApiCall, request: Request) -> bool:
    """Whether `call` covers `request`'s verb, group, resource, subresource and scope shape.
    Namespaces and names depend on the installation: the lab's audit test checks them."""
    if (call.verb, call.group, call.resource, call.subresource) != (
            request.verb, request.group, request.resource, request.subresource):
        return False
    if call.where is Where.CLUSTER:
        return request.namespace is None
    if call.where is Where.OWN:
        return request.namespace is not None
    return True  # SERVED: one namespace or, for list and watch, all of them


_BY_KIND: dict[tuple[str, str, str, str], list[ApiCall]] = {}
for _call in CALLS:  # every request looks its kind up here
    _BY_KIND.setdefault((_call.verb, _call.group, _call.resource, _call.subresource),
                        []).append(_call)


class UndeclaredApiCall(KubeError):
    """A request no entry of `CALLS` declares: a programming error, refused before it is sent
    (RBAC would have refused it too, or granted it unknown to the tests)."""


def require(method: str, path: str, query: Query = ()) -> None:
    """Raise `UndeclaredApiCall` unless a declared call covers `method path?query`."""
    request = classify(method, path, query)
    if request.path:
        if request.verb == "get" and any(
                request.path == p or request.path.startswith(p + "/") for p in NON_RESOURCE_PATHS):
            return
    elif any(declares(call, request) for call in _BY_KIND.get(
            (request.verb, request.group, request.resource, request.subresource), ())):
        return
    raise UndeclaredApiCall(f"undeclared Kubernetes API call {method} {path} ({request}); "
                            "declare it in adapters/kube/api_calls.py and grant it in the RBAC")
