"""In which order one `renew --once` pass handles its due work: the most urgent first, so a run
cut short (`--stop-after`) leaves the least urgent behind, not the last names.

1. expired certificates; 2. past the floor (1/10 of the lifetime left); 3. the CA's ARI asks
for a renewal; 4. every other order (first issuances, changed specs, due moments); then the
actions that order nothing. Within a rank, the certificate that expires first goes first
(a missing certificate counts as expiring now), then by Secret; except the ARI rank, which
goes by the end of the CA's window (the CA's own deadline): a window the CA moved into the
past ("renew now", e.g. after a revocation) comes before scheduled renewals whose windows are
still open, however soon those certificates expire (the floor still puts them first in time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from certbotk8s.core.model import ObservedSecret, RenewalWindow, SecretRef
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
               now: datetime, ari: Mapping[SecretRef, RenewalWindow] | None = None,
               ) -> list[Action]:
    """`actions`, most urgent first (a stable order: equal ones stay by Secret). `ari`: the
    windows the pass read, by Secret (the ARI rank goes by their end)."""
    windows = ari or {}

    def key(action: Action) -> tuple[int, datetime, SecretRef]:
        ref = action.desired.secret
        seen = observed.get(ref)
        info = seen.certificate if seen is not None else None
        rank = urgency(action, seen, now)
        deadline = info.not_after if info is not None else now
        window = windows.get(ref)
        if rank == ARI_RENEW_NOW and window is not None and info is not None \
                and window.cert_id == info.ari_cert_id:
            deadline = window.end
        return rank, deadline, ref
    return sorted(actions, key=key)
