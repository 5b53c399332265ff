""" "Renew now?" as an ordered chain of small named checks (after cert-manager's policies.go).

Each check looks at (desired, observed, now, ari) and returns a Reason when the Secret needs a
new certificate, else None. `evaluate` runs the chain and returns the first Reason. The last
check, `renewal_due`, is the one timing decision of core.renewal.moment, so a certificate is due
exactly when `now >= renewal_time_of(...).at`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from certbotk8s.core.model import (
    CaVerdict,
    CertificateInfo,
    DesiredCertificate,
    ObservedSecret,
    RenewalWindow,
)
from certbotk8s.core.renewal.ari_gate import ari_gate
from certbotk8s.core.renewal.moment import RenewalTime, renewal_time
from certbotk8s.core.renewal.reasons import Reason, ReasonCode
from certbotk8s.core.state import secret_meta

__all__ = ["CHECKS", "Reason", "ReasonCode", "evaluate", "renewal_time_of"]


Check = Callable[
    [DesiredCertificate, ObservedSecret | None, datetime, RenewalWindow | None], "Reason | None"
]


def renewal_time_of(
    desired: DesiredCertificate, info: CertificateInfo, ari: RenewalWindow | None,
    annotations: Mapping[str, str],
) -> RenewalTime:
    """The renewal decision for the certificate a Secret holds (its persisted moment and the
    record's ARI renewal gate included)."""
    return renewal_time(info, desired.spec.renew_before, ari,
                        secret_meta.parse_moment(annotations), ari_gate(info, annotations))


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


def issued_here(observed: ObservedSecret) -> bool:
    """Whether this installation's record says it issued the certificate the Secret holds (an
    adopted one, from cert-manager or kube-lego, or one whose record was lost, is not)."""
    return (secret_meta.ISSUED_AT in observed.recorded and observed.certificate is not None
            and observed.recorded.get(secret_meta.SERIAL) == observed.certificate.serial)


def foreign_certificate(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    """A certificate not recorded as ours whose CA (the wanted issuer's) says it does not know
    it: another CA's. Replaced now, so the source gets what it asks for; the order names
    nothing in ARI `replaces` (core.renewal.replaces: no recorded issuer)."""
    if observed is None or observed.certificate is None:
        return None
    if secret_meta.ISSUER in observed.recorded or observed.ca_verdict is not CaVerdict.UNKNOWN:
        return None
    info = observed.certificate
    claimed = (f"; its Secret names issuer {observed.claimed_issuer!r} (not verified)"
               if observed.claimed_issuer else "")
    return Reason(
        ReasonCode.FOREIGN_CERTIFICATE,
        f"the certificate in the Secret (serial {info.serial}, issued by "
        f"{info.issuer or 'an unnamed CA'}{claimed}) is unknown to the CA of issuer "
        f"{desired.spec.issuer}: replaced now, not adopted",
    )


def key_type_changed(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    """The key type wanted differs from the certificate's. Only for a certificate this
    installation issued (the source's key type was changed); an adopted one keeps its key
    until its normal renewal, which then uses the wanted type (no mass re-issue on day one)."""
    if observed is None or observed.certificate is None or not issued_here(observed):
        return None
    have = observed.certificate.key_type or secret_meta.recorded_key_type(observed.recorded)
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
    have = observed.recorded.get(secret_meta.ISSUER)
    # A lost annotation is repaired without an order (plan: MetadataRepair); a different
    # recorded issuer is a real change.
    if have is not None and have != desired.spec.issuer:
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
    if observed is None or secret_meta.PROFILE not in observed.recorded:
        return None  # lost: repaired without an order
    have = observed.recorded.get(secret_meta.PROFILE) or None
    if have != desired.spec.profile:
        return Reason(
            ReasonCode.PROFILE_CHANGED,
            f"profile is {have or 'the default'}, wanted {desired.spec.profile or 'the default'}",
        )
    return None


def renewal_requested(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    """`certbotk8s renew NAMESPACE/SECRET` (or `revoke`) asked for a new certificate.

    The request is the time in the Secret's RENEW_REQUESTED_AT annotation (it asks for this
    Secret only); it is answered once the controller's record says a certificate was issued
    after it (writing the new certificate also drops the annotation). Both times are whole
    seconds: a certificate issued in the very second of the request does not answer it (it may
    have been issued just before), so a request right after an issuance still renews.
    """
    if observed is None:
        return None
    requested = secret_meta.parse_time(observed.renew_requested)
    if requested is None or requested > now:
        return None  # a request from the future is no request (it would renew forever)
    issued = secret_meta.parse_time(observed.recorded.get(secret_meta.ISSUED_AT, ""))
    if issued is not None and issued > requested:
        return None
    return Reason(ReasonCode.RENEWAL_REQUESTED,
                  f"renewal requested at {secret_meta.format_time(requested)}")


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


def renewal_due(
    desired: DesiredCertificate,
    observed: ObservedSecret | None,
    now: datetime,
    ari: RenewalWindow | None,
) -> Reason | None:
    """The renewal moment (core.renewal.moment: ARI moment, renew-before, lifetime fraction,
    floor)."""
    if observed is None or observed.certificate is None:
        return None
    decided = renewal_time_of(desired, observed.certificate, ari, observed.recorded)
    return decided.reason if decided.due(now) else None


CHECKS: tuple[Check, ...] = (
    secret_missing,
    not_managed,
    certificate_unparsable,
    key_mismatch,
    hosts_changed,
    foreign_certificate,
    key_type_changed,
    issuer_changed,
    profile_changed,
    renewal_requested,
    expired,
    renewal_due,
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
