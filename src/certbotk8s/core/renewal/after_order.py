"""What follows an order's outcome: the one decision both modes carry out after an order (or
after writing a certificate issued earlier).

From plain facts (did it succeed, the error's retry intent as classified where it was raised or
wrapped, whether the mode's outage services explained it, whether a certificate was issued but
not written, whether an order URL is known) it says: count a backoff or clear it, resume the same
order later, keep the unwritten certificate, count the failed authorization in the budget, clear
the in-flight record, try again soon (API server away). Pure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from certbotk8s.core.errors import CertbotK8sError, RetryIntent, failed_identifier, retry_intent


class Backoff(enum.Enum):
    COUNT = "count"  # one more failure: the next attempt waits (core.renewal.backoff)
    CLEAR = "clear"  # a new certificate: no failure state any more
    KEEP = "keep"  # not the certificate's fault: the failure state stays as it was


@dataclass(frozen=True)
class OrderResult:
    """What one order came to. `outage`: the mode decided the failure was a service being down
    (the controller's gates, `renew --once`'s outages); `unwritten`: the CA issued the
    certificate and writing it failed; `placed`: an order URL is known (it can be resumed);
    `can_keep`: this mode can keep an unwritten certificate to write later (the controller)."""

    ok: bool
    error: CertbotK8sError | None = None
    outage: bool = False
    unwritten: bool = False
    placed: bool = False
    can_keep: bool = False


@dataclass(frozen=True)
class FollowUp:
    backoff: Backoff = Backoff.KEEP
    resume: bool = False  # remember the order URL: the same order goes on later
    keep_unwritten: bool = False  # keep the issued certificate, write it without a new order
    failed_authz: tuple[str, ...] = ()  # identifiers whose failed authorization counts
    clear_inflight: bool = False  # that order is over (done or dead): drop its in-flight record
    retry_soon: bool = False  # the API server was away: look again shortly, not at once


def after_order(result: OrderResult) -> FollowUp:
    if result.ok:
        return FollowUp(backoff=Backoff.CLEAR, clear_inflight=True)
    intent = retry_intent(result.error) if result.error is not None else RetryIntent.FAILED
    if result.unwritten and result.can_keep:
        # Issued, not written: no backoff, nothing to resume (the order is finalized).
        return FollowUp(keep_unwritten=True)
    if intent is RetryIntent.ABANDONED:
        # Leadership lost: the in-flight record stays for the next leader (maybe this replica
        # again once its Lease renews): it resumes the order.
        return FollowUp(resume=result.placed)
    failed = failed_identifier(result.error)
    authz = (failed,) if failed is not None else ()
    dead = intent is RetryIntent.ORDER_DEAD
    if result.outage:
        # A service down (or the API server away): no backoff; the same order goes on once it
        # is back, unless the CA already failed it (its failed authorization still counts).
        resume = result.placed and not dead
        return FollowUp(resume=resume, failed_authz=authz, clear_inflight=not resume,
                        retry_soon=intent is RetryIntent.API_AWAY)
    return FollowUp(backoff=Backoff.COUNT, failed_authz=authz, clear_inflight=dead)
