""" "Renew now?" as an ordered chain of small named checks (after cert-manager's policies.go).

Each check looks at (desired, observed, now, ari) and returns a Reason when the Secret needs a
new certificate, else None. `evaluate` runs the chain and returns the first Reason. The timing
checks agree with `next_renewal`: a certificate is due exactly when `now >= next_renewal(...)[0]`.

Timing: the ARI window start when the CA gave a (well-formed) window, else the point where 1/3
of the lifetime is left (1/2 for lifetimes under 10 days); a configured renew-before moves the
time earlier, never later, and is ignored when it is not shorter than the lifetime.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from certbotk8s.core import secret_meta
from certbotk8s.core.durations import format_duration
from certbotk8s.core.model import (
    CertificateInfo,
    DesiredCertificate,
    ObservedSecret,
    RenewalWindow,
)

SHORT_LIFETIME = timedelta(days=10)


class ReasonCode(enum.StrEnum):
    SECRET_MISSING = "SecretMissing"
    NOT_MANAGED = "NotManaged"
    CERTIFICATE_UNPARSABLE = "CertificateUnparsable"
    KEY_MISMATCH = "KeyMismatch"
    HOSTS_CHANGED = "HostsChanged"
    KEY_TYPE_CHANGED = "KeyTypeChanged"
    ISSUER_CHANGED = "IssuerChanged"
    PROFILE_CHANGED = "ProfileChanged"
    EXPIRED = "Expired"
    INSIDE_ARI_WINDOW = "InsideAriWindow"
    INSIDE_RENEW_BEFORE = "InsideRenewBefore"
    EXPIRING_LIFETIME_FRACTION = "ExpiringLifetimeFraction"
    # Not renewal triggers: used by plan for its other outcomes.
    UP_TO_DATE = "UpToDate"
    SECRET_CONFLICT = "SecretConflict"


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


Check = Callable[
    [DesiredCertificate, ObservedSecret | None, datetime, RenewalWindow | None], "Reason | None"
]


def _valid_window(ari: RenewalWindow | None) -> RenewalWindow | None:
    """RFC 9773: a window whose end is not after its start is treated as absent."""
    return ari if ari is not None and ari.end > ari.start else None


def _effective_renew_before(
    info: CertificateInfo, renew_before: timedelta | None
) -> timedelta | None:
    if renew_before is None or renew_before >= info.lifetime:
        return None
    return renew_before


def _fraction_time(info: CertificateInfo) -> tuple[datetime, str]:
    if info.lifetime < SHORT_LIFETIME:
        return info.not_before + info.lifetime / 2, "1/2 of a lifetime under 10 days"
    return info.not_before + info.lifetime * 2 / 3, "2/3 of the lifetime"


def next_renewal(
    info: CertificateInfo,
    renew_before: timedelta | None,
    ari: RenewalWindow | None,
    now: datetime,
) -> tuple[datetime, Reason]:
    """When to renew `info`, and which rule decided. Never earlier than `now`.

    The ARI window start when given (the caller randomises inside the window), else notBefore
    plus 2/3 of the lifetime (1/2 under 10 days); notAfter - renew_before when that is earlier.
    """
    window = _valid_window(ari)
    if window is not None:
        at = window.start
        reason = Reason(ReasonCode.INSIDE_ARI_WINDOW, f"ARI window starts {window.start}")
    else:
        at, why = _fraction_time(info)
        reason = Reason(ReasonCode.EXPIRING_LIFETIME_FRACTION, f"{why} elapses at {at}")
    effective = _effective_renew_before(info, renew_before)
    if effective is not None and info.not_after - effective < at:
        at = info.not_after - effective
        reason = Reason(
            ReasonCode.INSIDE_RENEW_BEFORE,
            f"renew-before {format_duration(effective)} begins at {at}",
        )
    return max(at, now), reason


# -- the checks, in order ------------------------------------------------------------------


def secret_missing(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    if observed is None:
        return Reason(ReasonCode.SECRET_MISSING, f"Secret {desired.secret} does not exist")
    return None


def not_managed(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    if observed is not None and not observed.managed:
        return Reason(
            ReasonCode.NOT_MANAGED,
            f"Secret {desired.secret} exists and is not managed by certbotk8s",
        )
    return None


def certificate_unparsable(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    if observed is not None and observed.certificate is None:
        detail = observed.parse_error or "no certificate in tls.crt"
        return Reason(ReasonCode.CERTIFICATE_UNPARSABLE, detail)
    return None


def key_mismatch(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    if observed is not None and not observed.key_matches:
        return Reason(ReasonCode.KEY_MISMATCH, "tls.key does not match the certificate")
    return None


def hosts_changed(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    if observed is None or observed.certificate is None:
        return None
    have = sorted({san.lower() for san in observed.certificate.sans})
    want = sorted(set(desired.spec.hosts))
    if have != want:
        added = sorted(set(want) - set(have))
        removed = sorted(set(have) - set(want))
        return Reason(
            ReasonCode.HOSTS_CHANGED,
            f"hosts added {added or '[]'}, removed {removed or '[]'}",
        )
    return None


def key_type_changed(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    if observed is None or observed.certificate is None:
        return None
    have = observed.certificate.key_type or secret_meta.recorded_key_type(observed.annotations)
    if have is not desired.spec.key_type:
        shown = have.value if have is not None else "unknown"
        return Reason(
            ReasonCode.KEY_TYPE_CHANGED,
            f"key type is {shown}, wanted {desired.spec.key_type.value}",
        )
    return None


def issuer_changed(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    if observed is None:
        return None
    have = observed.annotations.get(secret_meta.ISSUER)
    if have != desired.spec.issuer:
        return Reason(
            ReasonCode.ISSUER_CHANGED,
            f"issued by {have or 'an unrecorded issuer'}, wanted {desired.spec.issuer}",
        )
    return None


def profile_changed(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    if observed is None:
        return None
    have = observed.annotations.get(secret_meta.PROFILE) or None
    if have != desired.spec.profile:
        return Reason(
            ReasonCode.PROFILE_CHANGED,
            f"profile is {have or 'the default'}, wanted {desired.spec.profile or 'the default'}",
        )
    return None


def expired(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    if observed is None or observed.certificate is None:
        return None
    if now >= observed.certificate.not_after:
        return Reason(ReasonCode.EXPIRED, f"expired at {observed.certificate.not_after}")
    return None


def inside_ari_window(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    window = _valid_window(ari)
    if observed is None or observed.certificate is None or window is None:
        return None
    if now >= window.start:
        return Reason(
            ReasonCode.INSIDE_ARI_WINDOW,
            f"inside the CA's renewal window {window.start} .. {window.end}",
        )
    return None


def inside_renew_before(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    if observed is None or observed.certificate is None:
        return None
    info = observed.certificate
    effective = _effective_renew_before(info, desired.spec.renew_before)
    if effective is not None and now >= info.not_after - effective:
        return Reason(
            ReasonCode.INSIDE_RENEW_BEFORE,
            f"expires {info.not_after}, within renew-before {format_duration(effective)}",
        )
    return None


def expiring_lifetime_fraction(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    if observed is None or observed.certificate is None or _valid_window(ari) is not None:
        return None
    at, why = _fraction_time(observed.certificate)
    if now >= at:
        return Reason(ReasonCode.EXPIRING_LIFETIME_FRACTION, f"{why} elapsed at {at}")
    return None


CHECKS: tuple[Check, ...] = (
    secret_missing,
    not_managed,
    certificate_unparsable,
    key_mismatch,
    hosts_changed,
    key_type_changed,
    issuer_changed,
    profile_changed,
    expired,
    inside_ari_window,
    inside_renew_before,
    expiring_lifetime_fraction,
)


def evaluate(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
    checks: tuple[Check, ...] = CHECKS,
) -> Reason | None:
    """The first Reason of the chain, or None when the Secret's certificate is fine for now."""
    for check in checks:
        reason = check(desired, observed, now, ari)
        if reason is not None:
            return reason
    return None
