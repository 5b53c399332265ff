"""(desired, observed, now, ARI windows) -> one Action per Secret: what a pass would do.

- REFUSE: the Secret exists and is not managed by certbotk8s; it is never overwritten.
- CONFLICT: two desired certificates for one Secret with different specs; neither is issued
  (discovery already filters these, plan checks again so it is safe on any input).
- RENEW: a check fired and the managed Secret holds a parsable certificate (the order can
  name it in ARI `replaces`); ISSUE: a check fired otherwise.
- NOTHING: no check fired; `next_renewal` says when one will.
Identical desired certificates for one Secret collapse into one (the smallest source wins).
Actions come sorted by Secret.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from certbotk8s.core.model import DesiredCertificate, ObservedSecret, RenewalWindow, SecretRef
from certbotk8s.core.policy import Reason, ReasonCode, evaluate, next_renewal


class ActionKind(enum.Enum):
    ISSUE = "Issue"
    RENEW = "Renew"
    NOTHING = "Nothing"
    REFUSE = "Refuse"
    CONFLICT = "Conflict"


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    desired: DesiredCertificate
    reason: Reason
    next_renewal: datetime | None = None


def _source_key(d: DesiredCertificate) -> tuple[str, str, str, str, str]:
    return (d.source_kind.value, d.source.namespace, d.source.name, d.source.kind, d.source.uid)


def plan(
    desired: Sequence[DesiredCertificate],
    observed: Mapping[SecretRef, ObservedSecret | None],
    now: datetime,
    ari: Mapping[SecretRef, RenewalWindow],
) -> tuple[Action, ...]:
    """One Action per desired Secret. A Secret missing from `observed` counts as not existing."""
    by_secret: dict[SecretRef, list[DesiredCertificate]] = {}
    for d in desired:
        by_secret.setdefault(d.secret, []).append(d)

    actions: list[Action] = []
    for ref in sorted(by_secret):
        claims = sorted(by_secret[ref], key=_source_key)
        if len({c.spec for c in claims}) > 1:
            sources = ", ".join(str(c.source) for c in claims)
            for claim in claims:
                actions.append(
                    Action(
                        ActionKind.CONFLICT,
                        claim,
                        Reason(
                            ReasonCode.SECRET_CONFLICT,
                            f"Secret {ref} is claimed with different specs by {sources}",
                        ),
                    )
                )
            continue
        actions.append(_one(claims[0], observed.get(ref), now, ari.get(ref)))
    return tuple(actions)


def _one(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Action:
    reason = evaluate(desired, observed, now, ari)
    if reason is None:
        assert observed is not None and observed.certificate is not None  # checks guarantee
        at, why = next_renewal(observed.certificate, desired.spec.renew_before, ari, now)
        return Action(
            ActionKind.NOTHING,
            desired,
            Reason(
                ReasonCode.UP_TO_DATE,
                f"valid until {observed.certificate.not_after}; renewal at {at} ({why.message})",
            ),
            next_renewal=at,
        )
    if reason.code is ReasonCode.NOT_MANAGED:
        return Action(ActionKind.REFUSE, desired, reason)
    if observed is not None and observed.managed and observed.certificate is not None:
        return Action(ActionKind.RENEW, desired, reason)
    return Action(ActionKind.ISSUE, desired, reason)
