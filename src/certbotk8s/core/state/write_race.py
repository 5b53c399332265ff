"""After a Secret write answered 409: write ours again, or keep what another writer stored. Pure.

Another certbotk8s writer (`renew --once` beside the controller, an overlapping order of another
replica) may store a fresh certificate between our read and our write. Overwriting it would
throw away a good certificate and serve ours, which is no better. So the fresh Secret is kept
when it holds a certificate other than the one we read and that certificate needs nothing (the
renewal chain of core.renewal.policy, whose timing is core.renewal.moment's one decision, finds
no reason).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from certbotk8s.core.model import (
    CertificateInfo,
    CertificateSpec,
    DesiredCertificate,
    ObservedSecret,
)
from certbotk8s.core.renewal.policy import evaluate
from certbotk8s.core.state.secret_meta import build_secret_metadata


class AfterConflict(enum.Enum):
    WRITE = "write"  # write ours on the fresh resourceVersion
    KEEP_THEIRS = "keep-theirs"  # a newer certificate that needs nothing: do not write ours
    ALREADY_OURS = "already-ours"  # an earlier attempt of ours went through after all
    REFUSE = "refuse"  # the Secret is no longer managed by certbotk8s: never overwritten


@dataclass(frozen=True)
class ConflictDecision:
    kind: AfterConflict
    message: str


def after_conflict(desired: DesiredCertificate, seen: ObservedSecret | None,
                   fresh: ObservedSecret | None, ours: CertificateInfo, now: datetime,
                   current: DesiredCertificate | None = None) -> ConflictDecision:
    """What to do with our new certificate `ours` for `desired` when the Secret, read as `seen`
    when the order was decided, now reads as `fresh` (None: deleted meanwhile). `current` is
    what the source wants now when the caller knows it (it may have changed during the order):
    the other writer's certificate is judged against that."""
    if fresh is None:
        return ConflictDecision(AfterConflict.WRITE, "the Secret was deleted meanwhile")
    if not fresh.managed:
        return ConflictDecision(AfterConflict.REFUSE, "the Secret was taken over by another "
                                "owner (no certbotk8s label)")
    theirs = fresh.certificate
    if theirs is None:
        return ConflictDecision(AfterConflict.WRITE, "it holds no usable certificate")
    if theirs.serial == ours.serial:
        return ConflictDecision(AfterConflict.ALREADY_OURS,
                                f"it already holds our certificate (serial {ours.serial})")
    before = seen.certificate if seen is not None else None
    if before is not None and theirs.serial == before.serial:
        return ConflictDecision(AfterConflict.WRITE, "it still holds the certificate being "
                                f"replaced (serial {before.serial})")
    # No ARI window here: it was fetched for the certificate we read, not for theirs; a moment
    # kept on the Secret for theirs still counts (core.renewal.moment).
    reason = evaluate(current or desired, fresh, now, None)
    if reason is not None:
        return ConflictDecision(AfterConflict.WRITE, f"it holds another certificate (serial "
                                f"{theirs.serial}) that needs replacing too: {reason.message}")
    return ConflictDecision(
        AfterConflict.KEEP_THEIRS,
        f"another writer stored a newer certificate (serial {theirs.serial}, valid until "
        f"{theirs.not_after:%Y-%m-%d %H:%M UTC}) since it was read; it is kept and ours "
        f"(serial {ours.serial}) is not written")


def unwritten_unusable(desired: DesiredCertificate, ordered_for: CertificateSpec,
                       issued: CertificateInfo, now: datetime) -> str | None:
    """Why a certificate issued earlier for `ordered_for` but never written (the API server was
    away) must not be written now for `desired`; None when it may. It must have been ordered for
    the very same spec, and need nothing, judged by the policy chain as if it were in the
    Secret already."""
    if ordered_for != desired.spec:
        return "what the source asks for changed since it was ordered"
    meta = build_secret_metadata(desired, issued, now)
    as_written = ObservedSecret(ref=desired.secret, managed=True, resource_version="",
                                certificate=issued, key_matches=True,
                                recorded=dict(meta.annotations))
    reason = evaluate(desired, as_written, now, None)
    return None if reason is None else reason.message
