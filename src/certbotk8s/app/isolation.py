"""One certificate's trouble stays with that certificate (both modes).

`contained` runs the work for one certificate; an exception of any type is logged once with its
traceback, naming the Secret and source, and turned into an `InternalError` that the caller
reports (a Warning Event on the source, a counter, a failed outcome) while every other
certificate of the pass is still handled. Messages name the exception's type, never its text
(that may quote what a Secret holds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.model import DesiredCertificate, SourceKind
from certbotk8s.core.ports import EventRecorder

log = logging.getLogger(__name__)

T = TypeVar("T")

INTERNAL_ERROR = "InternalError"
"""The Event reason (and status text) of a certificate whose handling raised unexpectedly."""


class InternalError(CertbotK8sError):
    """Handling one certificate raised something unexpected (a bug, or input no check caught)."""


def contained(d: DesiredCertificate, step: str, work: Callable[[], T],
              failed: Callable[[InternalError], T]) -> T:
    """`work()`; when it raises anything, `failed(error)` instead, after one log line with the
    traceback. `step` says what was being done, e.g. "reading" or "handling"."""
    try:
        return work()
    except Exception as e:  # the one place a certificate's unexpected exception is caught
        error = InternalError(f"internal error while {step} Secret {d.secret} "
                              f"({type(e).__name__}); other certificates are not affected")
        log.exception("%s -> Secret %s: %s", d.source, d.secret, error)
        return failed(error)


def report_internal(events: EventRecorder, d: DesiredCertificate, error: InternalError) -> None:
    """The Warning Event for `error` on the certificate's source (a config certificate has no
    source to post on: its log line stands). Never raises."""
    if d.source_kind is SourceKind.CONFIG_CERTIFICATE:
        return
    try:
        events.record(d.source, "Warning", INTERNAL_ERROR, str(error))
    except Exception:
        log.warning("%s: cannot post the %s Event", d.source, INTERNAL_ERROR)
