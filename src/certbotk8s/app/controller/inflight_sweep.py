"""The leader's sweep of the in-flight orders record: entries no order will ever resume go.

A recorded order outlives its reason when the order's Secret can no longer be written (its
namespace is gone or being deleted) or is no longer wanted (source deleted, hosts changed):
nothing clears those, since only a finished order clears its own entry. `core.state.inflight`
decides; this reads the record and the namespaces, and removes an entry only while it still
holds the value read (an order that records again meanwhile keeps its entry).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping

from certbotk8s.app.inflight import InflightStore
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.model import SecretRef
from certbotk8s.core.state.inflight import NamespaceState, StaleOrder, stale_orders

log = logging.getLogger(__name__)


def sweep_inflight(store: InflightStore, namespace_state: Callable[[str], NamespaceState],
                   desired: Mapping[SecretRef, tuple[str, ...]],
                   busy: Callable[[], Collection[SecretRef]],
                   scope: Collection[str] = ()) -> list[StaleOrder]:
    """Remove the stale entries; returns those removed. `desired` must come from a synced
    cache; `busy()` names the Secrets with an order running or queued right now."""
    recorded = store.load()
    if not recorded:
        return []
    states: dict[str, NamespaceState] = {}
    for namespace in sorted({ref.namespace for ref in recorded
                             if not scope or ref.namespace in scope}):
        try:
            states[namespace] = namespace_state(namespace)
        except CertbotK8sError as e:  # decided without it: only a desired-set rule applies
            log.info("in-flight orders: cannot read namespace %s: %s", namespace, e)
    removed: list[StaleOrder] = []
    for stale in stale_orders({ref: o.hosts for ref, o in recorded.items()}, desired, states,
                              busy(), scope):
        if stale.secret in busy():
            continue  # an order for it started meanwhile
        order = recorded[stale.secret]
        if store.remove_if_unchanged(order):
            log.info("in-flight order of %s removed from the record (%s): %s",
                     stale.secret, order.order_url, stale.why)
            removed.append(stale)
    return removed
