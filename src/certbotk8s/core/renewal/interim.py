"""While a host change waits for the rate-limit budget, the names the Secret holds stay renewed.

A Secret whose source now wants other names is due at once (core.renewal.policy:
`hosts_changed`). When the new names share none with the certificate it holds, the order cannot
name that certificate in `replaces` and counts against the CA's limits (certificates per
registered domain, per exact set): on a busy domain the budget may hold it for days. Meanwhile
the certificate the Secret holds must not run out. So when the budget holds a host change, the
certificate is renewed for the names it already has, once it is due on its own (its ARI moment,
the lifetime fraction, the floor, or expired): that order names it in `replaces`, which Let's
Encrypt exempts from every limit. The host change is ordered as soon as the budget allows.

The names stay this Secret's meanwhile: its record still holds them (core.state.records: the
claim changes with the next issuance), so no other namespace can have claimed them. They are
taken from that record, never from the certificate bytes alone: the Secret is the tenant's to
edit, and another namespace's certificate copied into it must not be renewed for its names.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from certbotk8s.core.model import DesiredCertificate, ObservedSecret, RenewalWindow
from certbotk8s.core.renewal.plan import Action, ActionKind, plan
from certbotk8s.core.renewal.policy import issued_here
from certbotk8s.core.renewal.reasons import Reason, ReasonCode
from certbotk8s.core.renewal.replaces import replaced_cert_id
from certbotk8s.core.state import secret_meta


def holding_names(action: Action, observed: ObservedSecret | None) -> DesiredCertificate | None:
    """The certificate `action`'s Secret holds, wanted as it is (its own names, everything else
    as the source asks), when `action` is a host change whose renewal could name it in
    `replaces`; else None. Only a certificate the controller's record says it issued to this
    Secret (its serial) is renewed, for the names that record holds."""
    if action.kind is not ActionKind.RENEW or action.reason.code is not ReasonCode.HOSTS_CHANGED:
        return None
    if observed is None or not observed.managed or not issued_here(observed):
        return None
    hosts = secret_meta.recorded_hosts(observed.recorded)
    if not hosts:
        return None
    d = action.desired
    kept = replace(d, spec=replace(d.spec, hosts=hosts))
    return kept if replaced_cert_id(True, kept, observed) is not None else None


def interim_renewal(action: Action, observed: ObservedSecret | None, now: datetime,
                    ari: RenewalWindow | None) -> Action | None:
    """What the Secret of `action` (a host change the budget holds) does meanwhile: a RENEW of
    the names it holds when their certificate is due on its own at `now` (the order sends
    `replaces`), a NOTHING whose `next_renewal` says when it will be; None when `action` is no
    such host change. `ari`: the CA's window for the certificate held."""
    kept = holding_names(action, observed)
    if kept is None or observed is None:
        return None
    ref = kept.secret
    found = plan([kept], {ref: observed}, now, {ref: ari} if ari is not None else {})[0]
    if found.kind is ActionKind.RENEW:
        note = (f"{found.reason.message}; renewed for the names it holds while the host change "
                f"({action.reason.message}) waits for the rate-limit budget")
        return replace(found, reason=Reason(found.reason.code, note))
    if found.kind in (ActionKind.NOTHING, ActionKind.REPAIR) and found.next_renewal is not None:
        return found
    return None
