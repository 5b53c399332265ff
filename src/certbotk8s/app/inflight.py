"""Orders in flight, kept in the controller's certificate records (app.records).

When the CA has created an order, its URL and hosts go into the Secret's record
(`core.state.records.ORDER_URL`, `ORDER_HOSTS`); the order's end removes them (a written
certificate replaces the whole record). Records are written behind (the controller's 5 s
flush), and this change waits `ORDER_END_HOLD` (3 s) for the order's end, so an order that
ends within it costs no API write of its own; one still running then is saved.
After a crash the next leader reads the records and resumes each recorded order. A leader
killed within those seconds of placing an order leaves no URL: the next leader places a new
order for the same hosts (the CA reuses the authorizations that were validated meanwhile).

Contract (as `adapters.kube.inflight.KubeInflightStore`, which it replaces): `load` returns
every recorded order; `record` and `clear` never touch the API server themselves; `clear` of
an unknown entry is a no-op; `remove_if_unchanged` removes an entry only while it still
names the order read (an order recorded again meanwhile keeps it).

Orders an earlier version recorded in the Secret `certbotk8s-inflight-orders` (`legacy`) are
read by `load` too (at leadership start), resumed, and cleared or swept there; a record
wins over a legacy entry for the same Secret.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from certbotk8s.adapters.kube.inflight import InflightOrder
from certbotk8s.app.records import ORDER_END_HOLD, Records
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.model import SecretRef
from certbotk8s.core.state import records as rec

log = logging.getLogger(__name__)


class InflightStore(Protocol):
    """Where the order runner keeps orders in flight (see the module docstring)."""

    def load(self) -> dict[SecretRef, InflightOrder]: ...
    def record(self, order: InflightOrder) -> None: ...
    def clear(self, ref: SecretRef) -> None: ...
    def remove_if_unchanged(self, order: InflightOrder) -> bool: ...


class RecordedInflight:
    def __init__(self, records: Records, legacy: InflightStore | None = None) -> None:
        self._records = records
        self._legacy_store = legacy
        self._legacy: dict[SecretRef, InflightOrder] = {}
        # The take-up thread loads, workers clear, the sweep removes: one lock for `_legacy`.
        self._lock = threading.Lock()

    def load(self) -> dict[SecretRef, InflightOrder]:
        recorded: dict[SecretRef, InflightOrder] = {}
        for ref, record in self._records.snapshot().items():
            url, hosts = record.get(rec.ORDER_URL), record.get(rec.ORDER_HOSTS)
            if url and hosts:
                recorded[ref] = InflightOrder(ref, url, tuple(hosts.split(",")))
        legacy: dict[SecretRef, InflightOrder] = {}
        if self._legacy_store is not None:
            try:
                legacy = self._legacy_store.load()
            except CertbotK8sError as e:
                log.warning("cannot read in-flight orders of an earlier version: %s", e)
        with self._lock:
            self._legacy = legacy
        return {**legacy, **recorded}

    def record(self, order: InflightOrder) -> None:
        # the order's end changes the record again: one write for both when it ends soon
        self._records.update(order.secret, {rec.ORDER_URL: order.order_url,
                                            rec.ORDER_HOSTS: ",".join(order.hosts)},
                             hold=ORDER_END_HOLD)

    def clear(self, ref: SecretRef) -> None:
        self._records.update(ref, {rec.ORDER_URL: None, rec.ORDER_HOSTS: None})
        with self._lock:
            legacy = self._legacy.pop(ref, None)
        if legacy is not None and self._legacy_store is not None:
            self._legacy_store.clear(ref)

    def remove_if_unchanged(self, order: InflightOrder) -> bool:
        with self._lock:
            legacy = self._legacy.get(order.secret) is order and self._legacy_store is not None
            if legacy:
                self._legacy.pop(order.secret, None)
        if legacy and self._legacy_store is not None:
            return self._legacy_store.remove_if_unchanged(order)
        return self._records.update_if(order.secret, {rec.ORDER_URL: order.order_url},
                                       {rec.ORDER_URL: None, rec.ORDER_HOSTS: None})
