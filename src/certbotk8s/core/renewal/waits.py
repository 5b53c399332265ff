"""Caps on waits inside one order. Pure: the caller passes the clock's reading.

The DNS-01 propagation wait (`solver.dns01.propagationTimeout`, 300 s by default) is capped by
the order's own deadline (it must leave time for the CA to validate and for finalizing) and by
a tenth of the life left to the certificate still serving: a wait never outlasts the
certificate it is for, and an order that cannot succeed in time fails with a clear message
instead of meeting the engine's deadline half-way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

ORDER_SHARE = 0.75  # of the order deadline; the rest is for validation and finalizing
REMAINING_FRACTION = 10  # at most 1/10 of the life left to the serving certificate
MIN_WAIT = timedelta(seconds=5)  # never less (a near-expiry certificate still gets a chance)


@dataclass(frozen=True)
class CappedWait:
    """The wait to use, and why it is shorter than configured ("" when it is not)."""

    limit: timedelta
    why: str = ""


def propagation_wait(configured: timedelta, order_deadline: timedelta,
                     not_after: datetime | None, now: datetime) -> CappedWait:
    """The DNS propagation wait for one order. `not_after` of the certificate the Secret
    still holds (None: none yet, only the order deadline caps)."""
    limit, why = configured, ""
    by_order = order_deadline * ORDER_SHARE
    if by_order < limit:
        limit = by_order
        why = (f"propagationTimeout {configured.total_seconds():g}s capped to "
               f"{ORDER_SHARE:.0%} of the {order_deadline.total_seconds():g}s order deadline")
    if not_after is not None:
        left = max(not_after - now, timedelta(0))
        if left / REMAINING_FRACTION < limit:
            limit = left / REMAINING_FRACTION
            why = (f"propagationTimeout {configured.total_seconds():g}s capped to 1/"
                   f"{REMAINING_FRACTION} of the {left.total_seconds():.0f}s the current "
                   f"certificate has left")
    if limit < MIN_WAIT:
        limit = min(MIN_WAIT, configured)
    return CappedWait(limit, why)
