"""(desired, observed, now, ARI windows) -> one Action per Secret: what a pass would do.

- REFUSE: the Secret exists and is not managed by certbotk8s; it is never overwritten.
- CONFLICT: two desired certificates for one Secret with different specs; neither is issued
  (discovery already filters these, plan checks again so it is safe on any input).
- RENEW: a check fired and the managed Secret holds a parsable certificate (the order can
  name it in ARI `replaces`); ISSUE: a check fired otherwise.
- REPAIR: no check fired but certbotk8s annotations are missing or wrong: rewrite them (no
  order). `annotations` holds the values to set.
- NOTHING: no check fired; `next_renewal` says when one will, `renewal` how that was decided.
  `annotations` holds the chosen ARI moment when it is not yet persisted on the Secret.
Identical desired certificates for one Secret collapse into one (the smallest source wins).
Actions come sorted by Secret.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from certbotk8s.core.model import DesiredCertificate, ObservedSecret, RenewalWindow, SecretRef
from certbotk8s.core.renewal.moment import RenewalTime
from certbotk8s.core.renewal.policy import Reason, ReasonCode, evaluate, renewal_time_of
from certbotk8s.core.state import secret_meta


class ActionKind(enum.Enum):
    ISSUE = "Issue"
    RENEW = "Renew"
    NOTHING = "Nothing"
    REFUSE = "Refuse"
    CONFLICT = "Conflict"
    REPAIR = "Repair"


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    desired: DesiredCertificate
    reason: Reason
    next_renewal: datetime | None = None
    renewal: RenewalTime | None = None
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)


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
        info = observed.certificate
        decided = renewal_time_of(desired, info, ari, observed.recorded)
        at = max(decided.at, now)
        repairs = secret_meta.metadata_repairs(desired, info, observed.recorded)
        if repairs:
            return Action(
                ActionKind.REPAIR, desired,
                Reason(ReasonCode.METADATA_REPAIR,
                       f"annotations {', '.join(sorted(repairs))} missing or wrong; "
                       "rewritten from the certificate and the source, no new order"),
                next_renewal=at, renewal=decided, annotations=repairs,
            )
        persist: dict[str, str] = {}
        if decided.moment is not None:
            value = secret_meta.format_moment(decided.moment)
            if observed.recorded.get(secret_meta.RENEWAL_MOMENT) != value:
                persist[secret_meta.RENEWAL_MOMENT] = value
        return Action(
            ActionKind.NOTHING,
            desired,
            Reason(
                ReasonCode.UP_TO_DATE,
                f"valid until {info.not_after}; renewal at {at} ({decided.reason.message})",
            ),
            next_renewal=at, renewal=decided, annotations=persist,
        )
    if reason.code is ReasonCode.NOT_MANAGED:
        return Action(ActionKind.REFUSE, desired, reason)
    if observed is not None and observed.managed and observed.certificate is not None:
        return Action(ActionKind.RENEW, desired, reason)
    return Action(ActionKind.ISSUE, desired, reason)
