"""`certbotk8s renew NAMESPACE/SECRET` and `certbotk8s revoke NAMESPACE/SECRET`.

Both record the request on the Secret (annotation RENEW_REQUESTED_AT, which the policy check
`renewal_requested` turns into a renewal). When a controller holds the Lease, it sees the change
through its watch and renews under its Lease and rate-limit budget; the command waits for the
new certificate. With no controller (CronJob mode), or when the controller does not answer in
time, the command renews that one certificate itself. A Secret that does not exist yet (never
issued: nothing to annotate) is ordered by the command directly. Either way the request lifts
the Secret's backoff for one attempt (core.renewal.backoff.for_attempt).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from certbotk8s.adapters.acme.engine import AcmeEngine
from certbotk8s.app.oneshot.run import PassReport
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.model import SecretRef
from certbotk8s.core.pki import certs, keys
from certbotk8s.core.ports import SecretStore, StoredSecret
from certbotk8s.core.state import secret_meta
from certbotk8s.core.state.observe import TLS_CERT, TLS_KEY, observe

log = logging.getLogger(__name__)


class RevocationReason(enum.IntEnum):
    """RFC 5280 CRLReason codes an ACME subscriber may give (Let's Encrypt's list)."""

    unspecified = 0
    keyCompromise = 1
    affiliationChanged = 3
    superseded = 4
    cessationOfOperation = 5


class ForceError(CertbotK8sError):
    """The Secret cannot be renewed or revoked (missing, not ours, no certificate)."""


def parse_target(text: str) -> SecretRef:
    """`NAMESPACE/SECRET` into a SecretRef; ValueError with a usable message otherwise."""
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise ValueError(f"expected NAMESPACE/SECRET, got {text!r}")
    return SecretRef(namespace, name)


def managed_secret(secrets: SecretStore, ref: SecretRef) -> StoredSecret:
    stored = secrets.read(ref.namespace, ref.name)
    if stored is None:
        raise ForceError(f"Secret {ref} does not exist")
    if not secret_meta.is_managed(stored.labels):
        raise ForceError(f"Secret {ref} is not managed by certbotk8s; nothing done")
    return stored


def existing_secret(secrets: SecretStore, ref: SecretRef) -> bool:
    """Whether `ref` exists (then it must be managed: ForceError otherwise). A Secret that does
    not exist yet was never issued: `renew` orders it directly."""
    if secrets.read(ref.namespace, ref.name) is None:
        return False
    managed_secret(secrets, ref)
    return True


def request_renewal(secrets: SecretStore, ref: SecretRef, now: datetime) -> str:
    """Record the request on the Secret; returns the time written."""
    at = secret_meta.format_time(now)
    secrets.set_annotations(ref.namespace, ref.name, {secret_meta.RENEW_REQUESTED_AT: at})
    return at


def serial_of(stored: StoredSecret | None) -> str | None:
    """The serial of the certificate `stored` holds (read from the certificate itself, never
    from the annotations), None when there is none or it cannot be read."""
    if stored is None:
        return None
    seen = observe(stored)
    return seen.certificate.serial if seen.certificate is not None else None


def answered(stored: StoredSecret | None, serial_before: str | None) -> bool:
    """The Secret holds another certificate than the one it held when the request was made.
    (Times alone cannot tell: a request in the same second as the last issuance would count
    as answered.)"""
    now_serial = serial_of(stored)
    return now_serial is not None and now_serial != serial_before


def wait_for_renewal(secrets: SecretStore, ref: SecretRef, serial_before: str | None,
                     timeout: float,
                     clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], None] = time.sleep) -> bool:
    """Poll the Secret (0.2 s, doubling to 5 s) until the controller renewed it, or timeout."""
    deadline = clock() + timeout
    pause = 0.2
    while True:
        if answered(secrets.read(ref.namespace, ref.name), serial_before):
            return True
        left = deadline - clock()
        if left <= 0:
            return False
        sleep(min(pause, left))
        pause = min(pause * 2, 5.0)


@dataclass(frozen=True)
class Revoked:
    serial: str
    reason: RevocationReason
    signed_by: str  # "certificate key" or "account"


def revoke(engine: AcmeEngine, stored: StoredSecret, reason: RevocationReason) -> Revoked:
    """Revoke the certificate in `stored` at its CA.

    keyCompromise is signed with the certificate's own key (Let's Encrypt requires that, and
    then refuses the key forever); other reasons with the account that ordered it.
    """
    crt, key_pem = stored.data.get(TLS_CERT), stored.data.get(TLS_KEY)
    if not crt:
        raise ForceError(f"Secret {stored.namespace}/{stored.name} holds no certificate")
    info = certs.certificate_info(crt)
    cert_key: keys.PrivateKey | None = None
    if reason is RevocationReason.keyCompromise and key_pem:
        candidate = keys.load_key_pem(key_pem)
        if certs.key_matches_certificate(candidate, crt):
            cert_key = candidate
    engine.revoke(crt, int(reason), certificate_key=cert_key)
    return Revoked(info.serial, reason, "certificate key" if cert_key is not None else "account")


def now_utc() -> datetime:
    return datetime.now(UTC)


def describe(report: PassReport, ref: SecretRef) -> tuple[bool, str]:
    """Whether the direct renewal of `ref` succeeded (a new certificate is in the Secret), and
    a one-line account of it."""
    mine = [o for o in report.outcomes if o.action.desired.secret == ref]
    if not mine:
        return False, f"no source wants Secret {ref} (see `certbotk8s plan -n {ref.namespace}`)"
    failed = [o for o in mine if not o.ok]
    if failed:
        return False, failed[0].message
    if all(o.issued is None for o in mine):  # the pass found nothing to do: not renewed
        return False, f"not renewed: {mine[0].message}"
    return True, mine[0].message
