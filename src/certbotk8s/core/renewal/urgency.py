"""In which order one `renew --once` pass handles its due work: the most urgent first, so a run
cut short (the Job's deadline) leaves the least urgent behind, not the last names.

1. expired certificates; 2. past the floor (1/10 of the lifetime left); 3. the CA's ARI asks
for a renewal; 4. every other order (first issuances, changed specs, due moments); then the
actions that order nothing. Within a rank, the certificate that expires first goes first
(a missing certificate counts as expiring now), then by Secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from certbotk8s.core.model import ObservedSecret, SecretRef
from certbotk8s.core.renewal.moment import floor_time
from certbotk8s.core.renewal.plan import Action, ActionKind
from certbotk8s.core.renewal.reasons import ReasonCode

EXPIRED, PAST_FLOOR, ARI_RENEW_NOW, OTHER_ORDER, NO_ORDER = range(5)


def urgency(action: Action, observed: ObservedSecret | None, now: datetime) -> int:
    """The rank of `action` (lower is more urgent; see the module docstring)."""
    if action.kind not in (ActionKind.ISSUE, ActionKind.RENEW):
        return NO_ORDER
    info = observed.certificate if observed is not None else None
    if info is not None and now >= info.not_after:
        return EXPIRED
    if info is not None and now >= floor_time(info):
        return PAST_FLOOR
    if action.reason.code is ReasonCode.INSIDE_ARI_WINDOW:
        return ARI_RENEW_NOW
    return OTHER_ORDER


def by_urgency(actions: Iterable[Action], observed: Mapping[SecretRef, ObservedSecret | None],
               now: datetime) -> list[Action]:
    """`actions`, most urgent first (a stable order: equal ones stay by Secret)."""
    def key(action: Action) -> tuple[int, datetime, SecretRef]:
        seen = observed.get(action.desired.secret)
        info = seen.certificate if seen is not None else None
        expires = info.not_after if info is not None else now
        return urgency(action, seen, now), expires, action.desired.secret
    return sorted(actions, key=key)
