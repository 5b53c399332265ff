"""May a certificate be ordered now, or why does it wait: the one decision both modes ask.

An ordered list of small named checks over plain facts the caller gathered (leadership, the
namespace, the Secret as read, the failure state, the rate-limit budget's answer, the services
an order needs); time is a parameter. Each check that applies gives a typed `Wait` with its
message and, where one is known, the moment it ends. The first one is *the* reason (logs,
Events, `certbotk8s status`); the controller also wakes at the first known end among them.
No wait at all: the order may go.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from certbotk8s.core.budget import ratelimit
from certbotk8s.core.model import SecretRef
from certbotk8s.core.renewal.backoff import FailureState
from certbotk8s.core.state.secret_meta import format_time


class WaitKind(enum.StrEnum):
    """Why no order is placed now; the values are the Event reasons where an Event is posted."""

    NOT_LEADER = "NotLeader"
    NAMESPACE_DELETING = "NamespaceDeleting"
    FOREIGN_SECRET = "SecretNotManaged"
    NO_LONGER_DUE = "NoLongerDue"
    UNWRITTEN_PENDING = "UnwrittenCertificatePending"
    BACKOFF = "BackingOff"
    RATE_LIMIT = "RateLimitHold"
    CA_DOWN = "CaUnavailable"
    DNS_DOWN = "DnsUnavailable"


@dataclass(frozen=True)
class Wait:
    kind: WaitKind
    message: str
    until: datetime | None = None  # when it ends, if known (else: when the fact changes)

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(frozen=True)
class ServiceDown:
    """A service the order needs that does not answer: `reason` is its Event reason
    (`CaUnavailable`, `DnsUnavailable`), `message` names it and the error."""

    reason: str
    message: str


@dataclass(frozen=True)
class OrderFacts:
    """What the caller knows about one certificate that the plan found due (ISSUE/RENEW).

    `foreign`: the Secret as read now exists and is not managed; `foreign_until`: refused so
    earlier, not looked at again before then. `due`: still due when decided again on a fresher
    read (the controller's order runner). `unwritten`: a certificate issued earlier waits to be
    written here (written instead of a new order, whatever backoff or budget say). `hold`: the
    rate-limit budget's answer. `down`: the services this order needs that are down now."""

    ref: SecretRef
    failure: FailureState = field(default_factory=FailureState)
    hold: ratelimit.Hold | None = None
    down: tuple[ServiceDown, ...] = ()
    leading: bool = True
    namespace_deleting: bool = False
    foreign: bool = False
    foreign_until: datetime | None = None
    due: bool = True
    unwritten: bool = False


Check = Callable[[OrderFacts, datetime], Wait | None]


def _not_leader(facts: OrderFacts, now: datetime) -> Wait | None:
    if facts.leading:
        return None
    return Wait(WaitKind.NOT_LEADER, "this replica does not hold the Lease; the leader orders")


def _namespace_deleting(facts: OrderFacts, now: datetime) -> Wait | None:
    if not facts.namespace_deleting:
        return None
    return Wait(WaitKind.NAMESPACE_DELETING,
                f"namespace {facts.ref.namespace} is being deleted; no order (the API server "
                f"refuses new Secrets there)")


def _foreign_secret(facts: OrderFacts, now: datetime) -> Wait | None:
    refused = facts.foreign_until is not None and facts.foreign_until > now
    if not (facts.foreign or refused):
        return None  # (no end given: the periodic resync looks at the Secret again)
    return Wait(WaitKind.FOREIGN_SECRET,
                f"Secret {facts.ref} exists and is not managed by certbotk8s")


def _no_longer_due(facts: OrderFacts, now: datetime) -> Wait | None:
    if facts.due:
        return None
    return Wait(WaitKind.NO_LONGER_DUE, "the Secret changed since the pass looked")


def _unwritten_pending(facts: OrderFacts, now: datetime) -> Wait | None:
    if not facts.unwritten:
        return None
    return Wait(WaitKind.UNWRITTEN_PENDING,
                "a certificate issued earlier is written instead (no new order)")


def _backoff(facts: OrderFacts, now: datetime) -> Wait | None:
    failure = facts.failure
    if not failure.waiting(now):
        return None
    assert failure.next_attempt is not None
    return Wait(WaitKind.BACKOFF,
                f"backing off after {failure.failures} failed attempts; next attempt at "
                f"{format_time(failure.next_attempt)} (last error: {failure.last_error or '-'})",
                failure.next_attempt)


def hold_message(hold: ratelimit.Hold) -> str:
    return f"rate-limit hold: {hold.message}; ordering possible at {format_time(hold.until)}"


def _rate_limit(facts: OrderFacts, now: datetime) -> Wait | None:
    hold = facts.hold
    if hold is None or hold.until <= now:
        return None
    return Wait(WaitKind.RATE_LIMIT, hold_message(hold), hold.until)


def _service_down(facts: OrderFacts, now: datetime) -> Wait | None:
    if not facts.down:
        return None
    first = facts.down[0]
    kind = WaitKind.CA_DOWN if first.reason == WaitKind.CA_DOWN else WaitKind.DNS_DOWN
    return Wait(kind, first.message)


# In this order: the first that applies is the reason given. A pending unwritten certificate
# comes before backoff and budget (writing it is no new order); a service down comes last, so
# that only a certificate held by nothing else waits on (and is counted by) its service.
CHECKS: tuple[Check, ...] = (_not_leader, _namespace_deleting, _foreign_secret, _no_longer_due,
                             _unwritten_pending, _backoff, _rate_limit, _service_down)


def waits(facts: OrderFacts, now: datetime) -> tuple[Wait, ...]:
    """Every reason this certificate is not ordered now, the deciding one first."""
    return tuple(w for check in CHECKS if (w := check(facts, now)) is not None)


def why_wait(facts: OrderFacts, now: datetime) -> Wait | None:
    """The reason no order is placed now, or None: the order may go."""
    for check in CHECKS:
        found = check(facts, now)
        if found is not None:
            return found
    return None


def wake_at(found: tuple[Wait, ...]) -> datetime | None:
    """When to look again: the first known end among the waits (None: an event will tell)."""
    return next((w.until for w in found if w.until is not None), None)
