"""HTTP-01 routing: temporary Ingress / Istio VirtualService / HTTPRoute to the solver Service.

Everything is created in the controller's own namespace only, named from the order, labelled
as certbotk8s's, and deleted after the order. What the cluster must allow for it to work:

- Ingress: the ingress controller merges Ingresses of the same class across namespaces (all
  common ones do). ingress-nginx additionally gets `ssl-redirect: "false"` and a source
  allow-list open to all (as cert-manager does), so a site-wide redirect or allow-list on the
  host's own Ingress does not block the CA.
- Istio: a VirtualService binds to a Gateway (`<ns>/<name>`), not to one of its servers, so the
  Gateway's port-80 server must admit hosts from the controller namespace (`hosts: ["*/host"]`
  or `["certbotk8s/host"]`), and the mesh must not restrict VirtualService `exportTo` defaults
  so that the gateway workload cannot see it.
- Gateway API: the listener the route attaches to (`sectionName`, when known) must have
  `allowedRoutes.namespaces` admitting the controller namespace (`All` or a selector). The
  backend Service is in the route's own namespace, so no ReferenceGrant is needed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import urllib3.exceptions
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

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
from certbotk8s.core.model import ChallengeType, HttpRouting, ObjectRef, SourceKind
from certbotk8s.core.ports import ChallengeSolver, KubeObject, PendingChallenge, RoutingPublisher
from certbotk8s.core.sources.resources import (
    HTTP_ROUTES,
    INGRESSES,
    VIRTUAL_SERVICES,
    ApiResource,
)

log = logging.getLogger(__name__)

CHALLENGE_PATH = "/.well-known/acme-challenge/"
MANAGED_BY = "app.kubernetes.io/managed-by"
ROLE_LABEL = "certbotk8s.io/role"
ROLE = "http01-route"
ORDER_LABEL = "certbotk8s.io/order"
ORDER_ANNOTATION = "certbotk8s.io/order-id"  # the full order id (a label value is limited)

@dataclass(frozen=True)
class _Resource:
    """Where one kind of routing object lives in the API."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


def _at(resource: ApiResource, version: str) -> _Resource:
    return _Resource(resource.group, version, resource.plural, resource.kind)


INGRESS = _at(INGRESSES, "v1")
VIRTUAL_SERVICE = _at(VIRTUAL_SERVICES, "v1")
VIRTUAL_SERVICE_V1BETA1 = _at(VIRTUAL_SERVICES, "v1beta1")
HTTP_ROUTE = _at(HTTP_ROUTES, "v1")
# every version of the routing types of the one table: what `remove` may delete
_KNOWN = {(r.api_version, r.kind): r for r in (
    _at(t, v) for t in (INGRESSES, VIRTUAL_SERVICES, HTTP_ROUTES) for v in t.versions)}
_ROUTED_BY = {SourceKind.INGRESS: INGRESSES, SourceKind.ISTIO_GATEWAY: VIRTUAL_SERVICES,
              SourceKind.ISTIO_FILE_MOUNT: VIRTUAL_SERVICES, SourceKind.GATEWAY_API: HTTP_ROUTES}

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
    return f"certbotk8s-http01-{_digest(order_id + chr(0) + kind.value, 12)}"


def _kube_error(action: str, r: _Resource, name: str | None, namespace: str, e: Exception
                ) -> KubeError:
    op = Op(action, f"{r.plural}.{r.group}", namespace, name)
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


class KubeRoutingPublisher:
    """RoutingPublisher over the Kubernetes API (one object per order and source kind).

    - `publish` creates the object or, when one with its name exists (409: published before
      for this order), replaces it with the wanted content. Returns `[ref]`, or `[]` for a
      routing that needs nothing (default certificate).
    - `remove` deletes each object; not-found is success. It refuses objects outside the
      controller namespace or of kinds it never creates.
    - Errors are `KubeForbidden` (403), `KubeConflict` (lost races only after retries) or
      `KubeError`, chaining the cause.
    """

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        solver_service: str = "certbotk8s-solver",
        solver_port: int = 80,
        path_type: str = "ImplementationSpecific",
        served: ServedVersions | None = None,
    ) -> None:
        self._rest = KubeRest(api_client)
        # each routing type at the version the cluster serves (the table the sources use)
        self._served = served or ServedVersions(api_client)
        self._namespace = namespace
        self._service = solver_service
        self._port = solver_port
        if path_type == "Exact":
            # One object routes every token of the order, so it needs a prefix match; an
            # Exact `/.well-known/acme-challenge/` would never match a token path.
            log.warning("http01 pathType Exact cannot route tokens; using Prefix")
            path_type = "Prefix"
        self._path_type = path_type

    @property
    def namespace(self) -> str:
        return self._namespace

    # -- publish -------------------------------------------------------------------------------

    def publish(self, routing: HttpRouting, hosts: Sequence[str], order_id: str
                ) -> list[ObjectRef]:
        if not hosts or routing.kind is SourceKind.DEFAULT_CERTIFICATE:
            return []  # the default certificate's hosts need no routing object
        hosts = list(dict.fromkeys(hosts))
        if any(h.startswith("*.") for h in hosts):
            raise KubeError("HTTP-01 routing cannot serve wildcard hosts")
        kind = routing.kind
        name = route_name(order_id, kind)
        if kind is SourceKind.INGRESS:
            spec = self._ingress_spec(routing, hosts)
        elif kind in (SourceKind.ISTIO_GATEWAY, SourceKind.ISTIO_FILE_MOUNT):
            spec = self._virtual_service_spec(routing, hosts)
        elif kind is SourceKind.GATEWAY_API:
            spec = self._http_route_spec(routing, hosts)
        else:  # pragma: no cover - every SourceKind is handled above
            raise KubeError(f"no HTTP-01 routing for {kind.value}")
        resource = self._resource(_ROUTED_BY[kind])
        annotations = {ORDER_ANNOTATION: order_id}
        if kind is SourceKind.INGRESS:
            annotations.update({
                "nginx.ingress.kubernetes.io/ssl-redirect": "false",
                "nginx.ingress.kubernetes.io/whitelist-source-range": "0.0.0.0/0,::/0",
            })
        body: KubeObject = {
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {
                "name": name,
                "namespace": self._namespace,
                "labels": {
                    MANAGED_BY: "certbotk8s",
                    ROLE_LABEL: ROLE,
                    ORDER_LABEL: order_label_value(order_id),
                },
                "annotations": annotations,
            },
            "spec": spec,
        }
        created = self._apply(resource, name, body)
        metadata = cast(dict[str, Any], created.get("metadata") or {})
        return [ObjectRef(resource.api_version, resource.kind, self._namespace, name,
                          str(metadata.get("uid") or ""))]

    def _ingress_spec(self, routing: HttpRouting, hosts: Sequence[str]) -> dict[str, object]:
        path = {
            "path": CHALLENGE_PATH,
            "pathType": self._path_type,
            "backend": {"service": {"name": self._service, "port": {"number": self._port}}},
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
                    "host": f"{self._service}.{self._namespace}.svc.cluster.local",
                    "port": {"number": self._port},
                }}],
            }],
        }

    def _http_route_spec(self, routing: HttpRouting, hosts: Sequence[str]) -> dict[str, object]:
        gateway = self._gateway(routing)
        parent: dict[str, object] = {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "namespace": gateway.namespace,
            "name": gateway.name,
        }
        if routing.listener:
            parent["sectionName"] = routing.listener
        return {
            "parentRefs": [parent],
            "hostnames": list(hosts),
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": CHALLENGE_PATH}}],
                "backendRefs": [{
                    "group": "", "kind": "Service", "name": self._service, "port": self._port,
                }],
            }],
        }

    def _resource(self, resource: ApiResource) -> _Resource:
        """`resource` at the version the cluster serves (Istio < 1.22: VirtualService v1beta1)."""
        # not served when first asked: ask again (a CRD installed since), once per order
        version = self._served.version(resource) or self._served.version(resource, fresh=True)
        if version is None:
            raise KubeError(f"the cluster serves no known version of {resource.name} "
                            f"({', '.join(resource.versions)}): no HTTP-01 routing possible")
        return _at(resource, version)

    def _apply(self, r: _Resource, name: str, body: KubeObject) -> KubeObject:
        """Create, or replace the object of that name (ours, from an earlier publish).

        A replace that loses a race (409) or finds the object deleted meanwhile (404) starts
        over; after three rounds the last error is raised.
        """
        ns = self._namespace
        where = rest.path(r.api_version, r.plural, ns)
        verb = "create"
        last: ApiException | None = None
        for _ in range(3):
            try:
                verb = "create"
                try:
                    return _json(self._rest.post(where, body))
                except ApiException as e:
                    if _status(e) != 409:
                        raise
                verb = "read"
                current = _json(self._rest.get(f"{where}/{name}"))
                meta = cast(dict[str, Any], current.get("metadata") or {})
                new_meta = {**cast(dict[str, Any], body["metadata"]),
                            "resourceVersion": meta.get("resourceVersion")}
                verb = "replace"
                return _json(self._rest.put(f"{where}/{name}", {**body, "metadata": new_meta}))
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

    def sweep(self) -> list[ObjectRef]:
        """Delete every routing object of ours left in our namespace (a leader killed mid-order
        leaves them). Call before ordering: a resumed order publishes its routing again.
        Kinds the cluster does not serve are skipped; returns what was deleted."""
        found: list[ObjectRef] = []
        selector = f"{ROLE_LABEL}={ROLE},{MANAGED_BY}=certbotk8s"
        for table in (INGRESSES, VIRTUAL_SERVICES, HTTP_ROUTES):
            version = self._served.version(table)
            if version is None:
                continue
            r = _at(table, version)
            try:
                listed = _json(self._rest.get(rest.path(r.api_version, r.plural, self._namespace),
                                              (("labelSelector", selector),)))
            except ApiException as e:
                if _status(e) == 404:
                    continue
                raise _kube_error("list", r, None, self._namespace, e) from e
            except (urllib3.exceptions.HTTPError, OSError) as e:
                raise _kube_error("list", r, None, self._namespace, e) from e
            items = listed.get("items")
            for item in items if isinstance(items, list) else []:
                found.append(ObjectRef(r.api_version, r.kind, self._namespace,
                                       str(item["metadata"]["name"])))
        self.remove(found)
        return found

    def _remove_one(self, ref: ObjectRef) -> None:
        r = _KNOWN.get((ref.api_version, ref.kind))
        if r is None or ref.namespace != self._namespace:
            raise KubeError(f"refusing to delete {ref}: not an HTTP-01 routing object of ours")
        try:
            self._rest.delete(rest.path(r.api_version, r.plural, ref.namespace, ref.name))
        except ApiException as e:
            if _status(e) != 404:
                raise _kube_error("delete", r, ref.name, ref.namespace, e) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _kube_error("delete", r, ref.name, ref.namespace, e) from e


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
