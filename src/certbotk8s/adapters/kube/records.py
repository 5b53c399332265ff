"""The controller's certificate records (core.state.records), sharded over Secrets in its namespace.

Shard `certbotk8s-records-NNN` holds the records whose `core.state.records.shard_of` is NNN, one
data key per managed Secret. Only the controller's ServiceAccount may write there (its namespace's
Role), so no tenant can make or change a record.
Contract: `load` of no shards is `{}`; `load_one` of a missing record is None; `save` writes
the given records (None removes one) with one merge patch per shard touched, creating a shard
when it is missing (a shard `load` did not find is created at once: no patch to learn it is
missing); a key written by another process in the same shard is never lost (merge patches
replace only their own keys; a create that finds the shard made meanwhile patches it).
A damaged entry is skipped on load (it only costs that record).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from kubernetes.client import ApiClient

from certbotk8s.adapters.kube import rest
from certbotk8s.adapters.kube.api_calls import RECORDS_PREFIX, records_shard
from certbotk8s.adapters.kube.client import (
    MERGE_PATCH,
    Op,
    request,
)
from certbotk8s.adapters.kube.rest import KubeRest
from certbotk8s.adapters.kube.watch import SECRETS, list_core
from certbotk8s.core.errors import KubeConflict
from certbotk8s.core.model import SecretRef
from certbotk8s.core.state import records as rec
from certbotk8s.core.state.secret_meta import MANAGED_BY_LABEL, MANAGED_BY_VALUE

ROLE_LABEL = "certbotk8s.io/role"
ROLE = "certificate-records"
PREFIX = RECORDS_PREFIX
shard_name = records_shard


class KubeRecordStore:
    def __init__(self, api_client: ApiClient, namespace: str, shards: int = rec.SHARDS) -> None:
        self._api = api_client
        self._rest = KubeRest(api_client)
        self.namespace = namespace
        self.shards = shards
        self._missing: set[str] = set()  # shards the last `load` did not find, not made since

    def load(self) -> dict[SecretRef, dict[str, str]]:
        items = list_core(SECRETS, self._api, self.namespace,
                          label_selector=f"{ROLE_LABEL}={ROLE}")
        names = {str((item.get("metadata") or {}).get("name")) for item in items}
        self._missing = {shard_name(i) for i in range(self.shards)} - names
        found: dict[SecretRef, dict[str, str]] = {}
        for item in items:
            data = item.get("data")
            for key, value in (data.items() if isinstance(data, dict) else []):
                ref = rec.ref_of(str(key))
                record = _decode(value) if ref is not None else None
                if ref is not None and record is not None:
                    found[ref] = record
        return found

    def load_one(self, ref: SecretRef) -> dict[str, str] | None:
        """`ref`'s record as stored now (one read of its shard); None when there is none."""
        name = shard_name(rec.shard_of(ref, self.shards))
        shard = request(Op("get", "secrets", self.namespace, name),
                        lambda: self._rest.get(rest.secrets(self.namespace, name)))
        data = (shard or {}).get("data")
        value = data.get(rec.entry_key(ref)) if isinstance(data, dict) else None
        return _decode(value) if value is not None else None

    def save(self, changes: Mapping[SecretRef, Mapping[str, str] | None]) -> None:
        by_shard: dict[int, dict[str, str | None]] = {}
        for ref, record in changes.items():
            value = base64.b64encode(rec.encode(record)).decode() if record is not None else None
            by_shard.setdefault(rec.shard_of(ref, self.shards), {})[rec.entry_key(ref)] = value
        for index, data in sorted(by_shard.items()):
            self._save_shard(shard_name(index), data)

    def _patch(self, name: str, data: dict[str, str | None]) -> bool:
        done = request(Op("patch", "secrets", self.namespace, name),
                       lambda: self._rest.patch(rest.secrets(self.namespace, name),
                                                {"data": data}, MERGE_PATCH))
        return done is not None

    def _save_shard(self, name: str, data: dict[str, str | None]) -> None:
        if name not in self._missing and self._patch(name, data):
            return
        kept = {k: v for k, v in data.items() if v is not None}
        if not kept:
            return  # removals from a shard that is not there: nothing to do
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name, "namespace": self.namespace,
                             "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, ROLE_LABEL: ROLE}},
                "data": kept}
        try:
            request(Op("create", "secrets", self.namespace, name),
                    lambda: self._rest.post(rest.secrets(self.namespace), body))
        except KubeConflict:  # created meanwhile by another process
            self._patch(name, data)
        self._missing.discard(name)


def _decode(value: object) -> dict[str, str] | None:
    if not isinstance(value, str):
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return rec.decode(raw)
