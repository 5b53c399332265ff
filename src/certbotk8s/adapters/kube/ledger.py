"""The renewal ledger: one Secret in the controller's namespace with what managed Secrets do not
already record — recent new orders, failed authorizations, and the failure state of Secrets
that do not exist yet (their first issuance failed).

Contract: `load` of a missing ledger is `{}`; `save` creates it when needed; values are small
JSON documents under fixed keys, written with merge patches (one key replaces that key only).
Two writers (controller and a CronJob run) can lose each other's last update of one key; the
next pass records again, so the budget errs by at most one pass's orders.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from kubernetes.client import ApiClient

from certbotk8s.adapters.kube import rest
from certbotk8s.adapters.kube.api_calls import LEDGER_SECRET
from certbotk8s.adapters.kube.client import MERGE_PATCH, Op, request
from certbotk8s.adapters.kube.rest import KubeRest
from certbotk8s.core.errors import KubeConflict
from certbotk8s.core.state.secret_meta import MANAGED_BY_LABEL, MANAGED_BY_VALUE

LEDGER_NAME = LEDGER_SECRET


class KubeLedger:
    def __init__(self, api_client: ApiClient, namespace: str, name: str = LEDGER_NAME) -> None:
        self._rest = KubeRest(api_client)
        self.namespace = namespace
        self.name = name

    def load(self) -> dict[str, Any]:
        """Every key's decoded JSON value; a damaged value is left out (it only costs history)."""
        secret = request(Op("get", "secrets", self.namespace, self.name),
                         lambda: self._rest.get(rest.secrets(self.namespace, self.name)))
        values: dict[str, Any] = {}
        for key, value in ((secret or {}).get("data") or {}).items():
            try:
                values[str(key)] = json.loads(base64.b64decode(value))
            except ValueError:
                continue
        return values

    def save(self, values: dict[str, Any]) -> None:
        """Write these keys (None removes one); other keys stay as they are."""
        data = {key: (base64.b64encode(json.dumps(value, separators=(",", ":")).encode())
                      .decode() if value is not None else None)
                for key, value in values.items()}
        done = self._patch(data)
        if done is not None:
            return
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE,
                                        "certbotk8s.io/role": "renewal-ledger"}},
                "data": {k: v for k, v in data.items() if v is not None}}
        try:
            request(Op("create", "secrets", self.namespace, self.name),
                    lambda: self._rest.post(rest.secrets(self.namespace), body))
        except KubeConflict:  # created meanwhile by another process
            self._patch(data)

    def _patch(self, data: dict[str, str | None]) -> dict[str, Any] | None:
        return request(Op("patch", "secrets", self.namespace, self.name),
                       lambda: self._rest.patch(rest.secrets(self.namespace, self.name),
                                                {"data": data}, MERGE_PATCH))
