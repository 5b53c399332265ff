"""When to read a certificate's ARI again (RFC 9773 section 4.3): the CA's `Retry-After`,
clamped to [1 min, 12 h]; without one, every 12 h. Never later than 1/10 of the certificate's
lifetime (no wait may outlast the certificate it is for: Let's Encrypt's 6 h for a 6-day
certificate is well inside it; a test CA's hours for a minutes-long one would not be). A
certificate that has expired is not asked at all (its renewal is due anyway)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from certbotk8s.core.model import CertificateInfo, RenewalWindow

RETRY_AFTER_MIN = timedelta(minutes=1)
RETRY_AFTER_MAX = timedelta(hours=12)
DEFAULT_EVERY = timedelta(hours=12)
LIFETIME_FRACTION = 10


@dataclass(frozen=True)
class AriReading:
    """One ARI answer: the window (None: the CA offers no ARI), the CA's `Retry-After` in
    seconds (None: not sent or unreadable) and its `explanationURL` ("" when none)."""

    window: RenewalWindow | None
    retry_after: float | None = None
    explanation_url: str = ""


def next_read_in(info: CertificateInfo, retry_after: float | None,
                 every: timedelta = DEFAULT_EVERY) -> timedelta:
    """How long until `info`'s ARI is read again after an answer with `retry_after`."""
    cap = info.lifetime / LIFETIME_FRACTION
    if retry_after is None:
        return min(every, cap)
    asked = min(max(timedelta(seconds=retry_after), RETRY_AFTER_MIN), RETRY_AFTER_MAX)
    return min(asked, cap)


def worth_reading(info: CertificateInfo, now: datetime) -> bool:
    """RFC 9773: no ARI reads for a certificate that has expired."""
    return now < info.not_after
