"""Which orders hold the ExternalName Service of each source namespace (the controller's).

In `routeNamespace: source` mode an Ingress route reaches the solver through an ExternalName
Service next to it. The controller keeps one such Service per source namespace across orders
(two API writes less per order) instead of one per order; `adapters.http01.routing` makes the
API calls, this module keeps the count:

- `hold(namespace, holder, ensure)`: `holder` (an order's route name) uses the namespace's
  Service. `ensure` (check it on the API server, create or repair it) runs when this process
  has not seen it since it was last free: while another order of ours holds it, it is known
  to be there. Serialised per namespace, so a burst of orders checks and creates it once.
  `ensure` raising leaves nothing held.
- `release(namespace, holder)`: that order is done with it; idempotent.
- `drop(namespace, delete)`: delete that namespace's Service (`delete`: True when done or
  already gone) unless an order holds it; no order can take it up while it is being deleted.
- `reset()`: forget every Service and hold (the sweep of a leader taking up, which deletes
  them all, routes included).
- `retire(keep, delete)`: `drop` every Service this process made or checked in a namespace
  not in `keep`; returns the namespaces whose Service was deleted (a failed `delete` is tried
  again at the next call).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    holders: set[str] = field(default_factory=set)
    known: bool = False  # there, as far as this process knows (checked, made, not deleted)


class SharedServices:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def _entry(self, namespace: str) -> _Entry:
        with self._lock:
            return self._entries.setdefault(namespace, _Entry())

    def hold(self, namespace: str, holder: str, ensure: Callable[[], None]) -> None:
        entry = self._entry(namespace)
        with entry.lock:
            if not (entry.known and entry.holders):
                # Free since we last looked: a tenant or a sweep may have changed or deleted it.
                entry.known = False
                ensure()
                entry.known = True
            entry.holders.add(holder)

    def release(self, namespace: str, holder: str) -> None:
        with self._lock:
            entry = self._entries.get(namespace)
        if entry is not None:
            with entry.lock:
                entry.holders.discard(holder)

    def held(self, namespace: str) -> bool:
        with self._lock:
            entry = self._entries.get(namespace)
        return entry is not None and bool(entry.holders)

    def reset(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            with entry.lock:
                entry.known = False
                entry.holders.clear()

    def retire(self, keep: Collection[str], delete: Callable[[str], bool]) -> list[str]:
        """`drop` the Service of every namespace not in `keep` that this process made or
        checked; the namespaces whose Service was deleted."""
        with self._lock:
            known = sorted(ns for ns, entry in self._entries.items() if entry.known)
        return [ns for ns in known if ns not in keep and self.drop(ns, delete)]

    def drop(self, namespace: str, delete: Callable[[str], bool]) -> bool:
        """Delete the namespace's Service (`delete`) unless an order holds it; no order takes
        it up meanwhile. Whether it was deleted."""
        entry = self._entry(namespace)
        with entry.lock:
            if entry.holders:
                return False  # an order routes through it now
            if not delete(namespace):
                return False
            entry.known = False
            return True
