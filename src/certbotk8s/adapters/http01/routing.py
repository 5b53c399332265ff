"""HTTP-01 routing: temporary Ingress / Istio VirtualService / HTTPRoute to the solver Service.

Where the routing object lives is `solver.http01.routeNamespace`:

- `source` (default): in the namespace the proxy reads the source's routes from: the Ingress's
  own namespace, the Istio or Gateway API Gateway's namespace. So `./host` Istio servers and
  Gateway API listeners with `allowedRoutes: Same` work unchanged, as with cert-manager.
  What the route points at, as a proxy would route it:
  - Ingress: an ExternalName Service next to it, `externalName` = the solver Service's cluster
    DNS name (ingress-nginx and HAProxy follow it; Traefik and Contour once enabled; cloud L7
    load balancers (GKE) do not: use `controller`). With `share_services` (the controller) one
    such Service per source namespace serves every order there (`shared_service_name`,
    adapters.http01.shared_service): checked when no order of ours holds it, never deleted
    while one does, deleted by `retire_shared` once the namespace needs it no more (and by
    `sweep`). Without, each order gets its own, deleted with it.
  - Istio: the VirtualService's destination is the solver Service's FQDN; nothing else needed.
  - Gateway API: the HTTPRoute's backendRef names the solver Service in the controller's
    namespace, allowed by a ReferenceGrant created there (from HTTPRoutes of the route's
    namespace, to that one Service) for the order's duration.
- `controller`: everything in the controller's own namespace (the cluster must then merge
  routes across namespaces: same-class Ingresses, `*/host` Istio servers, listeners whose
  `allowedRoutes` admit the controller namespace).

Every other object is named from the order, labelled as certbotk8s's, and deleted after the
order;
objects are only written in the controller namespace and the namespaces the controller serves,
and an existing object without certbotk8s's labels is never replaced or deleted. ingress-nginx
additionally gets `ssl-redirect: "false"` and a source allow-list open to all (as cert-manager
does), so a site-wide redirect or allow-list on the host's own Ingress does not block the CA.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import urllib3.exceptions
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from certbotk8s.adapters.http01.shared_service import SharedServices
from certbotk8s.adapters.kube import rest
from certbotk8s.adapters.kube.client import Op, translate, unreachable
from certbotk8s.adapters.kube.discovery import ServedVersions
from certbotk8s.adapters.kube.rest import KubeRest
from certbotk8s.core.errors import (
    Http01SolverError,
    KubeError,
    KubeUnreachable,
    retry_intent,
)
from certbotk8s.core.model import (
    ChallengeType,
    DesiredCertificate,
    HttpRouting,
    ObjectRef,
    SourceKind,
)
from certbotk8s.core.ports import ChallengeSolver, KubeObject, PendingChallenge, RoutingPublisher
from certbotk8s.core.sources.resources import (
    HTTP_ROUTES,
    INGRESSES,
    REFERENCE_GRANTS,
    SERVICES,
    VIRTUAL_SERVICES,
    ApiResource,
)

log = logging.getLogger(__name__)

CHALLENGE_PATH = "/.well-known/acme-challenge/"
MANAGED_BY = "app.kubernetes.io/managed-by"
ROLE_LABEL = "certbotk8s.io/role"
ROLE = "http01-route"
ORDER_LABEL = "certbotk8s.io/order"
# The installation (its namespace) that made the object: a sweep removes only its own, even
# where two installations route from the same source namespace.
CONTROLLER_LABEL = "certbotk8s.io/controller-namespace"
ORDER_ANNOTATION = "certbotk8s.io/order-id"  # the full order id (a label value is limited)

@dataclass(frozen=True)
class _Resource:
    """Where one kind of routing object lives in the API (group "" is the core API)."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _at(resource: ApiResource, version: str) -> _Resource:
    return _Resource(resource.group, version, resource.plural, resource.kind)


INGRESS = _at(INGRESSES, "v1")
VIRTUAL_SERVICE = _at(VIRTUAL_SERVICES, "v1")
VIRTUAL_SERVICE_V1BETA1 = _at(VIRTUAL_SERVICES, "v1beta1")
HTTP_ROUTE = _at(HTTP_ROUTES, "v1")
SERVICE = _at(SERVICES, "v1")
# every version of the routing types of the one table: what `remove` may delete
_TABLES = (INGRESSES, VIRTUAL_SERVICES, HTTP_ROUTES, SERVICES, REFERENCE_GRANTS)
_KNOWN = {(r.api_version, r.kind): r for r in (
    _at(t, v) for t in _TABLES for v in t.versions)}
_ROUTED_BY = {SourceKind.INGRESS: INGRESSES, SourceKind.ISTIO_GATEWAY: VIRTUAL_SERVICES,
              SourceKind.ISTIO_FILE_MOUNT: VIRTUAL_SERVICES, SourceKind.GATEWAY_API: HTTP_ROUTES}

ROUTE_NAMESPACES = ("source", "controller")
NAME_PREFIX = "certbotk8s-http01-"
_LABEL_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def order_label_value(order_id: str) -> str:
    """`order_id` as a valid label value (<= 63 chars, alphanumeric at both ends).

    Ids that are already valid stay as they are; others (ACME order URLs) keep a readable tail
    plus a hash of the whole id, so two ids never share a label by truncation.
    """
    cleaned = _LABEL_BAD.sub("-", order_id).strip("-_.")
    if cleaned == order_id and len(cleaned) <= 63:
        return cleaned
    tail = cleaned[-(63 - 11):].strip("-_.")
    return f"{tail}-{_digest(order_id, 10)}" if tail else _digest(order_id, 10)


def route_name(order_id: str, kind: SourceKind) -> str:
    """Object name for an order's routing: stable, so publishing again finds the same object."""
    return f"{NAME_PREFIX}{_digest(order_id + chr(0) + kind.value, 12)}"


def _kube_error(action: str, r: _Resource, name: str | None, namespace: str, e: Exception
                ) -> KubeError:
    op = Op(action, f"{r.plural}.{r.group}" if r.group else r.plural, namespace, name)
    if isinstance(e, ApiException):
        return translate(e, op)
    cause = unreachable(e)  # no answer: the same error `kube_client.request` raises
    return KubeUnreachable(f"{op} failed: API server unreachable ({cause})", cause)


def _json(response: Any) -> KubeObject:
    """The JSON object of an answer (an empty one when the body is not an object)."""
    try:
        value = json.loads(response.data)
    except (TypeError, ValueError):
        return {}
    return cast(KubeObject, value) if isinstance(value, dict) else {}


def _status(e: ApiException) -> int:
    return int(e.status or 0)


def _is_ours(obj: KubeObject) -> bool:
    labels = cast(dict[str, Any], cast(dict[str, Any], obj.get("metadata") or {})
                  .get("labels") or {})
    return labels.get(MANAGED_BY) == "certbotk8s" and labels.get(ROLE_LABEL) == ROLE


class _Api:
    """create / get / replace / delete / list of one resource as plain JSON (the core group's
    Services and every other group alike, adapters.kube.rest)."""

    def __init__(self, api_client: ApiClient) -> None:
        self._rest = KubeRest(api_client)

    def create(self, r: _Resource, ns: str, body: KubeObject) -> KubeObject:
        return _json(self._rest.post(rest.path(r.api_version, r.plural, ns), body))

    def get(self, r: _Resource, ns: str, name: str) -> KubeObject:
        return _json(self._rest.get(rest.path(r.api_version, r.plural, ns, name)))

    def replace(self, r: _Resource, ns: str, name: str, body: KubeObject) -> KubeObject:
        return _json(self._rest.put(rest.path(r.api_version, r.plural, ns, name), body))

    def delete(self, r: _Resource, ns: str, name: str) -> None:
        self._rest.delete(rest.path(r.api_version, r.plural, ns, name))

    def list(self, r: _Resource, ns: str | None, selector: str) -> list[KubeObject]:
        """Objects matching `selector` in `ns` (None: every namespace)."""
        listed = _json(self._rest.get(rest.path(r.api_version, r.plural, ns),
                                      (("labelSelector", selector),)))
        items = listed.get("items")
        return [cast(KubeObject, i) for i in items] if isinstance(items, list) else []


class KubeRoutingPublisher:
    """RoutingPublisher over the Kubernetes API (objects per order and source kind).

    - `publish` creates the objects or, when one with its name exists (409: published before
      for this order), replaces it with the wanted content, if it carries certbotk8s's labels
      (else KubeError: never someone else's object). Returns the refs, route first, or `[]` for
      a routing that needs nothing (a config certificate). A failure part-way removes what
      this call created.
    - `remove` deletes each object; not-found is success. It refuses kinds it never creates,
      names it never gives, and namespaces it may not write (`may_write`).
    - Errors are `KubeForbidden` (403), `KubeConflict` (lost races only after retries) or
      `KubeError`, chaining the cause.

    `route_namespace`: "source" or "controller" (module docstring). `namespaces`: the
    namespaces the controller serves (empty: all); a source namespace outside them is refused.
    `share_services`: one ExternalName Service per source namespace across orders (module
    docstring); only for one process per installation that routes (the controller's leader).
    """

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        solver_service: str = "certbotk8s-solver",
        solver_port: int = 80,
        path_type: str = "ImplementationSpecific",
        route_namespace: str = "source",
        namespaces: Sequence[str] = (),
        served: ServedVersions | None = None,
        share_services: bool = False,
    ) -> None:
        if route_namespace not in ROUTE_NAMESPACES:
            raise ValueError(f"route_namespace must be one of {ROUTE_NAMESPACES}")
        self._api = _Api(api_client)
        # each routing type at the version the cluster serves (the table the sources use)
        self._served = served or ServedVersions(api_client)
        self._namespace = namespace
        self._service = solver_service
        self._port = solver_port
        self._in_source = route_namespace == "source"
        self._serving = frozenset(namespaces)
        self._shares = share_services
        self._shared = SharedServices()
        if path_type == "Exact":
            # One object routes every token of the order, so it needs a prefix match; an
            # Exact `/.well-known/acme-challenge/` would never match a token path.
            log.warning("http01 pathType Exact cannot route tokens; using Prefix")
            path_type = "Prefix"
        self._path_type = path_type

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def solver_host(self) -> str:
        return f"{self._service}.{self._namespace}.svc.cluster.local"

    @property
    def shared_service_name(self) -> str:
        """The ExternalName Service every order of a source namespace routes through
        (`share_services`); named after the installation, so two never share one."""
        return f"{NAME_PREFIX}solver-{_digest(self._namespace, 8)}"

    def may_write(self, namespace: str) -> bool:
        """Whether routing objects may be written in `namespace`: the controller's own, and in
        `source` mode the namespaces it serves (all when not limited)."""
        if namespace == self._namespace:
            return True
        return self._in_source and (not self._serving or namespace in self._serving)

    def target_namespace(self, routing: HttpRouting) -> str:
        """The namespace `routing`'s route object goes to."""
        return routing.source_namespace if self._in_source else self._namespace

    # -- publish -------------------------------------------------------------------------------

    def publish(self, routing: HttpRouting, hosts: Sequence[str], order_id: str
                ) -> list[ObjectRef]:
        if not hosts or routing.kind is SourceKind.CONFIG_CERTIFICATE:
            return []  # a config certificate's hosts need no routing object
        hosts = list(dict.fromkeys(hosts))
        if any(h.startswith("*.") for h in hosts):
            raise KubeError("HTTP-01 routing cannot serve wildcard hosts")
        kind = routing.kind
        target = self.target_namespace(routing)
        if not target or not self.may_write(target):
            raise KubeError(f"HTTP-01 routing for {kind.value} in namespace {target!r}: not a "
                            "namespace this controller serves")
        name = route_name(order_id, kind)
        labels = {MANAGED_BY: "certbotk8s", ROLE_LABEL: ROLE,
                  ORDER_LABEL: order_label_value(order_id), CONTROLLER_LABEL: self._namespace}
        created: list[ObjectRef] = []
        holding = False
        try:
            backend: tuple[str, str] = (self._namespace, self._service)
            if kind is SourceKind.INGRESS:
                if target != self._namespace and self._shares:
                    # the namespace's one Service; held by this order until its route goes
                    self._shared.hold(target, name, lambda: self._ensure_shared(target))
                    holding = True
                    backend = (target, self.shared_service_name)
                elif target != self._namespace:  # a Service next to the Ingress, this order's
                    created.append(self._create(SERVICE, target, name, labels, order_id,
                                                self._external_name_spec()))
                    backend = (target, name)
                spec = self._ingress_spec(routing, hosts, backend[1])
            elif kind in (SourceKind.ISTIO_GATEWAY, SourceKind.ISTIO_FILE_MOUNT):
                spec = self._virtual_service_spec(routing, hosts)
            elif kind is SourceKind.GATEWAY_API:
                if target != self._namespace:  # the backendRef crosses into our namespace
                    grant = self._resource(REFERENCE_GRANTS)
                    created.append(self._create(grant, self._namespace, name, labels, order_id,
                                                self._grant_spec(target)))
                spec = self._http_route_spec(routing, hosts, target)
            else:  # pragma: no cover - every SourceKind is handled above
                raise KubeError(f"no HTTP-01 routing for {kind.value}")
            route = self._create(self._resource(_ROUTED_BY[kind]), target, name, labels, order_id,
                                 spec,
                                 nginx=kind is SourceKind.INGRESS)
        except BaseException:
            self._remove_quietly(created)
            if holding:
                self._shared.release(target, name)
            raise
        return [route, *created]

    def _create(self, r: _Resource, ns: str, name: str, labels: dict[str, str],
                order_id: str, spec: dict[str, object], nginx: bool = False) -> ObjectRef:
        annotations = {ORDER_ANNOTATION: order_id}
        if nginx:
            annotations.update({
                "nginx.ingress.kubernetes.io/ssl-redirect": "false",
                "nginx.ingress.kubernetes.io/whitelist-source-range": "0.0.0.0/0,::/0",
            })
        body: KubeObject = {
            "apiVersion": r.api_version,
            "kind": r.kind,
            "metadata": {"name": name, "namespace": ns, "labels": dict(labels),
                         "annotations": annotations},
            "spec": spec,
        }
        created = self._apply(r, ns, name, body)
        metadata = cast(dict[str, Any], created.get("metadata") or {})
        return ObjectRef(r.api_version, r.kind, ns, name, str(metadata.get("uid") or ""))

    def _ensure_shared(self, namespace: str) -> None:
        """The namespace's shared Service as wanted: read it, and create or repair it only
        when it is missing or differs (a tenant may have changed it). One not ours: KubeError,
        left alone."""
        name = self.shared_service_name
        try:
            current: KubeObject | None = self._api.get(SERVICE, namespace, name)
        except ApiException as e:
            if _status(e) != 404:
                raise _kube_error("read", SERVICE, name, namespace, e) from e
            current = None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _kube_error("read", SERVICE, name, namespace, e) from e
        if current is not None and not _is_ours(current):
            raise KubeError(f"Service {namespace}/{name} exists and is not certbotk8s's "
                            "HTTP-01 routing; left alone")
        spec = self._external_name_spec()
        if current is not None and self._is_shared_as_wanted(current, spec):
            return
        labels = {MANAGED_BY: "certbotk8s", ROLE_LABEL: ROLE, CONTROLLER_LABEL: self._namespace}
        body: KubeObject = {
            "apiVersion": SERVICE.api_version, "kind": SERVICE.kind,
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": spec,
        }
        if current is None:
            self._apply(SERVICE, namespace, name, body)
            return
        meta = cast(dict[str, Any], current.get("metadata") or {})
        cast(dict[str, Any], body["metadata"])["resourceVersion"] = meta.get("resourceVersion")
        try:  # one write: the version read (a lost race starts over through `_apply`)
            self._api.replace(SERVICE, namespace, name, body)
        except ApiException as e:
            if _status(e) not in (404, 409):
                raise _kube_error("replace", SERVICE, name, namespace, e) from e
            cast(dict[str, Any], body["metadata"]).pop("resourceVersion")
            self._apply(SERVICE, namespace, name, body)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _kube_error("replace", SERVICE, name, namespace, e) from e

    def _is_shared_as_wanted(self, current: KubeObject, spec: dict[str, object]) -> bool:
        """Whether `current` routes as `spec` says (the fields we set; the API server adds
        defaults such as each port's targetPort) and is labelled as this installation's."""
        meta = cast(dict[str, Any], current.get("metadata") or {})
        labels = cast(dict[str, Any], meta.get("labels") or {})
        have = cast(dict[str, Any], current.get("spec") or {})
        ports = [{k: p.get(k) for k in ("name", "protocol", "port")}
                 for p in cast(list[dict[str, Any]], have.get("ports") or [])
                 if isinstance(p, dict)]
        return (labels.get(CONTROLLER_LABEL) == self._namespace
                and have.get("type") == spec["type"]
                and have.get("externalName") == spec["externalName"]
                and ports == spec["ports"])

    def retire_shared(self, wanted: Iterable[DesiredCertificate]) -> list[str]:
        """Delete the shared Service (`share_services`) of every source namespace that no
        HTTP-01 certificate of `wanted` (the certificates wanted now) routes from and no order
        holds now; the namespaces it was deleted in. Errors are logged and tried again at the
        next call."""
        keep = {self.target_namespace(d.routing) for d in wanted
                if d.spec.challenge is ChallengeType.HTTP01 and d.routing is not None
                and d.routing.kind is SourceKind.INGRESS}
        return self._shared.retire(keep, self._delete_shared)

    def _delete_shared(self, namespace: str) -> bool:
        try:
            self._remove_one(ObjectRef(SERVICE.api_version, SERVICE.kind, namespace,
                                       self.shared_service_name))
        except KubeError as e:
            log.warning("could not remove the HTTP-01 routing Service in %s: %s", namespace, e)
            return False
        return True

    def _external_name_spec(self) -> dict[str, object]:
        return {
            "type": "ExternalName",
            "externalName": self.solver_host,
            "ports": [{"name": "http", "protocol": "TCP", "port": self._port}],
        }

    def _grant_spec(self, route_namespace: str) -> dict[str, object]:
        return {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                      "namespace": route_namespace}],
            "to": [{"group": "", "kind": "Service", "name": self._service}],
        }

    def _ingress_spec(self, routing: HttpRouting, hosts: Sequence[str], service: str
                      ) -> dict[str, object]:
        path = {
            "path": CHALLENGE_PATH,
            "pathType": self._path_type,
            "backend": {"service": {"name": service, "port": {"number": self._port}}},
        }
        spec: dict[str, object] = {
            "rules": [{"host": h, "http": {"paths": [path]}} for h in hosts],
        }
        # spec.ingressClassName only: a class given by the legacy `kubernetes.io/ingress.class`
        # annotation is also an IngressClass name for every controller that still reads it.
        if routing.ingress_class is not None:
            spec["ingressClassName"] = routing.ingress_class
        return spec

    def _gateway(self, routing: HttpRouting) -> ObjectRef:
        if routing.gateway is None:
            raise KubeError(f"{routing.kind.value} routing without a gateway reference")
        return routing.gateway

    def _virtual_service_spec(self, routing: HttpRouting, hosts: Sequence[str]
                              ) -> dict[str, object]:
        gateway = self._gateway(routing)
        return {
            "hosts": list(hosts),
            "gateways": [f"{gateway.namespace}/{gateway.name}"],
            "http": [{
                "name": "acme-http01",
                "match": [{"uri": {"prefix": CHALLENGE_PATH}}],
                "route": [{"destination": {
                    "host": self.solver_host,
                    "port": {"number": self._port},
                }}],
            }],
        }

    def _http_route_spec(self, routing: HttpRouting, hosts: Sequence[str], route_ns: str
                         ) -> dict[str, object]:
        gateway = self._gateway(routing)
        parent: dict[str, object] = {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "namespace": gateway.namespace,
            "name": gateway.name,
        }
        if routing.listener:
            parent["sectionName"] = routing.listener
        backend: dict[str, object] = {
            "group": "", "kind": "Service", "name": self._service, "port": self._port,
        }
        if route_ns != self._namespace:
            backend["namespace"] = self._namespace
        return {
            "parentRefs": [parent],
            "hostnames": list(hosts),
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": CHALLENGE_PATH}}],
                "backendRefs": [backend],
            }],
        }

    def _resource(self, resource: ApiResource) -> _Resource:
        """`resource` at the version the cluster serves (Istio < 1.22: VirtualService v1beta1;
        Gateway API 1.4: ReferenceGrant v1beta1)."""
        # not served when first asked: ask again (a CRD installed since), once per order
        version = self._served.version(resource) or self._served.version(resource, fresh=True)
        if version is None:
            raise KubeError(f"the cluster serves no known version of {resource.name} "
                            f"({', '.join(resource.versions)}): no HTTP-01 routing possible")
        return _at(resource, version)

    def _apply(self, r: _Resource, ns: str, name: str, body: KubeObject) -> KubeObject:
        """Create, or replace the object of that name (ours, from an earlier publish).

        A replace that loses a race (409) or finds the object deleted meanwhile (404) starts
        over; after three rounds the last error is raised. An object of that name without our
        labels is someone else's: KubeError, left alone.
        """
        api = self._api
        verb = "create"
        last: ApiException | None = None
        for _ in range(3):
            try:
                verb = "create"
                try:
                    return api.create(r, ns, body)
                except ApiException as e:
                    if _status(e) != 409:
                        raise
                verb = "read"
                current = api.get(r, ns, name)
                if not _is_ours(current):
                    raise KubeError(f"{r.kind} {ns}/{name} exists and is not certbotk8s's "
                                    "HTTP-01 routing; left alone")
                meta = cast(dict[str, Any], current.get("metadata") or {})
                new_meta = {**cast(dict[str, Any], body["metadata"]),
                            "resourceVersion": meta.get("resourceVersion")}
                verb = "replace"
                return api.replace(r, ns, name, {**body, "metadata": new_meta})
            except ApiException as e:
                if verb == "create" or _status(e) not in (404, 409):
                    raise _kube_error(verb, r, name, ns, e) from e
                last = e  # 409: someone wrote between our read and write; 404: deleted
            except (urllib3.exceptions.HTTPError, OSError) as e:
                raise _kube_error(verb, r, name, ns, e) from e
        assert last is not None
        raise _kube_error(verb, r, name, ns, last) from last

    # -- remove --------------------------------------------------------------------------------

    def remove(self, objects: Sequence[ObjectRef]) -> None:
        first: KubeError | None = None
        for ref in objects:
            try:
                self._remove_one(ref)
            except KubeError as e:
                log.warning("could not remove HTTP-01 routing %s: %s", ref, e)
                first = first or e
        if first is not None:
            raise first

    def _remove_quietly(self, objects: Sequence[ObjectRef]) -> None:
        with contextlib.suppress(KubeError):  # logged by remove; the caller's error wins
            self.remove(objects)

    def sweep(self) -> list[ObjectRef]:
        """Delete every routing object of ours left behind (a leader killed mid-order leaves
        them), shared Services too: in our namespace and, in `source` mode, in the namespaces
        we serve (all when not limited). Call before ordering: a resumed order publishes its
        routing again.
        Kinds the cluster does not serve are skipped; returns what was deleted."""
        found: dict[ObjectRef, None] = {}
        ours = f"{ROLE_LABEL}={ROLE},{MANAGED_BY}=certbotk8s"
        # Our namespace: everything of ours (also from before CONTROLLER_LABEL existed).
        # Elsewhere: only what this installation made.
        searches: list[tuple[str | None, str]] = [(self._namespace, ours)]
        if self._in_source:
            mine = f"{ours},{CONTROLLER_LABEL}={self._namespace}"
            searches += ([(ns, mine) for ns in sorted(self._serving - {self._namespace})]
                         if self._serving else [(None, mine)])
        for table in _TABLES:
            version = self._served.version(table)
            if version is None:
                continue  # the kind is not served
            r = _at(table, version)
            for scope, selector in searches:
                try:
                    items = self._api.list(r, scope, selector)
                except ApiException as e:
                    if _status(e) == 404:
                        break  # the kind is not served
                    raise _kube_error("list", r, None, scope or "", e) from e
                except (urllib3.exceptions.HTTPError, OSError) as e:
                    raise _kube_error("list", r, None, scope or "", e) from e
                for item in items:
                    meta = cast(dict[str, Any], item.get("metadata") or {})
                    ref = ObjectRef(r.api_version, r.kind, str(meta.get("namespace") or scope),
                                    str(meta.get("name")))
                    if self._removable(ref):
                        found[ref] = None
        # What this process knew of its shared Services is void: another leader may have
        # swept them meanwhile, and routes of ours (orders it held them for) go now.
        self._shared.reset()
        self.remove(list(found))
        return list(found)

    def _removable(self, ref: ObjectRef) -> bool:
        return ((ref.api_version, ref.kind) in _KNOWN and ref.name.startswith(NAME_PREFIX)
                and self.may_write(ref.namespace)
                # a ReferenceGrant is only ever created in our own namespace
                and (ref.kind != "ReferenceGrant" or ref.namespace == self._namespace))

    def _remove_one(self, ref: ObjectRef) -> None:
        r = _KNOWN.get((ref.api_version, ref.kind))
        if r is None or not self._removable(ref):
            raise KubeError(f"refusing to delete {ref}: not an HTTP-01 routing object of ours")
        try:
            self._api.delete(r, ref.namespace, ref.name)
        except ApiException as e:
            if _status(e) != 404:
                raise _kube_error("delete", r, ref.name, ref.namespace, e) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _kube_error("delete", r, ref.name, ref.namespace, e) from e
        if ref.kind == INGRESS.kind:
            self._shared.release(ref.namespace, ref.name)  # its route is gone: not held


class RoutedHttp01Solver:
    """An HTTP-01 solver plus the routing that brings the CA's requests to it.

    The routing for all `hosts` is published once, on the first `present`; it is removed when
    the last presented challenge is cleaned up, and also when `present` itself fails with no
    other challenge outstanding. Errors of the publisher become `Http01SolverError`.
    """

    challenge_type = ChallengeType.HTTP01

    def __init__(
        self,
        inner: ChallengeSolver,
        publisher: RoutingPublisher,
        routing: HttpRouting | None,
        hosts: Sequence[str],
        order_id: str,
    ) -> None:
        self.inner = inner
        self.publisher = publisher
        self.routing = routing
        self.hosts = tuple(hosts)
        self.order_id = order_id
        self._published: list[ObjectRef] | None = None
        self._outstanding: set[str] = set()
        self._lock = threading.RLock()

    @property
    def published(self) -> tuple[ObjectRef, ...]:
        return tuple(self._published or ())

    def present(self, challenge: PendingChallenge) -> None:
        with self._lock:
            self._outstanding.add(challenge.token)
            try:
                self._publish(challenge)
                self.inner.present(challenge)
            except BaseException:
                self._outstanding.discard(challenge.token)
                if not self._outstanding:
                    self._remove_quietly()
                raise

    def wait_until_ready(self, challenges: Sequence[PendingChallenge]) -> None:
        self.inner.wait_until_ready(challenges)

    def clean_up(self, challenge: PendingChallenge) -> None:
        with self._lock:
            try:
                self.inner.clean_up(challenge)
            finally:
                self._outstanding.discard(challenge.token)
                if not self._outstanding:
                    self._remove()

    def _publish(self, challenge: PendingChallenge) -> None:
        if self._published is not None or self.routing is None:
            return
        hosts = self.hosts or (challenge.domain,)
        try:
            self._published = self.publisher.publish(self.routing, hosts, self.order_id)
        except KubeError as e:
            raise Http01SolverError(
                f"cannot publish HTTP-01 routing for {', '.join(hosts)}: {e}",
                intent=retry_intent(e)) from e

    def _remove(self) -> None:
        objects, self._published = self._published, None
        if not objects:
            return
        try:
            self.publisher.remove(objects)
        except KubeError as e:
            self._published = objects  # kept, so a later clean_up can try again
            raise Http01SolverError(f"cannot remove HTTP-01 routing: {e}",
                                    intent=retry_intent(e)) from e

    def _remove_quietly(self) -> None:
        try:
            self._remove()
        except Http01SolverError:
            log.exception("removing HTTP-01 routing after a failed present")
