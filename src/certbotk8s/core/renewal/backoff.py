"""Backoff after a failed order: 1 min, 10 min, 100 min, then daily, jittered, and never longer
than a fraction of the time the current certificate has left (a retry must come while it is
still valid). Pure: the caller passes the jitter factor and the clock's reading."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

STEPS = (timedelta(minutes=1), timedelta(minutes=10), timedelta(minutes=100), timedelta(days=1))
JITTER = (0.9, 1.1)  # the factor callers draw uniformly from
REMAINING_FRACTION = 10  # wait at most 1/10 of the time the certificate has left ...
MIN_WAIT = timedelta(seconds=5)  # ... but not less than this (no hot loop near expiry)


@dataclass(frozen=True)
class FailureState:
    """Consecutive failed attempts for one Secret, when the next may start, and why it failed."""

    failures: int = 0
    next_attempt: datetime | None = None
    last_error: str = ""

    def waiting(self, now: datetime) -> bool:
        return self.next_attempt is not None and now < self.next_attempt


def after_failure(previous: FailureState, now: datetime, error: str, jitter: float,
                  not_after: datetime | None) -> FailureState:
    """The state after one more failure at `now`. `jitter` in JITTER; `not_after` of the
    certificate the Secret still holds (None: it holds none, the step is not capped)."""
    step = STEPS[min(previous.failures, len(STEPS) - 1)] * jitter
    if not_after is not None and not_after > now:
        step = min(step, max((not_after - now) / REMAINING_FRACTION, MIN_WAIT))
    return FailureState(previous.failures + 1, (now + step).replace(microsecond=0), error)


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
