"""Backoff after a failed order: 1 min, 10 min, 100 min, then daily, jittered, and never longer
than a fraction of the time the current certificate has left (a retry must come while it is
still valid). Pure: the caller passes the jitter factor and the clock's reading."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from certbotk8s.core.model import CertificateSpec

STEPS = (timedelta(minutes=1), timedelta(minutes=10), timedelta(minutes=100), timedelta(days=1))
JITTER = (0.9, 1.1)  # the factor callers draw uniformly from
REMAINING_FRACTION = 10  # wait at most 1/10 of the time the certificate has left ...
MIN_WAIT = timedelta(seconds=5)  # ... but not less than this (no hot loop near expiry)


@dataclass(frozen=True)
class FailureState:
    """Consecutive failed attempts for one Secret, when the next may start, and why it failed.
    `spec`: the fingerprint of the certificate they failed for (`spec_fingerprint`; "" when
    unknown: recorded before fingerprints existed); `failed_at`: when the last one failed."""

    failures: int = 0
    next_attempt: datetime | None = None
    last_error: str = ""
    spec: str = ""
    failed_at: datetime | None = None

    def waiting(self, now: datetime) -> bool:
        return self.next_attempt is not None and now < self.next_attempt


def spec_fingerprint(spec: CertificateSpec) -> str:
    """A short stable digest of what is ordered for a Secret: hosts, issuer, challenge, DNS
    provider, key type and profile (not renew-before: it moves the renewal, not the order)."""
    text = "\n".join((",".join(spec.hosts), spec.issuer, spec.challenge.value,
                      spec.dns_provider or "", spec.key_type.value, spec.profile or ""))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def for_attempt(state: FailureState, spec: str,
                requested_at: datetime | None = None) -> FailureState:
    """The failure state that applies to an attempt at the certificate fingerprinted `spec`,
    the one rule both modes follow:

    - failures of another spec do not count (the source changed, e.g. a fixed host or
      challenge: the new certificate starts afresh, no backoff);
    - a renewal requested after the last failure (`certbotk8s renew NAMESPACE/SECRET`) is
      not held: no wait, the count kept, so if it fails too the backoff goes on from there.
      A request cannot pre-date its answer: once that attempt failed, the backoff is back.
    """
    if state.failures == 0:
        return state
    if state.spec and spec and state.spec != spec:
        return FailureState()
    if requested_at is not None and (state.failed_at is None or requested_at > state.failed_at):
        return replace(state, next_attempt=None)
    return state


def after_failure(previous: FailureState, now: datetime, error: str, jitter: float,
                  not_after: datetime | None, spec: str = "") -> FailureState:
    """The state after one more failure at `now` of an attempt at `spec` (its fingerprint).
    `jitter` in JITTER; `not_after` of the certificate the Secret still holds (None: it holds
    none, the step is not capped). Failures of another spec are not counted (`for_attempt`)."""
    previous = for_attempt(previous, spec)
    step = STEPS[min(previous.failures, len(STEPS) - 1)] * jitter
    if not_after is not None and not_after > now:
        step = min(step, max((not_after - now) / REMAINING_FRACTION, MIN_WAIT))
    return FailureState(previous.failures + 1, (now + step).replace(microsecond=0), error,
                        spec, now.replace(microsecond=0))


def capped_on_read(state: FailureState, now: datetime, not_after: datetime | None,
                   failed_at: datetime | None) -> FailureState:
    """`state` as read back, its next attempt capped as `after_failure` caps it, from the
    failure's time `failed_at` (this clock's `now` when unknown or later: a writer whose clock
    runs ahead, even past the certificate's expiry, cannot skip the cap)."""
    if state.next_attempt is None or not_after is None:
        return state
    at = min(failed_at, now) if failed_at is not None else now
    if not_after <= at:
        return state
    latest = (at + max((not_after - at) / REMAINING_FRACTION, MIN_WAIT)).replace(microsecond=0)
    return replace(state, next_attempt=latest) if state.next_attempt > latest else state
