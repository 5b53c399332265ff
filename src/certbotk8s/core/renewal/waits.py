"""How long one order may wait, and why. Pure: the caller passes the clock's reading.

An order's deadline (first challenge to certificate) is `solver.orderTimeout` (120 s by
default: the CA validating and finalizing), plus for DNS-01 the propagation wait
`solver.dns01.propagationTimeout` (300 s by default) in front of it. Both are taken as
configured, capped only by the certificate still serving: the whole order gets at most 1/10 of
the life it has left (a wait never outlasts the certificate it is for), the propagation wait at
most 3/4 of that (the rest is for validation and finalizing). Floors keep an order possible for
a certificate near or past its end, never above what is configured. `why` says what was capped,
for the error an order that cannot finish in time fails with.

`controller_wait` is how long `renew NAMESPACE/SECRET` waits for the controller by default: the
longest order the config allows, and a margin, so the command never gives up on an order the
controller is still running.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

PROPAGATION_SHARE = 0.75  # of a capped deadline; the rest is for validation and finalizing
REMAINING_FRACTION = 10  # at most 1/10 of the life left to the serving certificate
MIN_WAIT = timedelta(seconds=5)  # never less propagation wait (unless configured less)
MIN_DEADLINE = timedelta(seconds=30)  # never a shorter order (unless configured shorter)
# What a forced renewal takes besides the order's deadline (first challenge to certificate):
# the controller seeing the request, a free worker, placing the order, writing the Secret.
CONTROLLER_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class CappedWait:
    """The propagation wait to use, and why it is shorter than configured ("" when not)."""

    limit: timedelta
    why: str = ""


@dataclass(frozen=True)
class OrderWaits:
    """An order's deadline and, for DNS-01, the propagation wait inside it; `why` the
    deadline is shorter than configured ("" when it is not)."""

    deadline: timedelta
    propagation: CappedWait
    why: str = ""


def configured_deadline(propagation_timeout: timedelta, order_timeout: timedelta,
                        dns01: bool) -> timedelta:
    """An order's deadline as configured, before any cap: `order_timeout`, and for DNS-01 the
    propagation wait in front of it."""
    return order_timeout + (propagation_timeout if dns01 else timedelta(0))


def controller_wait(propagation_timeout: timedelta, order_timeout: timedelta) -> timedelta:
    """How long to wait for the controller to renew a certificate on request: the longest order
    the config allows (DNS-01, nothing capping it) plus CONTROLLER_MARGIN."""
    return configured_deadline(propagation_timeout, order_timeout, dns01=True) + CONTROLLER_MARGIN


def order_waits(propagation_timeout: timedelta, order_timeout: timedelta, dns01: bool,
                not_after: datetime | None, now: datetime) -> OrderWaits:
    """The waits of one order. `not_after` of the certificate the Secret still holds (None:
    none yet, nothing caps); `dns01` False: no propagation wait, the deadline is
    `order_timeout` alone."""
    propagation = propagation_timeout if dns01 else timedelta(0)
    deadline = configured_deadline(propagation_timeout, order_timeout, dns01)
    if not_after is None:
        return OrderWaits(deadline, CappedWait(propagation))
    left = max(not_after - now, timedelta(0))
    cap = max(left / REMAINING_FRACTION, min(MIN_DEADLINE, deadline))
    if cap >= deadline:
        return OrderWaits(deadline, CappedWait(propagation))
    capped = min(propagation, max(cap * PROPAGATION_SHARE, min(MIN_WAIT, propagation)))
    floor = (f" (at least {MIN_DEADLINE.total_seconds():g}s)"
             if cap > left / REMAINING_FRACTION else "")
    why = (f"order deadline {deadline.total_seconds():g}s capped to "
           f"{cap.total_seconds():g}s, 1/{REMAINING_FRACTION} of the "
           f"{left.total_seconds():.0f}s the current certificate has left{floor}")
    if capped == propagation:
        return OrderWaits(cap, CappedWait(propagation), why)
    return OrderWaits(cap, CappedWait(capped, (
        f"propagationTimeout {propagation_timeout.total_seconds():g}s capped to "
        f"{capped.total_seconds():g}s: {why}")), why)
