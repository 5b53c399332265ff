"""When to renew a certificate, and why: one pure decision (docs/operations.md, "Renewal").

Inputs: the certificate's facts, the source's `renew-before`, the CA's ARI window (with the
CertID it was fetched for), the moment chosen earlier and persisted on the Secret, and `now`.

1. Floor: never later than when 1/10 of the lifetime is left, whatever else says.
2. ARI: a window is used only when it was fetched for this very certificate (CertID) and lies
   inside [notBefore, notAfter]; one that starts before notBefore ("renew now", e.g. after a
   revocation) is clamped to start there. The moment is a uniform point in it, picked once
   per (certificate, window) and persisted; the same certificate and window give the same
   moment (restart, second replica); a moved window picks again. A persisted moment for this
   certificate, inside its own window, also stands when no window is at hand (CA unreachable,
   or not yet asked).
3. Otherwise the lifetime fraction: 2/3 elapsed (1/2 for lifetimes under 10 days).
4. A gate (core.renewal.ari_gate: at most 5 ARI renewals per Secret in 7 days, a minimum age
   after an ARI renewal) holds the ARI moment back; the lifetime fraction still applies.
5. `renew-before` moves the time earlier, never later; it is ignored when not shorter than the
   lifetime, and never renews a certificate before 1/10 of its lifetime has elapsed (one source
   cannot re-order in a loop).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from certbotk8s.core.config.durations import format_duration
from certbotk8s.core.model import CertificateInfo, RenewalWindow
from certbotk8s.core.renewal.reasons import Reason, ReasonCode

SHORT_LIFETIME = timedelta(days=10)
FLOOR_FRACTION = 10  # renew no later than when 1/10 of the lifetime is left
MIN_AGE_FRACTION = 10  # renew-before never renews before 1/10 of the lifetime has elapsed


@dataclass(frozen=True)
class ChosenMoment:
    """A renewal moment picked inside the ARI `window` of the certificate `cert_id`."""

    at: datetime
    cert_id: str
    window: RenewalWindow


@dataclass(frozen=True)
class AriGate:
    """No ARI-driven renewal before `not_before`; `why` says which rule holds it back
    (core.renewal.ari_gate: the cap on ARI renewals per Secret, the minimum age)."""

    not_before: datetime
    why: str


@dataclass(frozen=True)
class RenewalTime:
    """`at` (may lie in the past: due), the rule that decided, the floor, the ARI moment in
    use (persist it when it differs from the stored one), why a given window was ignored and
    why the ARI moment was held back (`ari_capped`, core.renewal.ari_gate)."""

    at: datetime
    reason: Reason
    floor: datetime
    moment: ChosenMoment | None = None
    ignored_window: str | None = None
    ari_capped: str | None = None

    def due(self, now: datetime) -> bool:
        return now >= self.at

    def ari_held(self, now: datetime) -> bool:
        """The CA's ARI moment has come but the cap or the minimum age holds it back."""
        return (self.ari_capped is not None and self.moment is not None
                and self.moment.at <= now < self.at)


def floor_time(info: CertificateInfo) -> datetime:
    return info.not_after - info.lifetime / FLOOR_FRACTION


def stable_draw(cert_id: str, window: RenewalWindow) -> float:
    """A uniform number in [0, 1) fixed by the certificate and its window (any replica, any
    restart computes the same one, so even an unpersisted moment does not wander)."""
    key = f"{cert_id}|{window.start.isoformat()}|{window.end.isoformat()}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64


def clamped_to_life(info: CertificateInfo, ari: RenewalWindow) -> RenewalWindow:
    """A window for this very certificate that starts before its notBefore, clamped to start
    there: the CA asks for a renewal now (e.g. after a revocation); one that also ends before
    notBefore becomes [notBefore, notBefore + 1 s] (now, but still a window). Other windows
    come back unchanged."""
    if ari.cert_id != info.ari_cert_id or ari.end <= ari.start or ari.start >= info.not_before:
        return ari
    end = max(ari.end, info.not_before + timedelta(seconds=1))
    return RenewalWindow(info.not_before, end, ari.cert_id)


def window_problem(info: CertificateInfo, ari: RenewalWindow) -> str | None:
    """Why `ari` must not be used for `info`, or None when it may."""
    if ari.cert_id != info.ari_cert_id:
        return f"the window belongs to certificate {ari.cert_id or 'unknown'}, not this one"
    if ari.end <= ari.start:
        return f"the window ends ({ari.end}) before it starts ({ari.start})"
    if ari.start < info.not_before or ari.end > info.not_after:
        return (f"the window {ari.start} .. {ari.end} lies outside the certificate's validity "
                f"{info.not_before} .. {info.not_after}")
    return None


def _fraction(info: CertificateInfo) -> tuple[datetime, Reason]:
    if info.lifetime < SHORT_LIFETIME:
        at, why = info.not_before + info.lifetime / 2, "1/2 of a lifetime under 10 days"
    else:
        at, why = info.not_before + info.lifetime * 2 / 3, "2/3 of the lifetime"
    return at, Reason(ReasonCode.EXPIRING_LIFETIME_FRACTION, f"{why} elapses at {at}")


def _ari_moment(info: CertificateInfo, ari: RenewalWindow | None,
                persisted: ChosenMoment | None) -> tuple[ChosenMoment | None, str | None]:
    if ari is not None:
        ari = clamped_to_life(info, ari)
    problem = window_problem(info, ari) if ari is not None else None
    if ari is not None and problem is None:
        if persisted is not None and persisted.cert_id == ari.cert_id and \
                persisted.window == ari and ari.start <= persisted.at <= ari.end:
            return persisted, None
        at = ari.start + (ari.end - ari.start) * stable_draw(ari.cert_id, ari)
        # Whole seconds: the moment is persisted as RFC 3339 and must read back equal.
        return ChosenMoment(max(at.replace(microsecond=0), ari.start), ari.cert_id, ari), None
    if persisted is not None and persisted.cert_id == info.ari_cert_id and \
            window_problem(info, persisted.window) is None and \
            persisted.window.start <= persisted.at <= persisted.window.end:
        return persisted, problem
    return None, problem


def renewal_time(info: CertificateInfo, renew_before: timedelta | None,
                 ari: RenewalWindow | None, persisted: ChosenMoment | None,
                 gate: AriGate | None = None) -> RenewalTime:
    """When `info` renews and why (see the module docstring for the rules). `gate`: no
    ARI-driven renewal before its moment (then the lifetime fraction, if earlier, decides)."""
    floor = floor_time(info)
    moment, ignored = _ari_moment(info, ari, persisted)
    capped = None
    if moment is not None:
        w = moment.window
        at = moment.at
        reason = Reason(ReasonCode.INSIDE_ARI_WINDOW,
                        f"moment {at} chosen in the CA's renewal window {w.start} .. {w.end}")
        if gate is not None and at < gate.not_before:
            capped = f"ARI renewal held back until {gate.not_before}: {gate.why}"
            at, reason = _fraction(info)
            if gate.not_before < at:
                at = gate.not_before
                reason = Reason(ReasonCode.INSIDE_ARI_WINDOW,
                                f"moment {moment.at} chosen in the CA's renewal window "
                                f"{w.start} .. {w.end}; {capped}")
    else:
        at, reason = _fraction(info)
    if renew_before is not None and renew_before < info.lifetime:
        earliest = info.not_before + info.lifetime / MIN_AGE_FRACTION
        before = max(info.not_after - renew_before, earliest)
        if before < at:
            at = before
            reason = Reason(ReasonCode.INSIDE_RENEW_BEFORE,
                            f"renew-before {format_duration(renew_before)} begins at {at}")
    if floor < at:
        at = floor
        reason = Reason(ReasonCode.LIFETIME_FLOOR,
                        f"1/{FLOOR_FRACTION} of the lifetime is left at {floor}")
    return RenewalTime(at, reason, floor, moment, ignored, capped)
