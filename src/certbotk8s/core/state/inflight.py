"""Which recorded in-flight orders no order will ever resume (pure: the leader's sweep decides
with it, the adapters read and remove).

A recorded order is resumed only for the very Secret and hosts a source still asks for. So an
entry whose namespace is gone or being deleted (no new content can be written there), whose
Secret no source wants any more, or whose hosts are no longer the desired ones only costs
space. An entry whose Secret has an order running or queued on this leader is kept whatever
the rest says: that order may still record or resume it.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from certbotk8s.core.model import SecretRef


class NamespaceState(enum.Enum):
    ACTIVE = "active"
    TERMINATING = "terminating"  # deletionTimestamp set: the API server refuses new content
    GONE = "gone"  # not found
    UNKNOWN = "unknown"  # could not be read (RBAC in namespaced mode, API error)


@dataclass(frozen=True)
class StaleOrder:
    secret: SecretRef
    why: str


def stale_orders(recorded: Mapping[SecretRef, tuple[str, ...]],
                 desired: Mapping[SecretRef, tuple[str, ...]],
                 namespaces: Mapping[str, NamespaceState],
                 busy: Collection[SecretRef],
                 scope: Collection[str] = ()) -> list[StaleOrder]:
    """The entries of `recorded` (Secret -> hosts of its order) to remove, with why.

    `desired`: every certificate the sources ask for now (Secret -> hosts), from a synced
    cache; `namespaces`: what is known of the entries' namespaces (missing: unknown); `busy`:
    Secrets with an order running or queued; `scope`: the namespaces this controller looks
    after (empty: all), entries elsewhere are not its to judge."""
    stale: list[StaleOrder] = []
    for ref in sorted(recorded, key=lambda r: (r.namespace, r.name)):
        if ref in busy or (scope and ref.namespace not in scope):
            continue
        state = namespaces.get(ref.namespace, NamespaceState.UNKNOWN)
        hosts = desired.get(ref)
        if state is NamespaceState.GONE:
            why = f"namespace {ref.namespace} no longer exists"
        elif state is NamespaceState.TERMINATING:
            why = f"namespace {ref.namespace} is being deleted"
        elif hosts is None:
            why = f"no source asks for Secret {ref} any more"
        elif hosts != recorded[ref]:  # the runner resumes only for the very same hosts
            why = f"the hosts of Secret {ref} changed since the order was placed"
        else:
            continue
        stale.append(StaleOrder(ref, why))
    return stale
