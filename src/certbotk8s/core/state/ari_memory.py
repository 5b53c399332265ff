"""The last ARI answer for a certificate, kept in its record so that `renew --once` asks the CA
again only when the CA's `Retry-After` has passed (RFC 9773 section 4.3), not on every run.

A remembered window is used only for the very certificate it was read for (its ARI CertID),
only until its next read is due, and never for longer than core.renewal.ari_timing allows
(`RETRY_AFTER_MAX`, a tenth of the lifetime): records are the controller's own, but a value
from another version or a clock jump must not stop the reads. Pure: the caller passes `now`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from certbotk8s.core.model import CertificateInfo, RenewalWindow
from certbotk8s.core.renewal.ari_timing import RETRY_AFTER_MAX, next_read_in
from certbotk8s.core.state import secret_meta

ARI_FOR = "certbotk8s.io/ari-read-for"
"""The ARI CertID the remembered window belongs to."""
ARI_START = "certbotk8s.io/ari-window-start"
ARI_END = "certbotk8s.io/ari-window-end"
ARI_NEXT_READ = "certbotk8s.io/ari-next-read"
"""When the CA may be asked again (its Retry-After, clamped)."""
KEYS = (ARI_FOR, ARI_START, ARI_END, ARI_NEXT_READ)


def remembered(record: Mapping[str, str], info: CertificateInfo,
               now: datetime) -> RenewalWindow | None:
    """The window read earlier for `info`'s certificate, while its next read is not yet due;
    None means: ask the CA."""
    if not info.ari_cert_id or record.get(ARI_FOR) != info.ari_cert_id:
        return None
    start = secret_meta.parse_time(record.get(ARI_START, ""))
    end = secret_meta.parse_time(record.get(ARI_END, ""))
    next_read = secret_meta.parse_time(record.get(ARI_NEXT_READ, ""))
    if start is None or end is None or next_read is None or end < start:
        return None
    if not now < next_read <= now + min(RETRY_AFTER_MAX, info.lifetime / 10):
        return None
    return RenewalWindow(start, end, info.ari_cert_id)


def to_remember(info: CertificateInfo, window: RenewalWindow, retry_after: float | None,
                now: datetime) -> dict[str, str | None]:
    """The record changes that remember `window`, read at `now` for `info`'s certificate."""
    after: timedelta = next_read_in(info, retry_after)
    return {ARI_FOR: info.ari_cert_id, ARI_START: secret_meta.format_time(window.start),
            ARI_END: secret_meta.format_time(window.end),
            ARI_NEXT_READ: secret_meta.format_time(now + after)}


def forgotten() -> dict[str, str | None]:
    """The record changes that drop a remembered window (none could be read)."""
    return dict.fromkeys(KEYS)
