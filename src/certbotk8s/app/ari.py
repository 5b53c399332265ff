"""Reading ARI windows for both modes: a CA that is unreachable or answers nonsense only loses
the window (the renewal falls back), is logged once per certificate and is counted."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from certbotk8s.app.issuers import IssuerRegistry
from certbotk8s.core.errors import (
    AcmeError,
    AcmeTransientError,
    AriMalformed,
    AriUnknownCertificate,
    CertbotK8sError,
)
from certbotk8s.core.model import CaVerdict, DesiredCertificate, RenewalWindow, SourceKind
from certbotk8s.core.ports import EventRecorder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AriAnswer:
    window: RenewalWindow | None
    problem: str | None = None
    unavailable: bool = False  # no answer at all (CA or account unreachable)
    retry_after: float | None = None  # the CA's Retry-After, seconds (core.renewal.ari_timing)
    explanation_url: str = ""  # the CA's explanationURL: why it moved the window
    unknown: bool = False  # the CA answered 404: not a certificate it issued

    @property
    def verdict(self) -> CaVerdict:
        """What the answer says about who issued the certificate (model.CaVerdict)."""
        if self.unknown:
            return CaVerdict.UNKNOWN
        return CaVerdict.KNOWN if self.window is not None else CaVerdict.UNCHECKED


class AriReader:
    """`read(issuer, cert_id)` -> AriAnswer (a window, or why there is none). Never raises."""

    def __init__(self, issuers: IssuerRegistry,
                 on_error: Callable[[str], None] | None = None) -> None:
        self._issuers = issuers
        self._on_error = on_error
        self._logged: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def read(self, issuer: str, cert_id: str) -> AriAnswer:
        try:
            reading = self._issuers.engine(issuer).ari_reading(cert_id)
            if reading.explanation_url:
                self._explained(cert_id, reading.explanation_url)
            return AriAnswer(reading.window, retry_after=reading.retry_after,
                             explanation_url=reading.explanation_url)
        except AriUnknownCertificate as e:
            return AriAnswer(None, self._problem("unknown", cert_id,
                                                 f"{e}; using the fallback timing"), unknown=True)
        except AriMalformed as e:
            return AriAnswer(None, self._problem("malformed", cert_id,
                                                 f"{e}; using the fallback timing"))
        except CertbotK8sError as e:
            # Only no answer at all (network, or the account Secret unreadable) means the
            # issuer is away; a CA that answers with an error (e.g. 404 for a certificate it
            # no longer knows) is this certificate's problem alone.
            away = isinstance(e, AcmeTransientError) or not isinstance(e, AcmeError)
            return AriAnswer(None, self._problem(
                "unavailable", cert_id, f"ARI unavailable: {e}; using the fallback timing"),
                unavailable=away)

    def _explained(self, cert_id: str, url: str) -> None:
        """Log the CA's explanationURL once per certificate and URL (RFC 9773: the CA says
        why it asks for an early renewal, e.g. an incident)."""
        with self._lock:
            first = ("explained " + url, cert_id) not in self._logged
            self._logged.add(("explained " + url, cert_id))
        if first:
            log.warning("ARI for certificate %s: the CA explains its window at %s", cert_id, url)

    def _problem(self, kind: str, cert_id: str, message: str) -> str:
        if self._on_error is not None:
            self._on_error(kind)
        with self._lock:
            first = (kind, cert_id) not in self._logged
            self._logged.add((kind, cert_id))
        if first:  # once per certificate and kind: a fleet-wide CA problem must not flood logs
            log.warning("ARI for certificate %s: %s", cert_id, message)
        return message


ARI_RENEWAL_HELD = "AriRenewalCapped"
"""Warning Event reason: the CA's ARI asks to renew, the cap or the minimum age holds it back."""


def report_ari_held(events: EventRecorder, d: DesiredCertificate, why: str) -> None:
    """The CA asked (ARI) to renew `d`'s certificate and core.renewal.ari_gate holds it back: a log
    line and a Warning Event on the source (the caller counts the metric)."""
    log.warning("%s: the CA's ARI asks for a renewal now; %s", d.secret, why)
    if d.source_kind is not SourceKind.CONFIG_CERTIFICATE:
        events.record(d.source, "Warning", ARI_RENEWAL_HELD,
                      f"the CA's ARI asks for a renewal now; {why}")
