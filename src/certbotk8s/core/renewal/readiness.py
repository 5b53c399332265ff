"""Per-certificate readiness, shaped like cert-manager's Certificate Ready condition.

One row for every desired certificate (issued or not) and one for every refused source, so a
certificate that never arrived, or a source that was refused, still has a series to alert on.

Ready is "True" when the Secret holds a managed, parsable, unexpired certificate whose key
matches and whose names cover the wanted hosts; "False" when it does not and an attempt failed,
the source is refused, or the Secret is in conflict or foreign; "Unknown" while a first
issuance is on its way (no certificate yet, nothing failed yet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from certbotk8s.core.model import ObservedSecret, SecretRef, SourceProblem
from certbotk8s.core.renewal.plan import Action, ActionKind

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"
CONDITIONS = (TRUE, FALSE, UNKNOWN)


@dataclass(frozen=True)
class CertificateRow:
    namespace: str
    name: str  # the Secret; for a refused source, the source's name
    issuer: str  # empty for a refused source
    condition: str  # one of CONDITIONS
    not_after: datetime | None = None
    renewal: datetime | None = None
    failures: int = 0  # failed attempts in a row
    not_before: datetime | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.namespace, self.name, self.issuer)


def holds_wanted_certificate(action: Action, observed: ObservedSecret | None,
                             now: datetime) -> bool:
    """The Secret serves a valid certificate for the wanted hosts right now."""
    if observed is None or not observed.managed or observed.certificate is None:
        return False
    info = observed.certificate
    return (observed.key_matches and info.not_before <= now < info.not_after
            and set(action.desired.spec.hosts) <= set(info.sans))


def certificate_rows(
    actions: Sequence[Action],
    observed: Mapping[SecretRef, ObservedSecret | None],
    problems: Sequence[SourceProblem],
    failures: Mapping[SecretRef, int],
    now: datetime,
    scheduled: Mapping[SecretRef, datetime] | None = None,
) -> list[CertificateRow]:
    """Rows for the certificate metrics from one plan (see the module docstring).

    `failures` counts each Secret's failed attempts in a row; `scheduled` is when each is
    renewed or tried again (else the plan's next renewal, or now when due).
    """
    rows: dict[tuple[str, str, str], CertificateRow] = {}
    scheduled = scheduled or {}
    failing = {ref for ref, count in failures.items() if count > 0}
    for action in actions:
        ref = action.desired.secret
        seen = observed.get(ref)
        info = seen.certificate if seen is not None and seen.managed else None
        ready = holds_wanted_certificate(action, seen, now)
        if action.kind in (ActionKind.REFUSE, ActionKind.CONFLICT):
            condition = FALSE
        elif ready and action.kind in (ActionKind.NOTHING, ActionKind.REPAIR):
            condition = TRUE
        elif ready and ref not in failing and _only_due(action):
            condition = TRUE  # due for a timed renewal: the current certificate still serves
        elif info is None and ref not in failing:
            condition = UNKNOWN
        else:
            condition = FALSE
        renewal = scheduled.get(ref) or action.next_renewal
        if renewal is None and action.kind in (ActionKind.ISSUE, ActionKind.RENEW):
            renewal = now
        row = CertificateRow(ref.namespace, ref.name, action.desired.spec.issuer, condition,
                             info.not_after if info is not None else None, renewal,
                             failures.get(ref, 0),
                             info.not_before if info is not None else None)
        previous = rows.get(row.key)
        # Several sources may want one Secret; the worst condition wins.
        if previous is None or _rank(row.condition) > _rank(previous.condition):
            rows[row.key] = row
    for problem in problems:
        if problem.source.kind == "Config":
            continue
        row = CertificateRow(problem.source.namespace, problem.source.name, "", FALSE)
        rows.setdefault(row.key, row)
    return list(rows.values())


def _only_due(action: Action) -> bool:
    """A renewal for time's sake (ARI, renew-before, lifetime fraction), not for a change."""
    return action.kind is ActionKind.RENEW and action.reason.code.value in (
        "InsideAriWindow", "InsideRenewBefore", "ExpiringLifetimeFraction", "LifetimeFloor",
        "RenewalRequested")


def _rank(condition: str) -> int:
    return {TRUE: 0, UNKNOWN: 1, FALSE: 2}[condition]
