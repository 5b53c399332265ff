"""Orders in flight, kept in one Secret in the controller's namespace.

A leader records the order URL right after the CA created the order and clears it when the
order ended (certificate written or failed for good). A new leader, or the same process after
a restart, resumes a recorded order instead of placing another for the same identifiers.
Contract: `load` of a missing store is `{}`; `record` creates the store when needed; `clear`
of an unknown entry is a no-op. Merge patches: concurrent records of different Secrets never
lose each other. `remove_if_unchanged` (the leader's sweep of stale entries) removes an entry
only while it still holds the very value read: an order recorded again meanwhile survives.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from certbotk8s.adapters.kube import rest
from certbotk8s.adapters.kube.api_calls import INFLIGHT_SECRET
from certbotk8s.adapters.kube.client import MERGE_PATCH, Op, request
from certbotk8s.adapters.kube.rest import KubeRest
from certbotk8s.core.errors import KubeConflict, KubeError
from certbotk8s.core.model import SecretRef
from certbotk8s.core.state.secret_meta import MANAGED_BY_LABEL, MANAGED_BY_VALUE

JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class InflightOrder:
    secret: SecretRef
    order_url: str
    hosts: tuple[str, ...]
    # The entry's value as read (`remove_if_unchanged` tests it); not part of the order.
    stored: str = field(default="", compare=False, repr=False)


def _key(ref: SecretRef) -> str:
    # Namespaces and Secret names never contain "_", so the key splits back unambiguously.
    return f"{ref.namespace}_{ref.name}"


class KubeInflightStore:
    def __init__(self, api_client: ApiClient, namespace: str,
                 name: str = INFLIGHT_SECRET) -> None:
        self._rest = KubeRest(api_client)
        self.namespace = namespace
        self.name = name
        self._path = rest.secrets(namespace, name)

    def _patch(self, data: dict[str, str | None]) -> bool:
        body = {"data": data}
        done = request(Op("patch", "secrets", self.namespace, self.name),
                       lambda: self._rest.patch(self._path, body, MERGE_PATCH))
        return done is not None

    def record(self, order: InflightOrder) -> None:
        value = json.dumps({"orderUrl": order.order_url, "hosts": list(order.hosts)})
        encoded = base64.b64encode(value.encode()).decode()
        if self._patch({_key(order.secret): encoded}):
            return
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE,
                                        "certbotk8s.io/role": "inflight-orders"}},
                "data": {_key(order.secret): encoded}}
        try:
            request(Op("create", "secrets", self.namespace, self.name),
                    lambda: self._rest.post(rest.secrets(self.namespace), body))
        except KubeConflict:  # another process created it meanwhile
            self._patch({_key(order.secret): encoded})

    def clear(self, ref: SecretRef) -> None:
        self._patch({_key(ref): None})

    def load(self) -> dict[SecretRef, InflightOrder]:
        secret = request(Op("get", "secrets", self.namespace, self.name),
                         lambda: self._rest.get(self._path))
        orders: dict[SecretRef, InflightOrder] = {}
        for key, value in ((secret or {}).get("data") or {}).items():
            namespace, _, name = str(key).partition("_")
            try:
                entry = json.loads(base64.b64decode(value))
                ref = SecretRef(namespace, name)
                orders[ref] = InflightOrder(ref, str(entry["orderUrl"]),
                                            tuple(str(h) for h in entry["hosts"]), str(value))
            except (ValueError, KeyError, TypeError):
                continue  # a damaged entry only costs a new order
        return orders

    def remove_if_unchanged(self, order: InflightOrder) -> bool:
        """Remove `order`'s entry if it still holds the value `load` read (a JSON patch that
        tests it first). False: recorded again meanwhile, or already gone."""
        path = f"/data/{_key(order.secret)}"
        body = [{"op": "test", "path": path, "value": order.stored},
                {"op": "remove", "path": path}]
        try:
            done = request(Op("patch", "secrets", self.namespace, self.name),
                           lambda: self._rest.patch(self._path, body, JSON_PATCH))
        except KubeError as e:
            if isinstance(e.__cause__, ApiException) and e.__cause__.status == 422:
                return False  # the test failed: the entry changed or is gone
            raise
        return done is not None
